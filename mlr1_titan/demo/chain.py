"""The demo's stage chain: the MobileLLM-R1 recipe at tiny scale, each stage the command a user runs.

    data              generate every input (mlr1_titan.demo.data), learn the BPE vocabulary
    domain_model      torchrun mlr1_tiny on the uniform mix, checkpoints at thirds
    mix_score         mlr1 mix score: influence of each source on the math and code probes -> phase-1 mix
    pretrain_phase1   mlr1 recipe --stage pretrain_phase1 (torchrun, the scored mix)
    pretrain_phase2   mlr1 recipe --stage pretrain_phase2 (the mix switch)
    teacher           mlr1 distill tiny-teacher, on the same pre-training text
    mix_filter_1      mlr1 mix filter at pretrain_phase2's model: sub-sample the mid-training data
    midtrain_phase1   mlr1 recipe --stage midtrain_phase1 (logit distillation from the teacher)
    mix_filter_2      mlr1 mix filter at midtrain_phase1's model (the data co-evolves with the model)
    midtrain_phase2   mlr1 recipe --stage midtrain_phase2
    sft_general       mlr1 recipe --stage sft_general (chat SFT)
    sft_reasoning     mlr1 recipe --stage sft_reasoning (<think> data, context 128 -> 512)
    export/eval_*     mlr1 export-hf + mlr1 eval (r1_gsm8k, r1_humaneval_plus with the code sandbox) after
                      pre-training, mid-training, general SFT and reasoning SFT

Every stage hands its checkpoint on through the run folder exactly as on a cluster; `mlr1 recipe`
checks each hand-off. The chain stops at the first stage that fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlr1_titan.demo.data import DataSizes, DemoData, write_demo_data, write_phase2_mix
from mlr1_titan.demo.progress import StageResult, run_stage

EVALUATED = ("pretrain_phase2", "midtrain_phase2", "sft_general", "sft_reasoning")
"""The stages whose model is exported and evaluated (the table's rows)."""


@dataclass(frozen=True)
class ChainSettings:
    """How long each stage trains, and how the evaluation samples."""

    seed: int = 0
    """Seed of every training stage (init, data order) and of the evaluation's sampling."""
    nproc: int = 2
    """Ranks of each training stage (FSDP over gloo on a CPU)."""
    domain_steps: int = 150
    """Steps of the mix scorer's domain model."""
    pretrain_steps: tuple[int, int] = (500, 250)
    """Steps of pre-training phase 1 and 2."""
    midtrain_steps: tuple[int, int] = (150, 100)
    """Steps of mid-training phase 1 and 2."""
    sft_steps: int | None = None
    """Steps of each SFT stage; None: derived from the data (the configs' epochs)."""
    teacher_steps: int = 500
    """Steps of the teacher (16 sequences of 64 tokens each; 6 layers of width 256, deeper than the student)."""
    score_samples: int = 128
    """Documents scored per source by mix score."""
    filter_docs: int = 400
    """Candidate documents per source for mix filter."""
    eval_samples: int = 4
    """Samples per held-out problem (pass@1 over them, maj@n)."""
    eval_limit: int | None = None
    """Only the first N problems of each task."""
    max_gen_toks: int = 160
    """Generation budget per sample."""
    log_freq: int = 10
    """Steps between loss reports (console, tensorboard, the loss curves)."""
    data: DataSizes = field(default_factory=DataSizes)


QUICK = ChainSettings(
    domain_steps=6,
    pretrain_steps=(4, 4),
    midtrain_steps=(3, 3),
    sft_steps=3,
    teacher_steps=10,
    score_samples=16,
    filter_docs=24,
    eval_samples=2,
    eval_limit=2,
    max_gen_toks=24,
    log_freq=1,
    data=DataSizes(docs_per_source=300, midtrain_docs=200, general_rows=200, reasoning_rows=300, bpe_ranks=512),
)
"""A few steps per stage: the whole chain in a few minutes (the test suite runs it)."""


MARKER = ".mlr1_demo"
"""Marks a folder as the demo's: only such a folder has its previous run replaced."""


class DemoFolderError(RuntimeError):
    """--out names a folder with other content."""


class Chain:
    def __init__(self, out: str | Path, settings: ChainSettings = ChainSettings()):
        self.out = Path(out).absolute()
        self.settings = settings
        self.run_dir = self.out / "run"
        self.logs = self.out / "logs"
        self.results: list[StageResult] = []
        self.data: DemoData | None = None
        self.vocab_size = 0

    # --- commands ---------------------------------------------------------------------------------
    def _mlr1(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mlr1_titan.cli", *args]

    def _train_overrides(self) -> list[str]:
        """What every training stage of the demo adds to its tiny config."""
        assert self.data is not None
        s = self.settings.seed
        return [
            "--model.vocab_size", str(self.vocab_size), "--tokenizer.path", str(self.data.tokenizer),
            "--debug.seed", str(s), "--dataloader.mixture.seed", str(s), "--dataloader.chat.seed", str(s),
            "--metrics.enable_tensorboard", "--metrics.log_freq", str(self.settings.log_freq),
        ]  # fmt: skip

    def _recipe(self, stage: str, *extra: str) -> list[str]:
        n = str(self.settings.nproc)
        return self._mlr1(
            "recipe", "--size", "tiny", "--stage", stage, "--gpus", n, "--gpus-per-node", n,
            "--run-dir", str(self.run_dir), "--", *self._train_overrides(), *extra,
        )  # fmt: skip

    def _tok(self) -> list[str]:
        assert self.data is not None
        return ["--tokenizer", str(self.data.tokenizer)]

    def final_checkpoint(self, stage: str) -> Path:
        """The final checkpoint `mlr1 recipe` recorded for ``stage`` (checked complete)."""
        from mlr1_titan.recipe import finished_checkpoint, load_stages

        return finished_checkpoint(next(s for s in load_stages("tiny") if s.name == stage), self.run_dir, 0)

    # --- running ----------------------------------------------------------------------------------
    def _step(self, name: str, cmd: list[str], total: int | None = None, env: dict | None = None) -> bool:
        i = len(self.results) + 1
        result = run_stage(f"[{i:2d}] {name:<17}", cmd, self.logs / f"{i:02d}_{name}.log", total, env)
        result.name = name
        self.results.append(result)
        if result.returncode != 0:
            print(f"stage {name} failed (exit {result.returncode}); its log: {result.log}", file=sys.stderr)
            with open(result.log, errors="replace") as f:
                tail = f.readlines()[-25:]
            print("".join(tail), file=sys.stderr)
        return result.returncode == 0

    def run(self) -> bool:
        s = self.settings
        marker = self.out / MARKER
        if self.out.exists() and not self.out.is_dir():
            raise DemoFolderError(f"--out {self.out} is a file, not a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not marker.exists():
            raise DemoFolderError(f"{self.out} is not empty and not a demo folder (no {MARKER}): choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        marker.write_text("written by `mlr1 demo`; a new demo run here replaces everything in this folder\n")
        if self.run_dir.exists():
            print(f"removing the previous demo run in {self.out}")
        for old in (self.run_dir, self.logs, self.out / "data", self.out / "reports"):
            if old.is_symlink() or old.is_file():
                old.unlink()
            elif old.exists():
                shutil.rmtree(old)
        for old in (self.out / "report.md", self.out / "loss_curves.png"):
            old.unlink(missing_ok=True)
        train_env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))

        start = time.monotonic()
        self.data = write_demo_data(self.out / "data", s.data, seed=0)
        from mlr1_titan.tokenizer import Llama3Tokenizer

        self.vocab_size = Llama3Tokenizer(Llama3Tokenizer.Config(path=str(self.data.tokenizer))).get_vocab_size()
        self.results.append(StageResult("data", 0, time.monotonic() - start, self.data.root))
        print(
            f"[ 1] data               done in {time.monotonic() - start:.0f}s: {self.data.root} (vocab {self.vocab_size})"
        )
        d, r = self.data, self.run_dir

        n = str(s.nproc)
        torchrun = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--rdzv_backend=c10d",
            "--rdzv_endpoint=localhost:0", "--local-ranks-filter=0", "--role=rank", "--tee=3",
        ]  # fmt: skip
        every = max(1, s.domain_steps // 3)
        steps = [
            ("domain_model", lambda: [
                *torchrun, "-m", "torchtitan.train", "--module", "mlr1_titan", "--config", "mlr1_tiny",
                "--dump_folder", str(r / "domain_model"), *self._train_overrides(),
                "--dataloader.mixture.mix", str(d.mix("uniform")), "--training.steps", str(s.domain_steps),
                "--checkpoint.enable", "--checkpoint.interval", str(every), "--checkpoint.keep_latest_k", "0",
            ], s.domain_steps),
            ("mix_score", lambda: self._mlr1(
                "mix", "score", "--sources", str(d.mix("uniform")), *self._tok(),
                "--probe", f"math={d.probe('math')}", "--probe", f"code={d.probe('code')}",
                "--checkpoints", f"math={r / 'domain_model' / 'checkpoint'}",
                "--checkpoints", f"code={r / 'domain_model' / 'checkpoint'}",
                "--samples-per-source", str(s.score_samples), "--max-tokens", "128", "--batch-size", "16",
                "--out", str(d.mix("pretrain_phase1")), "--report", str(self.out / "reports" / "mix_score"),
                "--work-dir", str(r / "mix_score"), "--progress",
            ), None),
            ("pretrain_phase1", lambda: self._recipe(
                "pretrain_phase1", "--dataloader.mixture.mix", str(d.mix("pretrain_phase1")),
                "--training.steps", str(s.pretrain_steps[0]),
            ), s.pretrain_steps[0]),
            ("pretrain_phase2", lambda: self._recipe(
                "pretrain_phase2", "--dataloader.mixture.mix", str(write_phase2_mix(d, d.mix("pretrain_phase1"))),
                "--training.steps", str(s.pretrain_steps[1]),
            ), s.pretrain_steps[1]),
            ("teacher", lambda: self._mlr1(
                "distill", "tiny-teacher", str(r / "teacher"), "--text", str(d.teacher_text), *self._tok(),
                "--steps", str(s.teacher_steps), "--batch-size", "16", "--hidden-size", "256", "--layers", "6",
                "--seed", str(s.seed),
            ), s.teacher_steps),
            ("mix_filter_1", lambda: self._filter("pretrain_phase2", d.mix("midtrain"), 1), None),
            ("midtrain_phase1", lambda: self._recipe(
                "midtrain_phase1", "--distill.teacher", str(r / "teacher"),
                "--dataloader.mixture.mix", str(r / "mix_filter_1" / "mix.toml"),
                "--training.steps", str(s.midtrain_steps[0]),
            ), s.midtrain_steps[0]),
            ("mix_filter_2", lambda: self._filter("midtrain_phase1", d.mix("midtrain"), 2), None),
            ("midtrain_phase2", lambda: self._recipe(
                "midtrain_phase2", "--distill.teacher", str(r / "teacher"),
                "--dataloader.mixture.mix", str(r / "mix_filter_2" / "mix.toml"),
                "--training.steps", str(s.midtrain_steps[1]),
            ), s.midtrain_steps[1]),
            ("sft_general", lambda: self._recipe(
                "sft_general", "--dataloader.chat.mix", str(d.mix("sft_general")), *self._sft_steps(),
            ), s.sft_steps),
            ("sft_reasoning", lambda: self._recipe(
                "sft_reasoning", "--dataloader.chat.mix", str(d.mix("sft_reasoning")), *self._sft_steps(),
            ), s.sft_steps),
        ]  # fmt: skip
        for name, make_cmd, total in steps:
            if not self._step(name, make_cmd(), total, train_env):
                return False
        for stage in EVALUATED:
            hf = r / "hf" / stage
            if not self._step(
                f"export_{stage}", self._mlr1("export-hf", str(self.final_checkpoint(stage)), str(hf), *self._tok())
            ):
                return False
            if not self._step(f"eval_{stage}", self._eval(hf, r / "eval" / stage)):
                return False
        return True

    def _filter(self, at_stage: str, mix: Path, round_: int) -> list[str]:
        assert self.data is not None
        return self._mlr1(
            "mix", "filter", "--model", str(self.final_checkpoint(at_stage)), "--sources", str(mix), *self._tok(),
            "--probes", str(self.data.probes), "--max-docs-per-source", str(self.settings.filter_docs),
            "--max-tokens", "128", "--batch-size", "16", "--out", str(self.run_dir / f"mix_filter_{round_}"),
            "--work-dir", str(self.run_dir / f"mix_filter_{round_}_work"), "--progress",
        )  # fmt: skip

    def _sft_steps(self) -> list[str]:
        return [] if self.settings.sft_steps is None else ["--training.steps", str(self.settings.sft_steps)]

    def _eval(self, hf: Path, out: Path) -> list[str]:
        assert self.data is not None
        s = self.settings
        return self._mlr1(
            "eval", str(hf), "--tasks", "r1_gsm8k,r1_humaneval_plus", "--data-dir", str(self.data.eval_dir),
            "--samples", f"all={s.eval_samples}", "--max-gen-toks", str(s.max_gen_toks), "--backend", "hf",
            "--device", "cpu", "--seed", str(s.seed), "--output-dir", str(out),
            *(["--limit", str(s.eval_limit)] if s.eval_limit else []),
        )  # fmt: skip
