"""`mlr1 mix score` / `mlr1 mix filter` on the controlled problem: directions, learning, filter
recall, one rank vs two, resume after an interruption, and the errors users meet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlr1_titan.byte_tokenizer import ByteTokenizer
from mlr1_titan.data.mix_config import Phase, load_mix
from mlr1_titan.data.mixture_dataset import MixtureDataset
from mlr1_titan.data.shards import ShardReader, plan_shard_source, tokenizer_fingerprint
from mlr1_titan.mix import controlled
from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.mix.filter import FilterJob, run_filter
from mlr1_titan.mix.gradients import GradientModel, GradientSettings
from mlr1_titan.mix.score import ScoreJob, run_score

GRADIENT = GradientSettings(last_blocks=2, batch_size=16, max_tokens=128)
STEPS = 600


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    root = tmp_path_factory.mktemp("controlled")
    problem = controlled.write_problem(root, docs_per_source=1000)
    controlled.train(problem.uniform_mix, root / "domain", steps=STEPS, save_every=STEPS // 3)
    return problem


def _job(problem, out: Path, **overrides) -> ScoreJob:
    args = dict(
        sources=str(problem.uniform_mix),
        probes={"arithmetic": str(problem.probe)},
        checkpoints={"arithmetic": [str(problem.root / "domain" / "step-*")]},
        out=str(out / "scored.toml"),
        report=str(out / "report"),
        tokenizer=ByteTokenizer(),
        samples_per_source=128,
        gradient=GRADIENT,
        block_size=64,
    )
    args.update(overrides)
    return ScoreJob(**args)


@pytest.fixture(scope="module")
def scored(problem, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored")
    return out, run_score(_job(problem, out), log=quiet)


def test_scores_rank_arithmetic_first_and_noise_last_and_the_mix_loads(scored):
    out, result = scored
    weights = {s.name: s.weight for s in result.scores}
    rho = {s.name: s.rho for s in result.scores}
    assert max(weights, key=weights.get) == "arithmetic"
    assert min(rho, key=rho.get) == "noise" and weights["noise"] == 0.0
    assert sum(weights.values()) == pytest.approx(1.0)
    assert [s.per_checkpoint["arithmetic"].__len__() for s in result.scores] == [3] * 4
    mix = load_mix(out / "scored.toml")
    assert mix.targets() == pytest.approx(weights, abs=1e-7)
    batch, _ = next(iter(MixtureDataset([Phase(mix, 0)], tokenizer=ByteTokenizer(), seq_len=64, batch_size=2)))
    assert batch["input"].shape == (2, 64)
    summary = (out / "report" / "summary.md").read_text()
    assert "| arithmetic |" in summary and (out / "report" / "weights.png").stat().st_size > 1000
    samples = np.load(out / "report" / "samples.npz")
    assert samples["influence"].shape == (4 * 128, 3)


def test_a_model_trained_on_the_scored_mix_beats_the_uniform_mix_on_held_out_arithmetic(problem, scored):
    out, _ = scored
    losses = {}
    for name, mix in (("uniform", problem.uniform_mix), ("scored", out / "scored.toml")):
        model = controlled.train(mix, None, steps=STEPS, seed=100)  # same steps x batch x seq_len: same tokens
        losses[name] = controlled.answer_loss(model, problem.judge)
    assert losses["scored"] < losses["uniform"], losses


def test_filter_removes_injected_noise_and_writes_loadable_shards(problem, tmp_path):
    dirty, clean, noise = controlled.noisy_source(tmp_path / "dirty.jsonl", 300, 40, seed=7)
    mix = controlled.write_mix_toml(
        tmp_path / "dirty.toml", {"dirty": dirty, "prose": problem.sources["prose"]}, {"dirty": 1, "prose": 1}, "d"
    )
    job = FilterJob(
        model=str(problem.root / "domain" / f"step-{STEPS}"),
        sources=str(mix),
        probes={"arithmetic": str(problem.probe)},
        out=str(tmp_path / "round1"),
        tokenizer=ByteTokenizer(),
        gradient=GRADIENT,
        block_size=128,
        max_docs_per_source=400,
    )
    result = run_filter(job, log=quiet)
    assert result.kept["dirty"][1] == 340 and result.kept["prose"][1] == 400
    spec = load_mix(result.mix_file).sources[0]
    plan = plan_shard_source(spec, spec.path[0], tokenizer_fingerprint(ByteTokenizer()), expect_source_hash=False)
    reader = ShardReader(plan, seed=0, rank=0, world=1)
    kept = {ByteTokenizer().decode(reader.next_doc()) for _ in range(plan.total_documents)}
    assert plan.total_documents == result.kept["dirty"][0]
    assert sum(d in kept for d in noise) <= 0.2 * len(noise)  # most noise removed (benchmark: 92-98%)
    assert sum(d in kept for d in clean) >= 0.5 * len(clean)
    assert "kept" in (tmp_path / "round1" / "report" / "summary.md").read_text()
    # Round two reads round one's output as is.
    two = run_filter(
        FilterJob(**{**job.__dict__, "sources": str(result.mix_file), "out": str(tmp_path / "round2")}), log=quiet
    )
    assert two.kept["dirty"][1] == result.kept["dirty"][0]


def test_filter_resumes_and_leaves_out_sources_that_keep_nothing(problem, tmp_path, monkeypatch):
    # A source of pure noise keeps (almost) nothing: weight it out, and round two must still load.
    noise = controlled.write_jsonl(tmp_path / "noise.jsonl", controlled.source_documents("noise", 8, seed=3))
    arith = controlled.write_jsonl(tmp_path / "arith.jsonl", controlled.source_documents("arithmetic", 300, seed=3))
    mix = controlled.write_mix_toml(
        tmp_path / "m.toml", {"arith": arith, "noise": noise}, {"arith": 1, "noise": 1}, "m"
    )
    job = FilterJob(
        model=str(problem.root / "domain"),  # a checkpoint/ folder: its latest step
        sources=str(mix),
        probes={"arithmetic": str(problem.probe)},
        out=str(tmp_path / "out"),
        tokenizer=ByteTokenizer(),
        gradient=GRADIENT,
        block_size=64,
    )
    reference = run_filter(FilterJob(**{**job.__dict__, "out": str(tmp_path / "ref")}), log=quiet)
    with monkeypatch.context() as m:
        _fake_interrupt(m, after=2)
        with pytest.raises(KeyboardInterrupt):
            run_filter(job, log=quiet)
    assert len(list((tmp_path / "out" / "work").glob("scores-*.npz"))) == 2
    resumed = run_filter(job, log=quiet)
    assert resumed.kept == reference.kept
    assert [s.weight for s in resumed.scores] == [s.weight for s in reference.scores]
    ref_manifest = json.loads((tmp_path / "ref" / "shards" / "arith" / "manifest.json").read_text())
    manifest = json.loads((tmp_path / "out" / "shards" / "arith" / "manifest.json").read_text())
    assert [s["tokens_checksum"] for s in manifest["shards"]] == [s["tokens_checksum"] for s in ref_manifest["shards"]]
    if resumed.kept["noise"][0] == 0:
        assert [s.name for s in load_mix(resumed.mix_file).sources] == ["arith"]
    two = run_filter(
        FilterJob(**{**job.__dict__, "sources": str(resumed.mix_file), "out": str(tmp_path / "r2")}), log=quiet
    )
    assert two.kept["arith"][1] == resumed.kept["arith"][0]
    # A kept shard lost after the run: the rerun does that unit again instead of trusting its record.
    lost = next((tmp_path / "out" / "shards" / "arith").glob("unit-*.bin"))
    lost.unlink()
    again = run_filter(job, log=quiet)
    assert lost.is_file() and again.kept == reference.kept
    # --out inside a folder the sources are read from is refused before anything is written.
    with pytest.raises(InfluenceError, match="would overwrite what is being read"):
        run_filter(
            FilterJob(**{**job.__dict__, "sources": str(resumed.mix_file), "out": str(tmp_path / "out")}), log=quiet
        )
    # The source changed under the work dir: the block digests no longer match.
    controlled.write_jsonl(tmp_path / "arith.jsonl", controlled.source_documents("arithmetic", 300, seed=4))
    with pytest.raises(InfluenceError, match="the source changed since the interrupted run"):
        run_filter(job, log=quiet)


def _fake_interrupt(monkeypatch, after: int):
    calls = {"n": 0}
    original = GradientModel.scores

    def scores(self, docs, vectors):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return original(self, docs, vectors)

    monkeypatch.setattr(GradientModel, "scores", scores)


def test_an_interrupted_run_resumes_to_the_same_result(problem, scored, tmp_path, monkeypatch):
    _, full = scored
    with monkeypatch.context() as m:
        _fake_interrupt(m, after=5)
        with pytest.raises(KeyboardInterrupt):
            run_score(_job(problem, tmp_path), log=quiet)
    done = len(list((tmp_path / "report" / "work").glob("scores-*.npz")))
    assert done == 5
    lines: list[str] = []
    resumed = run_score(_job(problem, tmp_path), log=lines.append)
    assert any("resuming, 5 of" in line for line in lines)
    assert [s.rho for s in resumed.scores] == [s.rho for s in full.scores]
    # Other inputs with the same work dir are refused, naming what changed.
    with pytest.raises(InfluenceError, match=r"changed: gradient.last_blocks 2 -> 1"):
        run_score(_job(problem, tmp_path, gradient=GradientSettings(last_blocks=1, batch_size=16, max_tokens=128)))


def _torchrun_score(problem, out: Path, nproc: int) -> None:
    root = problem.root
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "mlr1_titan.mix", "score", "--sources", str(problem.uniform_mix),
        "--probe", f"arithmetic={problem.probe}", "--checkpoints", f"arithmetic={root / 'domain' / 'step-*'}",
        "--out", str(out / "scored.toml"), "--report", str(out / "report"), "--tokenizer", "bytes",
        "--samples-per-source", "128", "--max-tokens", "128", "--batch-size", "16", "--block-size", "64",
        "--device", "cpu",
    ]  # fmt: skip
    # The same thread count in both runs (torchrun's default for several processes), so that the
    # comparison is about the split over ranks, not about matmul blocking.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_ranks_give_the_same_output_as_one(problem, tmp_path):
    _torchrun_score(problem, tmp_path / "one", 1)
    _torchrun_score(problem, tmp_path / "two", 2)
    one = np.load(tmp_path / "one" / "report" / "samples.npz")
    two = np.load(tmp_path / "two" / "report" / "samples.npz")
    np.testing.assert_array_equal(one["influence"], two["influence"])
    assert (tmp_path / "one" / "scored.toml").read_text() == (tmp_path / "two" / "scored.toml").read_text()
    assert (tmp_path / "one" / "report" / "summary.md").read_text().replace("/one/", "/two/") == (
        tmp_path / "two" / "report" / "summary.md"
    ).read_text()


def test_filter_on_two_ranks_keeps_the_same_documents_as_one(problem, tmp_path):
    dirty, _, _ = controlled.noisy_source(tmp_path / "dirty.jsonl", 200, 30, seed=9)
    mix = controlled.write_mix_toml(tmp_path / "m.toml", {"dirty": dirty}, {"dirty": 1}, "m")
    manifests = {}
    for nproc in (1, 2):
        out = tmp_path / f"out{nproc}"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "mlr1_titan.mix", "filter", "--model", str(problem.root / "domain" / f"step-{STEPS}"),
            "--sources", str(mix), "--probe", f"arithmetic={problem.probe}", "--out", str(out),
            "--tokenizer", "bytes", "--max-tokens", "128", "--batch-size", "16", "--block-size", "40", "--device", "cpu",
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        manifest = json.loads((out / "shards" / "dirty" / "manifest.json").read_text())
        manifests[nproc] = [(s["tokens_file"], s["tokens_checksum"]) for s in manifest["shards"]]
        assert [src.name for src in load_mix(out / "mix.toml").sources] == ["dirty"]
        assert (out / "mix.toml").read_text().count("[[sources]]") == 1
    assert manifests[1] == manifests[2] and len(manifests[1]) >= 5  # 230 docs in 6 blocks of <= 40


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_input_is_named(problem, tmp_path):
    ok = _job(problem, tmp_path)
    with pytest.raises(InfluenceError, match="file not found"):
        run_score(_job(problem, tmp_path, probes={"arithmetic": str(tmp_path / "none.jsonl")}))
    empty_probe = _write(tmp_path / "p.jsonl", '{"question": "x"}\n{"text": ""}\n["a list"]\n')
    with pytest.raises(InfluenceError, match=r"p.jsonl has no usable row \(3 non-empty lines"):
        run_score(_job(problem, tmp_path, probes={"arithmetic": str(empty_probe)}))
    with pytest.raises(InfluenceError, match="--probe missing for code"):
        run_score(_job(problem, tmp_path, checkpoints={**ok.checkpoints, "code": ok.checkpoints["arithmetic"]}))
    latin1 = tmp_path / "l.jsonl"
    latin1.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(InfluenceError, match=r"l.jsonl:1 is not UTF-8"):
        run_score(_job(problem, tmp_path, probes={"arithmetic": str(latin1)}))
    with pytest.raises(InfluenceError, match="is the --sources file itself"):
        run_score(ScoreJob(**{**_job(problem, tmp_path).__dict__, "out": str(problem.uniform_mix)}))
    bad_json = _write(tmp_path / "b.jsonl", '{"text": "1 + 1 = 2."}\n{"text": \n')
    with pytest.raises(InfluenceError, match=r"b.jsonl:2 is not valid JSON"):
        run_score(_job(problem, tmp_path, probes={"arithmetic": str(bad_json)}))
    with pytest.raises(InfluenceError, match="--max-tokens 1024: the checkpoints .* 512-token context"):
        run_score(_job(problem, tmp_path, gradient=GradientSettings(max_tokens=1024)))
    with pytest.raises(InfluenceError, match="--checkpoints-per-domain must be >= 1"):
        run_score(_job(problem, tmp_path, checkpoints_per_domain=0))
    with pytest.raises(InfluenceError, match="--checkpoints missing for code"):
        run_score(_job(problem, tmp_path, probes={**ok.probes, "code": str(problem.probe)}))
    with pytest.raises(InfluenceError, match="matches nothing"):
        run_score(_job(problem, tmp_path, checkpoints={"arithmetic": [str(tmp_path / "ckpts" / "step-*")]}))
    # A checkpoint of another shape among the domain's checkpoints.
    other = controlled.FLAVOR.replace(ffn_hidden_dim=96)
    from mlr1_titan.hf.shapes import MODEL_TOML_NAME, model_toml_text
    from mlr1_titan.model import build_on_cpu

    odd = controlled.save_checkpoint(build_on_cpu(other)[1], tmp_path / "odd" / "step-1")
    (odd / MODEL_TOML_NAME).write_text(model_toml_text(other, header="odd"))
    with pytest.raises(InfluenceError, match=r"different model shapes.*ffn_hidden_dim \(96 vs 192\)"):
        run_score(
            _job(problem, tmp_path, checkpoints={"arithmetic": [str(problem.root / "domain" / "step-*"), str(odd)]})
        )
    from mlr1_titan.hf.tokenizer_record import TOKENIZER_RECORD, write_tokenizer_record
    from mlr1_titan.tokenizer_spec import build_tokenizer

    # The tokenizer the checkpoints record is not the one given.
    with pytest.raises(InfluenceError, match="trained with tokenizer ByteTokenizer.*tokenizes with Llama3Tokenizer"):
        run_score(_job(problem, tmp_path, tokenizer=build_tokenizer("llama3")))
    # One checkpoint of the domain was trained with another tokenizer.
    foreign = tmp_path / "foreign" / "step-700"
    shutil.copytree(problem.root / "domain" / f"step-{STEPS}", foreign)
    write_tokenizer_record(foreign, build_tokenizer("llama3"))
    with pytest.raises(InfluenceError, match=r"foreign/step-700 was trained with tokenizer Llama3Tokenizer"):
        run_score(
            _job(problem, tmp_path, checkpoints={"arithmetic": [str(problem.root / "domain" / "step-*"), str(foreign)]})
        )
    # Without records (older checkpoints) the vocabulary size still catches a wrong tokenizer.
    (foreign / TOKENIZER_RECORD).unlink()
    with pytest.raises(InfluenceError, match="259-entry vocabulary"):
        run_score(
            _job(problem, tmp_path, checkpoints={"arithmetic": [str(foreign)]}, tokenizer=build_tokenizer("llama3"))
        )
    empty = _write(tmp_path / "empty.jsonl", "\n")
    mix = controlled.write_mix_toml(
        tmp_path / "e.toml", {"empty": empty, "prose": problem.sources["prose"]}, {"empty": 1, "prose": 1}, "e"
    )
    with pytest.raises(InfluenceError, match="source 'empty'"):
        run_score(_job(problem, tmp_path, sources=str(mix)))


def test_checkpoints_per_domain_keeps_evenly_spaced_ones_ending_at_the_last(problem, tmp_path):
    from mlr1_titan.mix.checkpoints import resolve_checkpoints

    for step in (100, 200, 300, 400, 500, 600):
        shutil.copytree(problem.root / "domain" / f"step-{STEPS}", tmp_path / "ck" / f"step-{step}")
    picked = resolve_checkpoints([str(tmp_path / "ck")], "--checkpoints x=", keep=3)
    assert [p.path.name for p in picked] == ["step-200", "step-400", "step-600"]
    everything = resolve_checkpoints([str(tmp_path / "ck" / "step-*")], "--checkpoints x=")
    assert [p.path.name for p in everything] == [f"step-{s}" for s in (100, 200, 300, 400, 500, 600)]


def test_cli_error_is_one_line_with_exit_2(problem, tmp_path, capsys):
    from mlr1_titan.cli import main

    code = main(["mix", "score", "--sources", str(problem.uniform_mix), "--probe", f"arithmetic={tmp_path / 'x.jsonl'}",
                 "--checkpoints", f"arithmetic={problem.root / 'domain'}", "--out", str(tmp_path / "o.toml"),
                 "--report", str(tmp_path / "r"), "--tokenizer", "bytes"])  # fmt: skip
    assert code == 2
    assert not (tmp_path / "o.toml").exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --max-tokens 1024: the checkpoints")
    twice = ["--probe", "a=1", "--probe", "a=2", "--checkpoints", "a=c", "--out", "o", "--report", "r"]
    assert main(["mix", "score", "--sources", str(problem.uniform_mix), *twice]) == 2
    assert "--probe a= is given 2 times" in capsys.readouterr().err


def test_mix_controlled_writes_a_problem_whose_printed_commands_run(tmp_path, capsys):
    import shlex

    from mlr1_titan.cli import main

    assert main(["mix", "controlled", str(tmp_path / "p"), "--steps", "30"]) == 0
    printed = capsys.readouterr().out
    commands = printed.split("Next:\n", 1)[1].replace("\\\n", " ").strip().splitlines()
    assert [shlex.split(c)[:3] for c in commands] == [["mlr1", "mix", "score"], ["mlr1", "mix", "filter"]]
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    assert "sample-scorings (100.0%)" in capsys.readouterr().err  # --progress: done/total, rate, ETA
    assert load_mix(tmp_path / "p" / "scored.toml").targets()
    assert [s.name for s in load_mix(tmp_path / "p" / "filtered" / "mix.toml").sources]
