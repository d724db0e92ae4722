"""Distillation in the real trainer on CPU: the same losses on 1 rank, 2 FSDP ranks, TP 2 and compiled, bitwise resume
with the teacher recorded (not saved), another teacher refused at resume, and a KD student that ends
closer to its teacher -- and better on held-out text -- than a CE student after the same steps."""

from __future__ import annotations

import pytest
from distill_testkit import make_hf_teacher
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from trainer_testkit import run_trainer, tensorboard_losses

from mlr1_titan.demo_corpus import heldout_documents, read_texts
from mlr1_titan.distill.heldout import score_heldout
from mlr1_titan.distill.tiny_teacher import TinyTeacherRecipe, train_tiny_teacher
from mlr1_titan.model import build_on_cpu
from mlr1_titan.tokenizer import Llama3Tokenizer

pytestmark = pytest.mark.slow

CONFIG = "mlr1_tiny_midtrain_phase1"
SMALL = ("--training.seq_len", "64", "--debug.seed", "7", "--loss.chunk_tokens", "96")
DISTILL_TAGS = ("distill/kd_loss", "distill/ce", "distill/top1_agreement", "distill/teacher_tokens_per_s")


@pytest.fixture(scope="module")
def random_teacher(tmp_path_factory):
    return make_hf_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def pretrained_student(tmp_path_factory):
    """The start of mid-training: mlr1_tiny pre-trained 30 steps with CE (loaded model-only, as in the recipe)."""
    dump = tmp_path_factory.mktemp("pretrain")
    run_trainer("mlr1_tiny", dump, "--checkpoint.enable", "--checkpoint.interval", "30", "--training.steps", "30",
                "--training.seq_len", "64", "--debug.seed", "7", nproc=1)  # fmt: skip
    return dump / "checkpoint" / "step-30"


def _start(pretrained_student, teacher):
    return ("--distill.teacher", str(teacher), "--checkpoint.enable", "--checkpoint.initial_load_path",
            str(pretrained_student), *SMALL)  # fmt: skip


def test_distillation_same_on_one_and_two_ranks_and_resumes_bitwise(tmp_path, random_teacher, pretrained_student):
    start = _start(pretrained_student, random_teacher)
    ckpt = ("--checkpoint.interval", "3", "--checkpoint.no-last-save-model-only", "--lr_scheduler.total_steps", "6")
    proc = run_trainer(CONFIG, tmp_path / "one", *start, *ckpt, "--training.steps", "4", nproc=1)
    log = proc.stdout + proc.stderr
    assert "distill: teacher" in log and "frozen" in log and "distill step 1: kd_loss" in log
    run_trainer(CONFIG, tmp_path / "straight", *start, *ckpt, "--training.steps", "6")
    proc = run_trainer(
        CONFIG, tmp_path / "tp2", *start, *ckpt, "--training.steps", "4", "--parallelism.tensor_parallel_degree", "2",
        "--activation_checkpoint.mode", "full",
    )  # fmt: skip
    assert "local shape (384, 256) of (768, 256)" in proc.stdout + proc.stderr  # the student really is TP-sharded
    proc = run_trainer(
        CONFIG, tmp_path / "compiled", *start, *ckpt, "--training.steps", "4", "--compile.enable", nproc=1
    )
    assert "Compiling the loss function with torch.compile" in proc.stdout + proc.stderr
    run_trainer(CONFIG, tmp_path / "resumed", *start, *ckpt, "--training.steps", "3")
    proc = run_trainer(CONFIG, tmp_path / "resumed", *start, *ckpt, "--training.steps", "6")
    assert "Training starts at step 4" in proc.stdout + proc.stderr

    one, straight, resumed, tp, compiled = (
        tensorboard_losses(tmp_path / n) for n in ("one", "straight", "resumed", "tp2", "compiled")
    )
    assert sorted(straight) == list(range(1, 7))
    for step in range(1, 5):  # 2 FSDP ranks == 1 rank with 2 accumulation steps == TP 2 (vocab-parallel KL) + AC
        assert straight[step] == pytest.approx(one[step], rel=1e-5), (step, straight[step], one[step])
        assert tp[step] == pytest.approx(one[step], rel=1e-4), (step, tp[step], one[step])
        assert compiled[step] == pytest.approx(one[step], rel=1e-4), (step, compiled[step], one[step])  # model + loss
    assert straight == resumed  # bitwise: float32 values as logged
    for tag in DISTILL_TAGS:
        a, b = tensorboard_losses(tmp_path / "straight", tag), tensorboard_losses(tmp_path / "resumed", tag)
        assert sorted(a) == list(range(1, 7)), tag
        if tag != "distill/teacher_tokens_per_s":  # a wall-clock rate
            assert a == b, tag
    kd = tensorboard_losses(tmp_path / "straight", "distill/kd_loss")
    assert kd == straight  # pure KL (ce_weight 0): the loss is the KD term
    assert kd[6] < kd[1] - 0.5, kd  # the student moves towards the (random) teacher ...
    ce = tensorboard_losses(tmp_path / "straight", "distill/ce")
    assert ce[6] > ce[1], ce  # ... and away from the data it was pre-trained on: KD really drives it

    # The checkpoint records the teacher but holds only student, optimizer and trainer state.
    meta = FileSystemReader(str(tmp_path / "straight" / "checkpoint" / "step-3")).read_metadata()
    record = {k for k in meta.state_dict_metadata if k.startswith("distill_teacher")}
    assert record == {"distill_teacher.path", "distill_teacher.fingerprint"}
    stored = sum(m.size.numel() for m in meta.state_dict_metadata.values() if isinstance(m, TensorStorageMetadata))
    model = build_on_cpu("tiny")[1]
    # the model's state dict (the tied embedding appears under both names) + two Adam moments per parameter
    student = sum(v.numel() for v in model.state_dict().values()) + 2 * sum(p.numel() for p in model.parameters())
    assert student <= stored < student + 1_000, (stored, student)  # + step counters; no teacher weights

    # Resuming with other teacher weights is refused, naming both fingerprints.
    other = make_hf_teacher(tmp_path / "other_teacher", seed=5)
    with pytest.raises(AssertionError, match="resume with the same teacher"):
        run_trainer(CONFIG, tmp_path / "resumed", *_start(pretrained_student, other), *ckpt, "--training.steps", "8")


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    return train_tiny_teacher(tmp_path_factory.mktemp("trained_teacher"), read_texts(), TinyTeacherRecipe(steps=200))


def test_kd_student_is_closer_to_the_teacher_and_better_on_heldout_text_than_ce(
    tmp_path, trained_teacher, pretrained_student
):
    """From the same pre-trained student, data, steps and LR, the only difference is the loss. Held-out
    text uses templates neither the teacher nor the students saw (demo_corpus.heldout_documents)."""
    scores = {}
    for name, teacher in (("kd", trained_teacher), ("ce", "")):
        run_trainer(
            CONFIG, tmp_path / name, *_start(pretrained_student, teacher), "--training.steps", "30",
            "--checkpoint.interval", "30", "--checkpoint.last_save_in_hf",
        )  # fmt: skip
        hf = tmp_path / name / "checkpoint" / "hf" / "step-30"
        scores[name] = score_heldout(hf, trained_teacher, heldout_documents(100), Llama3Tokenizer())
    print(f"\nheld-out, 30 steps:\n  KD student: {scores['kd'].describe()}\n  CE student: {scores['ce'].describe()}")
    assert scores["kd"].kl < scores["ce"].kl
    assert scores["kd"].ce < scores["ce"].ce
