"""The demo's report: the accuracy table from `mlr1 eval` results, the loss curves from tensorboard."""

from __future__ import annotations

import json

from mlr1_titan.demo.report import LOSS_TAG, accuracy_table, plot_losses, read_accuracy, read_losses


def _results(math_pass, math_maj, code_pass, code_pass_n):
    return {
        "results": {
            "r1_gsm8k": {"pass@1,graded": math_pass, "maj@n,graded": math_maj},
            "r1_humaneval_plus": {"pass@1,graded": code_pass, "pass@2,graded": 0.0, "pass@4,graded": code_pass_n},
        },
        "n-samples": {"r1_gsm8k": {"effective": 40}, "r1_humaneval_plus": {"effective": 12}},
    }


def test_accuracy_table_has_one_row_per_evaluated_phase(tmp_path):
    runs = {"pretrain_phase2": (0.0, 0.0, 0.0, "N/A"), "sft_reasoning": (0.4125, 0.5, 0.25, 0.5)}
    for stage, values in runs.items():
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "results.json").write_text(json.dumps(_results(*values)))
    accuracy = read_accuracy(tmp_path, samples=4)
    assert accuracy["sft_reasoning"]["math pass@1"] == 0.4125 and accuracy["sft_reasoning"]["code pass@n"] == 0.5
    assert accuracy["pretrain_phase2"]["code pass@n"] is None
    table = accuracy_table(accuracy, 4).splitlines()
    assert table[0] == (
        "| held-out problems (4 samples each) | math pass@1 (%) | math maj@4 (%) | code pass@1 (%) | code pass@4 (%) |"
    )
    assert table[2:] == [
        "| after pre-training | 0.0 | 0.0 | 0.0 | - |",
        "| after reasoning SFT | 41.2 | 50.0 | 25.0 | 50.0 |",
    ]


def test_loss_curves_come_from_each_stages_tensorboard_events(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for stage, losses in {"pretrain_phase1": [5.0, 4.0, 3.5], "sft_general": [2.0, 1.5]}.items():
        writer = SummaryWriter(str(tmp_path / stage / "tb" / "20261202-0000"))
        for step, loss in enumerate(losses, 1):
            writer.add_scalar(LOSS_TAG, loss, step)
            writer.add_scalar("other/metric", 0.0, step)
        writer.close()
    losses = read_losses(tmp_path)
    assert losses == {"pretrain_phase1": [(1, 5.0), (2, 4.0), (3, 3.5)], "sft_general": [(1, 2.0), (2, 1.5)]}
    png = plot_losses(losses, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
