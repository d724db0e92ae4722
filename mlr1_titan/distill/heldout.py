"""How close a student is to its teacher on held-out text: CE, KL(teacher || student), top-1 agreement.

Both models are HF folders loaded with transformers (a trained student exported with
``--checkpoint.last_save_in_hf``, the teacher as given to ``--distill.teacher``), so the measurement
is independent of the training code. Each document is scored alone (``BOS text EOS``), every
position predicting the next token; the numbers are means over all such tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class HeldoutScores:
    ce: float
    """Student next-token cross-entropy (nats per token)."""
    kl: float
    """KL(teacher || student) of the next-token distributions at T = 1 (nats per token)."""
    top1_agreement: float
    """Fraction of positions where the student's argmax is the teacher's."""
    tokens: int
    """Positions scored."""

    def describe(self) -> str:
        return f"CE {self.ce:.4f}  KL {self.kl:.4f}  top-1 agreement {self.top1_agreement:.3f}  ({self.tokens} tokens)"


def _load(folder: str | Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


@torch.no_grad()
def score_heldout(student: str | Path, teacher: str | Path, texts: list[str], tokenizer) -> HeldoutScores:
    """Scores of the HF ``student`` folder against the HF ``teacher`` folder on ``texts``."""
    s_model, t_model = _load(student), _load(teacher)
    ce = kl = agree = 0.0
    n = 0
    for text in texts:
        ids = torch.tensor([tokenizer.encode(text, add_bos=True, add_eos=True)])
        z, t = s_model(ids).logits[0, :-1].float(), t_model(ids).logits[0, :-1].float()
        target = ids[0, 1:]
        ce += F.cross_entropy(z, target, reduction="sum").item()
        log_p, log_q = F.log_softmax(t, -1), F.log_softmax(z, -1)
        kl += (log_p.exp() * (log_p - log_q)).sum().item()
        agree += (z.argmax(-1) == t.argmax(-1)).sum().item()
        n += len(target)
    return HeldoutScores(ce=ce / n, kl=kl / n, top1_agreement=agree / n, tokens=n)
