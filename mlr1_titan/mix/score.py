"""`mlr1 mix score`: the paper's Datamix (Sec. 5.2): sample influence over domain-model checkpoints
-> per-source scores -> a new `data_mix` TOML and a report.

Work is split into units: the probe vectors of one checkpoint, and the scores of one block of
samples at one checkpoint. Under torchrun, rank r does the units r, r + W, ...; every unit is
computed the same way whatever W is (fixed blocks, fixed micro-batches), so the output is the
same as one process's. Finished units live in the work dir, so an interrupted run resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlr1_titan.data.mix_config import MixSpec
from mlr1_titan.data.shards import tokenizer_fingerprint
from mlr1_titan.mix.aggregate import Evaluation, SourceScore, evaluations, joint_influence, source_scores
from mlr1_titan.mix.checkpoints import ScoringCheckpoint, check_same_model, resolve_checkpoints
from mlr1_titan.mix.documents import DocumentBlock, docs_digest, iter_blocks, load_sources, open_reader, read_probe_file
from mlr1_titan.mix.domains import load_domains
from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.mix.gradients import GradientModel
from mlr1_titan.mix.mix_writer import source_table, write_mix
from mlr1_titan.mix.progress import Progress
from mlr1_titan.mix.ranks import Ranks, init_ranks
from mlr1_titan.mix.report import write_report
from mlr1_titan.mix.run_options import RunOptions
from mlr1_titan.mix.workdir import WorkDir


@dataclass(kw_only=True)
class ScoreJob(RunOptions):
    """Everything `mlr1 mix score` takes (the CLI flags, parsed)."""

    sources: str
    """Mix TOML (or name) whose sources are scored."""
    probes: dict[str, str]
    """capability -> probe file."""
    checkpoints: dict[str, list[str]]
    """capability -> checkpoint paths / globs of that capability's domain model."""
    out: str
    """The scored mix TOML to write."""
    report: str
    """The report folder (its work/ holds the partial results unless work_dir is set)."""
    samples_per_source: int = 10_000
    checkpoints_per_domain: int | None = None
    """Keep this many evenly spaced checkpoints per domain (the paper: 10); None: all given."""


@dataclass
class ScoreResult:
    mix: MixSpec
    scores: list[SourceScore]
    evals: list[Evaluation]
    samples_per_second: float
    report: Path


def _prepare(job: ScoreJob, log):
    mix = load_sources(job.sources)
    if Path(job.out).resolve() == Path(mix.file).resolve():
        raise InfluenceError(f"--out {job.out} is the --sources file itself; write the scored mix to a new file")
    load_domains(job.domains)  # a bad --domains file fails now, not after the scoring
    missing_ckpt = sorted(set(job.probes) - set(job.checkpoints))
    missing_probe = sorted(set(job.checkpoints) - set(job.probes))
    if not job.probes:
        raise InfluenceError("no --probe given: pass one CAPABILITY=FILE per capability (e.g. code, math, knowledge)")
    if missing_ckpt or missing_probe:
        raise InfluenceError(
            "every capability needs both a probe file and domain-model checkpoints: "
            + "; ".join(
                [f"--checkpoints missing for {', '.join(missing_ckpt)}"] * bool(missing_ckpt)
                + [f"--probe missing for {', '.join(missing_probe)}"] * bool(missing_probe)
            )
        )
    for flag, value in (
        ("--samples-per-source", job.samples_per_source),
        ("--block-size", job.block_size),
        ("--checkpoints-per-domain", job.checkpoints_per_domain),
    ):
        if value is not None and value < 1:
            raise InfluenceError(f"{flag} must be >= 1, got {value}")
    # Checkpoints: one list, each with the capabilities it is scored against.
    checkpoints: list[ScoringCheckpoint] = []
    caps_of: list[list[str]] = []
    per_cap: dict[str, list[int]] = {}
    for cap in job.probes:
        for ckpt in resolve_checkpoints(job.checkpoints[cap], f"--checkpoints {cap}=", job.checkpoints_per_domain):
            index = next((i for i, c in enumerate(checkpoints) if c.path == ckpt.path), None)
            if index is None:
                index = len(checkpoints)
                checkpoints.append(ckpt)
                caps_of.append([])
            caps_of[index].append(cap)
            per_cap.setdefault(cap, []).append(index)
    check_same_model(checkpoints, job.tokenizer, job.gradient.max_tokens)
    probes = {cap: read_probe_file(path, job.tokenizer, cap) for cap, path in job.probes.items()}
    blocks: list[DocumentBlock] = []
    for spec in mix.sources:
        reader = open_reader(spec, job.tokenizer, seed=job.seed, shards_root=job.shards_root, hub_mirror=job.hub_mirror)
        blocks.extend(iter_blocks(reader, spec, job.block_size, job.samples_per_source, job.gradient.max_tokens))
    log(
        f"mix score: {len(mix.sources)} sources, {sum(len(b.docs) for b in blocks)} samples, "
        f"{len(checkpoints)} checkpoints ({', '.join(f'{c}: {len(v)}' for c, v in per_cap.items())}), "
        f"probes {', '.join(f'{c}: {len(p)} docs' for c, p in probes.items())}"
    )
    return mix, checkpoints, caps_of, per_cap, probes, blocks


def _pin(job: ScoreJob, checkpoints, caps_of, probes, blocks, device) -> dict:
    return {
        "command": "mix score",
        "gradient": job.gradient.identity(),
        "device": device.type,  # a sketch drawn on CUDA differs from one drawn on the CPU
        "tokenizer": tokenizer_fingerprint(job.tokenizer)["fingerprint"],
        "checkpoints": [[str(c.path), c.fingerprint(), caps] for c, caps in zip(checkpoints, caps_of)],
        "probes": {cap: docs_digest(docs) for cap, docs in probes.items()},
        "blocks": [[b.source, b.index, b.digest()] for b in blocks],
    }


def run_score(job: ScoreJob, log=print) -> ScoreResult | None:
    """Score, aggregate and write; returns the result on rank 0 (None on the other ranks)."""
    ranks = init_ranks(job.device)
    try:
        return _run(job, ranks, log if ranks.is_first else (lambda *_: None))
    finally:
        ranks.close()


def _run(job: ScoreJob, ranks: Ranks, log) -> ScoreResult | None:
    mix, checkpoints, caps_of, per_cap, probes, blocks = _prepare(job, log)
    work = Path(job.work_dir or Path(job.report) / "work")
    pin = _pin(job, checkpoints, caps_of, probes, blocks, ranks.device)
    if ranks.is_first:
        workdir = WorkDir(work, pin, create=True)
    ranks.barrier()
    if not ranks.is_first:
        workdir = WorkDir(work, pin, create=False)

    # Phase 1: probe vectors, one checkpoint per unit.
    for k, ckpt in enumerate(checkpoints):
        if k % ranks.world == ranks.rank and not workdir.has(f"probe-{k}"):
            model = GradientModel(ckpt.load(ranks.device), job.gradient)
            workdir.save_tensor(f"probe-{k}", model.probe_vectors(probes, caps_of[k]))
            log(f"mix score: probe gradients of {ckpt.path} ({', '.join(caps_of[k])}) done")
    ranks.barrier()

    # Phase 2: sample scores, one (checkpoint, block) per unit.
    units = [(k, b) for k in range(len(checkpoints)) for b in range(len(blocks))]
    mine = [(k, b) for u, (k, b) in enumerate(units) if u % ranks.world == ranks.rank]
    todo = [(k, b) for k, b in mine if not workdir.has(f"scores-{k}-{b}")]
    total = sum(len(blocks[b].docs) for k, b in units if not workdir.has(f"scores-{k}-{b}"))
    progress = Progress("mix score", total, enabled=job.progress and ranks.is_first, world=ranks.world)
    if len(todo) < len(mine):
        log(f"mix score: resuming, {len(mine) - len(todo)} of this rank's {len(mine)} units already done")
    loaded, model, vectors = -1, None, None
    started = time.perf_counter()
    scored = 0
    for k, b in todo:
        if k != loaded:
            model = GradientModel(checkpoints[k].load(ranks.device), job.gradient)
            vectors, loaded = workdir.load_tensor(f"probe-{k}"), k
        block = blocks[b]
        workdir.save_arrays(f"scores-{k}-{b}", scores=model.scores(block.docs, vectors))
        scored += len(block.docs)
        progress.advance(len(block.docs), f"{block.source} @ {checkpoints[k].path.name}")
    rate = scored / (time.perf_counter() - started) if scored else float("nan")
    ranks.barrier()
    if not ranks.is_first:
        return None
    return _aggregate(job, mix, checkpoints, caps_of, per_cap, blocks, workdir, rate)


def _aggregate(job, mix, checkpoints, caps_of, per_cap, blocks, workdir, rate) -> ScoreResult:
    evals = evaluations(per_cap)
    names = [s.name for s in mix.sources]
    source_N = np.concatenate([np.full(len(b.docs), names.index(b.source)) for b in blocks])
    tokens_N = np.concatenate([[min(len(d), job.gradient.max_tokens) for d in b.docs] for b in blocks]).astype(np.int64)
    # Each checkpoint's unit files are read once, whatever number of capabilities it is scored for.
    by_checkpoint = {
        k: np.concatenate([workdir.load_arrays(f"scores-{k}-{b}")["scores"] for b in range(len(blocks))])
        for k in sorted({e.checkpoint for e in evals})
    }
    columns = [by_checkpoint[e.checkpoint][:, caps_of[e.checkpoint].index(e.capability)] for e in evals]
    influence_NE = np.stack(columns, axis=1)
    scores = source_scores(names, source_N, tokens_N, influence_NE, evals)
    by_name = {s.name: s for s in scores}
    header = (
        f"Scored by `mlr1 mix score` from {mix.file}: weights = the paper's Eqs. 3-6 (docs/data_mixing.md).\n"
        + "\n".join(f"{s.name}: rho_g {s.rho:.4g} over {s.samples} samples" for s in scores)
    )
    new_mix = write_mix(
        job.out,
        name=Path(job.out).stem,
        description=f"{mix.name} re-weighted by influence scoring ({', '.join(per_cap)})",
        header=header,
        sources=[source_table(s, by_name[s.name].weight) for s in mix.sources],
        budget_tokens=mix.budget_tokens,
    )
    domains = load_domains(job.domains)
    intro = [
        f"Sources: `{mix.file}`; {len(source_N)} samples ({job.samples_per_source} requested per source), "
        f"scored on their first {job.gradient.max_tokens} tokens.",
        "Checkpoints: "
        + "; ".join(f"{cap}: " + ", ".join(checkpoints[k].path.name for k in ks) for cap, ks in per_cap.items()),
        f"Gradient: {job.gradient.describe()}.",
        f"New mix: `{job.out}`.",
    ]
    report = write_report(
        job.report,
        title=f"Influence scores of {mix.name}",
        intro=intro,
        scores=scores,
        evals=evals,
        domains=domains,
        samples={
            "source": source_N,
            "tokens": tokens_N,
            "joint": joint_influence(influence_NE, evals),
            "influence": influence_NE,
            "source_names": np.array(names),
        },
        notes=[
            "rho per capability: Eq. 5 with that capability's checkpoints only (alpha-weighted); "
            "checkpoint spread: min .. max of Eq. 5 at single checkpoints.",
        ],
    )
    return ScoreResult(new_mix, scores, evals, rate, report)
