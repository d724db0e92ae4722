"""`mlr1 mix filter`: the paper's mid-training data-model co-evolution, one round (Sec. 6, Eqs. 7-8).

Every candidate document of every source is scored with the current model against every probe
capability; the joint influence is the mean over capabilities (T = 1). Documents with influence > 0
are kept (Eq. 7) and written, whole, as `mlr1 tokenize` shards, one folder per source; the sources
are re-weighted with Eqs. 5-6 (numerator over the kept documents, denominator over all candidates'
tokens) into `<out>/mix.toml`, which points at those shards (`<out>/shards/<source>/`); a source that
keeps nothing is left out of it. Running it again with the next phase's
model on `<out>/mix.toml` is round two.

Sources are streamed in blocks of documents (one unit of work and of resuming); under torchrun rank
r takes blocks r, r + W, ... and writes their kept documents itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlr1_titan.data.shards import MANIFEST, ShardWriter, tokenizer_fingerprint, write_manifest
from mlr1_titan.mix.aggregate import SourceScore, evaluations, joint_influence, source_scores
from mlr1_titan.mix.checkpoints import check_same_model, resolve_checkpoints
from mlr1_titan.mix.documents import docs_digest, iter_blocks, load_sources, open_reader, read_probe_file
from mlr1_titan.mix.domains import load_domains
from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.mix.gradients import GradientModel
from mlr1_titan.mix.mix_writer import source_table, write_mix
from mlr1_titan.mix.progress import Progress
from mlr1_titan.mix.ranks import init_ranks
from mlr1_titan.mix.report import histograms, write_report
from mlr1_titan.mix.run_options import RunOptions
from mlr1_titan.mix.workdir import WorkDir

PROBE_SUFFIXES = (".jsonl", ".txt")
SHARDS = "shards"
"""`<out>/shards/<source>/`: the kept documents of each source."""


@dataclass(kw_only=True)
class FilterJob(RunOptions):
    """Everything `mlr1 mix filter` takes."""

    model: str
    """The current model: a DCP step-N folder (or a checkpoint/ folder: its latest step)."""
    sources: str
    probes: dict[str, str]
    out: str
    """Output folder: shards/<source>/, mix.toml, report/ (and work/ unless work_dir is set)."""
    max_docs_per_source: int | None = None
    """Candidates per source; None: the whole first epoch."""
    block_size: int = 1024


@dataclass
class FilterResult:
    mix_file: Path
    scores: list[SourceScore]
    kept: dict[str, tuple[int, int]]
    """source -> (kept documents, candidate documents)."""
    samples_per_second: float


def probe_files(directory: str | None, named: dict[str, str]) -> dict[str, str]:
    """Probe files from a folder (capability = file stem) plus CAPABILITY=FILE pairs."""
    out: dict[str, str] = {}
    if directory:
        folder = Path(directory)
        if not folder.is_dir():
            raise InfluenceError(f"--probes {directory}: not a folder")
        for p in sorted(folder.iterdir()):
            if p.suffix in PROBE_SUFFIXES:
                if p.stem in out:
                    raise InfluenceError(f"--probes {directory}: two probe files for '{p.stem}': {out[p.stem]} and {p}")
                out[p.stem] = str(p)
        if not out:
            raise InfluenceError(f"--probes {directory}: no {' or '.join(PROBE_SUFFIXES)} probe file in it")
    for cap, path in named.items():
        if cap in out:
            raise InfluenceError(f"--probe {cap}={path}: --probes {directory} already has {out[cap]} for '{cap}'")
        out[cap] = path
    return out


def run_filter(job: FilterJob, log=print) -> FilterResult | None:
    ranks = init_ranks(job.device)
    try:
        return _run(job, ranks, log if ranks.is_first else (lambda *_: None))
    finally:
        ranks.close()


def _run(job: FilterJob, ranks, log) -> FilterResult | None:
    mix = load_sources(job.sources)
    load_domains(job.domains)  # a bad --domains file fails now, not after the scoring
    if not job.probes:
        raise InfluenceError("no probes: pass --probes DIR (one CAPABILITY.jsonl per capability) or --probe CAP=FILE")
    for flag, value in (("--block-size", job.block_size), ("--max-docs-per-source", job.max_docs_per_source)):
        if value is not None and value < 1:
            raise InfluenceError(f"{flag} must be >= 1, got {value}")
    bad = [s.name for s in mix.sources if any(c in s.name for c in "$~")]
    if bad:
        raise InfluenceError(f"--sources: source names {bad} contain '$' or '~'; they name shard folders, rename them")
    out_dir = Path(job.out).resolve()
    for spec in mix.sources:
        for path in spec.path if spec.kind != "hub" else ():
            resolved = Path(path).resolve()
            if resolved == out_dir or out_dir in resolved.parents:
                raise InfluenceError(
                    f"--out {job.out} holds source '{spec.name}' of --sources ({path}): writing there would "
                    "overwrite what is being read; pass a new folder (round two: --out <new folder>)"
                )
    found = resolve_checkpoints([job.model], "--model")
    ckpt = found[-1]  # in step order: a checkpoint/ folder stands for its latest step
    if len(found) > 1:
        log(f"mix filter: --model {job.model} holds {len(found)} checkpoints; using {ckpt.path}")
    check_same_model([ckpt], job.tokenizer, job.gradient.max_tokens)
    caps = list(job.probes)
    probes = {cap: read_probe_file(path, job.tokenizer, cap) for cap, path in job.probes.items()}
    tok_info = tokenizer_fingerprint(job.tokenizer)
    out = Path(job.out)
    pin = {
        "command": "mix filter",
        "gradient": job.gradient.identity(),
        "device": ranks.device.type,  # a sketch drawn on CUDA differs from one drawn on the CPU
        "tokenizer": tok_info["fingerprint"],
        "model": [str(ckpt.path), ckpt.fingerprint()],
        "probes": {cap: docs_digest(docs) for cap, docs in probes.items()},
        "sources": [[s.name, s.source_hash()] for s in mix.sources],
        "block_size": job.block_size,
        "max_docs_per_source": job.max_docs_per_source,
        "seed": job.seed,
    }
    work = Path(job.work_dir or out / "work")
    if ranks.is_first:
        workdir = WorkDir(work, pin, create=True)
    ranks.barrier()
    if not ranks.is_first:
        workdir = WorkDir(work, pin, create=False)
    log(f"mix filter: model {ckpt.path}, {len(mix.sources)} sources, probes {', '.join(caps)}")

    model = GradientModel(ckpt.load(ranks.device), job.gradient)
    if ranks.is_first and not workdir.has("probe"):
        workdir.save_tensor("probe", model.probe_vectors(probes, caps))
    ranks.barrier()
    vectors = workdir.load_tensor("probe")
    evals = evaluations({cap: [0] for cap in caps})
    weights = np.array([e.weight for e in evals])

    total = (job.max_docs_per_source or 0) * len(mix.sources)  # 0: unknown (whole sources)
    progress = Progress("mix filter", total, enabled=job.progress and ranks.is_first, world=ranks.world)
    started, scored, unit = time.perf_counter(), 0, 0
    blocks_of: dict[str, int] = {}
    for spec in mix.sources:
        source_dir = out / SHARDS / spec.name
        source_dir.mkdir(parents=True, exist_ok=True)
        reader = open_reader(spec, job.tokenizer, seed=job.seed, shards_root=job.shards_root, hub_mirror=job.hub_mirror)
        for block in iter_blocks(reader, spec, job.block_size, job.max_docs_per_source):
            blocks_of[spec.name] = block.index + 1
            name = f"scores-{spec.name}-{block.index}"
            mine, unit = unit % ranks.world == ranks.rank, unit + 1
            if not mine:
                continue
            if workdir.has(name):
                done = workdir.load_arrays(name)
                if str(done["digest"]) != block.digest():
                    raise InfluenceError(
                        f"source '{spec.name}': block {block.index} differs from the one scored before in {work}; "
                        "the source changed since the interrupted run: use another --work-dir"
                    )
                if _shards_intact(source_dir, json.loads(str(done["shards"]))):
                    continue  # else: its kept shards were lost since, so the unit is done again
            scores = model.scores(block.docs, vectors)
            keep = scores @ weights > 0
            writer = ShardWriter(str(source_dir), f"unit-{block.index:06d}", shard_tokens=1 << 62)
            for doc, k in zip(block.docs, keep):
                if k:
                    writer.add(np.asarray(doc).tolist())
            records = writer.close()
            workdir.save_arrays(
                name,
                scores=scores,
                tokens=np.array([min(len(d), job.gradient.max_tokens) for d in block.docs]),
                digest=np.array(block.digest()),
                shards=np.array(json.dumps(records)),
            )
            scored += len(block.docs)
            progress.advance(len(block.docs), spec.name)
    rate = scored / (time.perf_counter() - started) if scored else float("nan")
    ranks.barrier()
    if not ranks.is_first:
        return None
    return _finish(job, mix, ckpt, caps, evals, workdir, tok_info, rate, blocks_of)


def _shards_intact(directory: Path, records: list[dict]) -> bool:
    return all(
        (directory / r["tokens_file"]).is_file()
        and (directory / r["tokens_file"]).stat().st_size == 4 * r["num_tokens"]
        for r in records
    )


def _finish(job, mix, ckpt, caps, evals, workdir, tok_info, rate, blocks_of) -> FilterResult:
    out = Path(job.out)
    names = [s.name for s in mix.sources]
    source_N, tokens_N, influence, kept = [], [], [], {}
    per_source_joint = []
    for g, spec in enumerate(mix.sources):
        arrays = [workdir.load_arrays(f"scores-{spec.name}-{b}") for b in range(blocks_of[spec.name])]
        scores = np.concatenate([a["scores"] for a in arrays])
        joint = joint_influence(scores, evals)
        per_source_joint.append(joint)
        source_N.append(np.full(len(scores), g))
        tokens_N.append(np.concatenate([a["tokens"] for a in arrays]))
        influence.append(scores)
        shards = [rec for a in arrays for rec in json.loads(str(a["shards"]))]
        kept[spec.name] = (int((joint > 0).sum()), len(joint))
        manifest = out / SHARDS / spec.name / MANIFEST
        if shards:
            _write_manifest(manifest.parent, spec, shards, tok_info, ckpt, job)
        else:
            manifest.unlink(missing_ok=True)  # from an earlier run into this folder
    source_N, tokens_N = np.concatenate(source_N), np.concatenate(tokens_N)
    influence_NE = np.concatenate(influence)
    joint_N = joint_influence(influence_NE, evals)
    scores = source_scores(names, source_N, tokens_N, influence_NE, evals, keep_N=joint_N > 0)
    by_name = {s.name: s for s in scores}
    # A source with no kept document has no shards: it is left out of the new mix (and named above it).
    tables = [
        source_table(spec, by_name[spec.name].weight, path=f"{SHARDS}/{spec.name}", kind="shards")
        for spec in mix.sources
        if kept[spec.name][0]
    ]
    mix_file = out / "mix.toml"
    header = (
        f"Kept by `mlr1 mix filter` (influence > 0 at {ckpt.path}) from {mix.file}; weights: Eqs. 5-6 over the kept "
        "documents (docs/data_mixing.md).\n"
        + "\n".join(f"{n}: kept {k} of {c} documents" + (" (left out)" if not k else "") for n, (k, c) in kept.items())
    )
    write_mix(
        mix_file,
        name=f"{mix.name}_filtered",
        description=f"{mix.name}, influence-filtered",
        header=header,
        sources=tables,
        budget_tokens=mix.budget_tokens,
    )
    report_dir = out / "report"
    write_report(
        report_dir,
        title=f"Influence filter of {mix.name}",
        intro=[
            f"Model: `{ckpt.path}`; probes: {', '.join(caps)}; gradient: {job.gradient.describe()}.",
            f"New mix: `{mix_file}`; kept documents as shards in `{out / SHARDS}/<source>/`.",
        ],
        scores=scores,
        evals=evals,
        domains=load_domains(job.domains),
        samples={
            "source": source_N,
            "tokens": tokens_N,
            "joint": joint_N,
            "influence": influence_NE,
            "source_names": np.array(names),
        },
        extra_columns={
            "kept": [f"{kept[n][0]}/{kept[n][1]} ({100 * kept[n][0] / max(kept[n][1], 1):.1f}%)" for n in names]
        },
        notes=[
            "rho_g here sums the kept documents' influence over all candidates' tokens (Eq. 5 after Eq. 7); "
            "rho per capability is over all candidates, kept or not."
        ],
    )
    histograms(
        report_dir / "influence.png", names, per_source_joint, f"joint influence per document at {ckpt.path.name}"
    )
    return FilterResult(mix_file, scores, kept, rate)


def _write_manifest(directory: Path, spec, shards: list[dict], tok_info: dict, ckpt, job: FilterJob) -> None:
    # Its own identity and hash: `--shards-root OUT/shards` for the *unfiltered* mix must not pass the check.
    identity = {
        "filtered_from": spec.identity(),
        "filtered_by": {"model": str(ckpt.path), "fingerprint": ckpt.fingerprint(), "probes": sorted(job.probes)},
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    write_manifest(
        str(directory),
        source={"name": spec.name, "identity": identity, "hash": digest},
        tokenizer_info=tok_info,
        shards=shards,
        created_by="mlr1 mix filter",
    )
