"""Write every input of the demo under one folder: corpus sources, probes, mixes, chat data,
held-out problems and the demo's BPE vocabulary. Deterministic in the seed; nothing is downloaded.

    <root>/corpus/{math,code,prose,noise}.jsonl      pre-training sources ({"text": ...} per line)
    <root>/midtrain/{math,code,math_noisy}.jsonl     mid-training sources (math_noisy: noise mixed in)
    <root>/probes/{math,code}.jsonl                  probing sets of the mix scorer
    <root>/chat/{general,reasoning}.jsonl            SFT conversations ({"prompt", "response"})
    <root>/eval/{gsm8k,humaneval_plus}.jsonl         held-out problems for `mlr1 eval --data-dir`
    <root>/mixes/*.toml                              the mixes each stage reads
    <root>/tokenizer/tokenizer.model                 the BPE ranks (tiktoken format)
"""

from __future__ import annotations

import json
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from mlr1_titan.demo import conversations, documents, heldout
from mlr1_titan.demo.bpe import learn_ranks, write_tiktoken_file


@dataclass(frozen=True)
class DataSizes:
    """How much of each kind the demo generates."""

    docs_per_source: int = 3000
    """Pre-training documents per source."""
    midtrain_docs: int = 1500
    """Mid-training documents per source."""
    probe_docs: int = 64
    """Probe documents per capability."""
    general_rows: int = 1500
    """General-SFT conversations."""
    reasoning_rows: int = 2000
    """Reasoning-SFT conversations."""
    math_problems: int = 40
    """Held-out math problems."""
    code_problems: int = 12
    """Held-out code problems (at most 12 distinct)."""
    bpe_ranks: int = 1024
    """BPE ranks of the demo vocabulary (+ the 256 Llama-3 special tokens)."""


@dataclass(frozen=True)
class DemoData:
    root: Path

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer" / "tokenizer.model"

    def mix(self, name: str) -> Path:
        return self.root / "mixes" / f"{name}.toml"

    def probe(self, capability: str) -> Path:
        return self.root / "probes" / f"{capability}.jsonl"

    @property
    def probes(self) -> Path:
        return self.root / "probes"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def teacher_text(self) -> Path:
        """The teacher's training text: the pre-training sources but noise, in one file."""
        return self.root / "teacher_text.jsonl"


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def _write_mix(path: Path, name: str, description: str, sources: dict[str, tuple[Path, float]], **chat) -> Path:
    """A mix TOML over local jsonl files; ``chat`` adds the chat keys (and ``unit``) of an SFT mix."""
    unit = chat.pop("unit", None)
    spec: dict = {"name": name, "description": description}
    if unit:
        spec["unit"] = unit
    spec["sources"] = [
        {"name": source, "kind": "local", "path": str(file), "weight": weight, **chat}
        for source, (file, weight) in sources.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tomli_w.dumps(spec).encode())
    return path


def write_demo_data(root: str | Path, sizes: DataSizes = DataSizes(), seed: int = 0) -> DemoData:
    data = DemoData(Path(root).absolute())
    r = data.root
    corpus = {
        s: _write_jsonl(
            r / "corpus" / f"{s}.jsonl",
            [{"text": t} for t in documents.source_documents(s, sizes.docs_per_source, seed)],
        )
        for s in documents.SOURCES
    }
    mid_math = documents.source_documents("math", sizes.midtrain_docs, seed + 100)
    mid_code = documents.source_documents("code", sizes.midtrain_docs, seed + 100)
    noisy = documents.source_documents("math", sizes.midtrain_docs * 3 // 4, seed + 200) + documents.source_documents(
        "noise", sizes.midtrain_docs // 4, seed + 200
    )
    random.Random(seed).shuffle(noisy)
    midtrain = {
        "math": _write_jsonl(r / "midtrain" / "math.jsonl", [{"text": t} for t in mid_math]),
        "code": _write_jsonl(r / "midtrain" / "code.jsonl", [{"text": t} for t in mid_code]),
        "math_noisy": _write_jsonl(r / "midtrain" / "math_noisy.jsonl", [{"text": t} for t in noisy]),
    }
    for capability in ("math", "code"):
        docs = documents.probe_documents(capability, sizes.probe_docs, seed)
        _write_jsonl(data.probe(capability), [{"text": t} for t in docs])
    general = _write_jsonl(r / "chat" / "general.jsonl", conversations.general_rows(sizes.general_rows, seed))
    reasoning = _write_jsonl(r / "chat" / "reasoning.jsonl", conversations.reasoning_rows(sizes.reasoning_rows, seed))
    _write_jsonl(data.eval_dir / "gsm8k.jsonl", heldout.math_problems(sizes.math_problems, seed))
    _write_jsonl(data.eval_dir / "humaneval_plus.jsonl", heldout.code_problems(sizes.code_problems, seed))

    texts = []
    for source in ("math", "code", "prose"):
        texts += [json.loads(line)["text"] for line in open(corpus[source])]
    _write_jsonl(data.teacher_text, [{"text": t} for t in texts])
    chat_texts = [
        row["prompt"] + "\n" + row["response"] for f in (general, reasoning) for row in map(json.loads, open(f))
    ]
    write_tiktoken_file(learn_ranks(texts + chat_texts, sizes.bpe_ranks), data.tokenizer)

    _write_mix(
        data.mix("uniform"),
        "demo_uniform",
        "every pre-training source at the same token share (the domain model's mix)",
        {s: (f, 1.0) for s, f in corpus.items()},
    )
    _write_mix(
        data.mix("midtrain"),
        "demo_midtrain",
        "mid-training sources; `mlr1 mix filter` sub-samples them at the current model",
        {s: (f, 1.0) for s, f in midtrain.items()},
    )
    qa = {"format": "qa", "prompt_field": "prompt", "response_field": "response"}
    _write_mix(data.mix("sft_general"), "demo_sft_general", "short instructions (the Tulu-3 stand-in)",
               {"general": (general, 1.0)}, unit="samples", **qa)  # fmt: skip
    _write_mix(data.mix("sft_reasoning"), "demo_sft_reasoning", "math and code with <think> reasoning",
               {"reasoning": (reasoning, 1.0)}, unit="samples", split_think=True, **qa)  # fmt: skip
    return data


def write_phase2_mix(data: DemoData, scored_mix: Path) -> Path:
    """Phase 2's mix: the scored phase-1 mix with the math source's weight doubled, so its share of
    the tokens grows at the others' expense, as the paper's phase 2 moves weight to math and
    reasoning data (Table 3)."""
    spec = tomllib.loads(scored_mix.read_text())
    for source in spec["sources"]:
        if source["name"] == "math":
            source["weight"] = 2 * float(source["weight"])
    spec["name"] = "demo_pretrain_phase2"
    spec["description"] = "phase 1's scored mix with the math weight doubled"
    out = data.mix("pretrain_phase2")
    out.write_bytes(tomli_w.dumps(spec).encode())
    return out
