"""The demo's progress line: what it reads from each tool's output, and what it prints."""

from __future__ import annotations

import io
import sys

from mlr1_titan.demo import progress
from mlr1_titan.demo.progress import ProgressLine, run_stage

TITAN_START = "[rank0]:[titan] ... - Trainer is initialized with local batch size 4, global batch size 8, total steps 40 (warmup 4)"
TITAN_STEP = (
    "[rank0]:[titan] ... \x1b[31mstep: {step:2d}  \x1b[32mloss:  {loss:.5f}  \x1b[38;2;180;60;0mgrad_norm:  1.0"
)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_reads_torchtitan_steps_and_estimates_eta_from_the_training_rate(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    out = io.StringIO()
    line = ProgressLine("[3] pretrain_phase1", None, stream=out)
    clock.now += 30  # start-up: not part of the rate
    line.update(TITAN_START)
    line.update(TITAN_STEP.format(step=1, loss=7.25))
    clock.now += 9
    line.update(TITAN_STEP.format(step=10, loss=4.5))
    assert line.text() == "[3] pretrain_phase1  step 10/40  loss 4.500  elapsed 0:39  ETA 0:30"
    printed = out.getvalue().splitlines()  # not a terminal: a line about every tenth of the stage
    assert printed[-1] == line.text() and len(printed) == 2


def test_reads_the_side_tools_n_of_m_lines():
    line = ProgressLine("teacher", None, stream=io.StringIO())
    line.update("tiny teacher step 50/300: loss 2.125 (12s, ETA 60s)")
    assert (line.step, line.total, line.loss) == (50, 300, 2.125)
    line = ProgressLine("mix_score", None, stream=io.StringIO())
    line.update("mix score: 768/3072 sample-scorings (25.0%), 30.1/s, elapsed 0:00:25, ETA 0:01:16")
    assert (line.step, line.total, line.loss) == (768, 3072, None)
    line.update("some other output 3/4")
    assert line.step == 768


def test_a_stage_logs_everything_and_reports_its_exit_code(tmp_path, capsys):
    ok = run_stage("ok", [sys.executable, "-c", "print('step:  1  loss:  2.5')"], tmp_path / "ok.log", 1)
    assert ok.returncode == 0 and "step:  1  loss:  2.5" in (tmp_path / "ok.log").read_text()
    bad = run_stage("bad", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "bad.log")
    assert bad.returncode == 3 and "boom" in bad.log.read_text()
    assert "bad  FAILED in 0:00" in capsys.readouterr().out
