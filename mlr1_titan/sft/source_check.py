"""Before training: read the first rows of every SFT source and stop if too many cannot be used.

The loader skips unusable rows (counted per reason) so that one bad row never stops a long run; a
source whose rows are *mostly* unusable -- OpenCodeReasoning-2 before its questions are filled in,
a wrong field name, a length limit that drops most rows -- would otherwise be noticed only after a
whole epoch. ``check_sources`` reads ``check_rows`` rows of each source exactly as the loader would
and raises one error naming every failing source, its reason counts and the fix.
"""

from __future__ import annotations

from collections import Counter

from mlr1_titan.data.sources import DataSourceError

from .chat_loader import ChatDataLoader, OnePassDone, UnusableRow

FIXES = {
    "placeholder_prompt": (
        "fill the questions from the benchmarks the rows name: mlr1 data fill-questions --mix {mix} --out DIR "
        "(--hub-mirror M for local snapshots), then train with --dataloader.chat.mix DIR/{name}.toml"
    ),
    "placeholder_prompt/unmarked": (
        "if the rows name their benchmark (dataset / split / index, like OpenCodeReasoning-2), set "
        "fill_questions = true on the source and run mlr1 data fill-questions --mix {mix} --out DIR; "
        "otherwise remove the source"
    ),
    "missing_field": "set the source's field names to the row's fields (listed in the example)",
    "too_long": "raise training.seq_len or use dataloader.chat.overlength = 'truncate'",
    "prompt_too_long": "raise training.seq_len: the prompts alone fill it",
    "unclosed_think": "the responses are cut inside <think>: set split_think = false or fix the data",
}
DEFAULT_FIX = "inspect the rows with: mlr1 data preview-sft {mix}"


def check_sources(config: ChatDataLoader.Config, tokenizer, *, seq_len: int) -> dict[str, Counter]:
    """Skip-reason counts of the first ``check_rows`` rows of each source; raises DataSourceError when
    a source's unusable fraction exceeds ``max_unusable``."""
    if config.check_rows <= 0:
        return {}
    dataset = config.build_dataset(tokenizer, seq_len=seq_len, infinite=False)
    mix = dataset.mix
    counts: dict[str, Counter] = {}
    problems = []
    for i, (name, reader) in enumerate(zip(dataset.names, dataset.readers)):
        reasons: Counter = Counter()
        examples: dict[str, str] = {}
        read = 0
        while read < config.check_rows:
            try:
                row, where = reader.next_row()
            except OnePassDone:  # a source smaller than check_rows
                break
            read += 1
            reader.mark_used()  # this check reports unusable rows itself, with their reasons
            try:
                dataset.sample_from_row(i, row)
            except UnusableRow as err:
                reasons[err.reason] += 1
                examples.setdefault(err.reason, f"{where}: {err.detail}")
        counts[name] = reasons
        unusable = sum(reasons.values())
        if read and unusable / read > config.max_unusable:
            marked = mix.mappings[name].fill_questions
            lines = [
                f"  - {reason}: {n} of {read} rows (e.g. {examples[reason]}); fix: "
                + FIXES.get(
                    reason if reason != "placeholder_prompt" or marked else f"{reason}/unmarked", DEFAULT_FIX
                ).format(mix=config.mix, name=mix.name)
                for reason, n in reasons.most_common()
            ]
            problems.append(
                f"source '{name}' ({reader.spec.mix_file}): {unusable} of its first {read} rows are unusable "
                f"({unusable / read:.0%} > dataloader.chat.max_unusable {config.max_unusable:.0%}):\n"
                + "\n".join(lines)
            )
    if problems:
        raise DataSourceError(
            f"SFT mix '{mix.name}' cannot feed training:\n"
            + "\n".join(problems)
            + "\n(set dataloader.chat.max_unusable to accept more skipped rows, or dataloader.chat.check_rows = 0 to skip this check)"
        )
    return counts
