"""``[distill]``: logit distillation from a frozen teacher (the paper's mid-training loss, §3.2).

``teacher`` names an HF causal-LM folder, or a hub id resolved through the local HF cache only (a
128-rank job must not download 16 GB per rank at start-up: download it once per node beforehand).
Empty ``teacher`` trains with plain cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlr1_titan.distill.kd_loss import DistillationLoss
from mlr1_titan.distill.teacher_folder import TeacherError


@dataclass(kw_only=True, slots=True)
class DistillSettings:
    teacher: str = ""
    """HF folder (or hub id) of the teacher: a Llama-3 LlamaForCausalLM with the student's tokenizer; empty: no KD."""
    temperature: float = 1.0
    """Softmax temperature T of teacher and student; the KL is scaled by T^2 (not stated in the paper)."""
    ce_weight: float = 0.0
    """alpha in (1 - alpha) * KL + alpha * CE (the paper's wording suggests pure KL: 0)."""

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.ce_weight <= 1.0:
            raise ValueError(f"distill.ce_weight must be in [0, 1], got {self.ce_weight}")

    @property
    def enabled(self) -> bool:
        return bool(self.teacher)

    def describe_loss(self) -> str:
        return (
            f"{1 - self.ce_weight:g} x T^2 KL(teacher || student) + {self.ce_weight:g} x CE at T = {self.temperature:g}"
        )

    def loss_config(self, vocab_size: int | None) -> DistillationLoss.Config:
        return DistillationLoss.Config(
            temperature=self.temperature, ce_weight=self.ce_weight, global_vocab_size=vocab_size
        )

    def teacher_folder_path(self) -> Path:
        """The local folder of ``teacher``: the path itself, else the cached hub snapshot of that repo id."""
        path = Path(self.teacher).expanduser()
        if path.exists() or self.teacher.startswith((".", "/", "~")) or self.teacher.count("/") != 1:
            return path
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            return Path(
                snapshot_download(
                    self.teacher,
                    allow_patterns=["*.json", "*.safetensors"],
                    local_files_only=True,
                )
            )
        except (LocalEntryNotFoundError, HFValidationError, OSError) as err:
            raise TeacherError(
                f"distill.teacher {self.teacher!r}: not a local folder, and not in the local HF cache "
                f"({type(err).__name__}); download it once per node (hf download {self.teacher}), make a CPU "
                f"teacher there (mlr1 distill tiny-teacher {self.teacher}) or pass a folder"
            ) from None
