"""The distillation loss: KL(teacher || student) of next-token distributions, per sequence chunk.

Shape legend: N tokens of one chunk (batch x chunk length, flattened), V vocabulary.

Per token, with student logits z, teacher logits t and temperature T::

    kd  = T^2 * KL(softmax(t / T) || softmax(z / T))
    ce  = -log softmax(z)[label]
    loss = (1 - ce_weight) * kd + ce_weight * ce

summed over the tokens whose label is not ``IGNORE_INDEX`` (the loader masks every target that
would cross a document) and divided by the global number of such tokens, exactly as torchtitan
normalises its cross-entropy. ``DistillationLoss`` is the inner loss of the chunked loss
(``components/token_chunked_loss.py``, torchtitan's ``ChunkedLossWrapper`` design): the wrapper
applies the student ``lm_head`` to one chunk of tokens at a time and hands this loss the matching
chunk of the teacher's final hidden states, to which it applies the teacher's ``lm_head`` here.
Memory is therefore O(chunk x V), never O(sequence x V).

``distillation_terms`` is one autograd function with a hand-written backward
(d loss / d z = (1 - ce_weight) * T * (softmax(z / T) - softmax(t / T)) + ce_weight * (softmax(z) - onehot)),
so a chunk keeps two [N, V] tensors alive instead of autograd's chain of softmax intermediates.
The paper states neither T, ce_weight nor the KL direction (docs/paper_facts.md §2.3); the
defaults (T = 1, ce_weight = 0: pure forward KL) follow its wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import spmd_types as spmd
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.tensor import DTensor
from torchtitan.components.loss import IGNORE_INDEX, BaseLoss, CrossEntropyLoss
from torchtitan.config import CompileConfig
from torchtitan.distributed.spmd_types import current_spmd_mesh, spmd_mesh_size
from torchtitan.distributed.utils import get_spmd_backend

from mlr1_titan.distill.metrics import DistillStats


@dataclass(frozen=True)
class VocabShard:
    """This rank's slice [start, start + size) of the vocabulary under tensor parallelism.

    torchtitan's loss-parallel split (``_LossParallelCrossEntropy``): ceil(V / tp) classes per rank,
    the last rank possibly fewer. ``group`` None: the whole vocabulary on this rank.
    """

    start: int = 0
    group: dist.ProcessGroup | None = None

    @classmethod
    def of_tp_group(cls, group: dist.ProcessGroup, global_vocab_size: int) -> VocabShard:
        per_rank = -(-global_vocab_size // dist.get_world_size(group))
        return cls(start=min(global_vocab_size, per_rank * dist.get_rank(group)), group=group)

    def check_width(self, width: int, global_vocab_size: int | None, name: str) -> None:
        """Refuse logits that are not exactly this rank's slice (a full vocabulary would count twice)."""
        if global_vocab_size is None:
            return
        per_rank = global_vocab_size if self.group is None else -(-global_vocab_size // dist.get_world_size(self.group))
        expected = min(global_vocab_size, self.start + per_rank) - self.start
        if width != expected or expected == 0:
            raise ValueError(
                f"{name} logits have {width} classes on this rank; the vocabulary split of {global_vocab_size} "
                f"classes gives it {expected} (start {self.start})"
            )

    def all_reduce(self, x: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        if self.group is not None:
            dist.all_reduce(x, op=op, group=self.group)
        return x

    def logsumexp(self, x_NV: torch.Tensor) -> torch.Tensor:
        if self.group is None:
            return torch.logsumexp(x_NV, dim=-1)
        max_N = self.all_reduce(x_NV.amax(-1), dist.ReduceOp.MAX)
        sum_N = self.all_reduce(torch.sub(x_NV, max_N.unsqueeze(-1)).exp_().sum(-1))
        return sum_N.log_().add_(max_N)

    def softmax(self, x_NV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(softmax over the whole vocabulary, logsumexp), this rank's columns of the former."""
        if self.group is None:
            p_NV = torch.softmax(x_NV, dim=-1)
            # log p = x - lse at every column; at the max, p >= 1/V, so the log is exact to fp32.
            return p_NV, x_NV.amax(-1) - p_NV.amax(-1).log()
        max_N = self.all_reduce(x_NV.amax(-1), dist.ReduceOp.MAX)
        e_NV = torch.sub(x_NV, max_N.unsqueeze(-1)).exp_()
        sum_N = self.all_reduce(e_NV.sum(-1))
        return e_NV.div_(sum_N.unsqueeze(-1)), sum_N.log().add_(max_N)

    def pick(self, x_NV: torch.Tensor, ids_N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x[n, ids[n]] summed over the ranks, local column of ids, whether this rank holds ids)."""
        local_N = ids_N - self.start
        mine_N = (local_N >= 0) & (local_N < x_NV.shape[-1])
        local_N = torch.where(mine_N, local_N, 0)
        picked_N = torch.where(mine_N, x_NV.gather(-1, local_N.unsqueeze(-1)).squeeze(-1), 0.0)
        return self.all_reduce(picked_N), local_N, mine_N

    def argmax(self, x_NV: torch.Tensor) -> torch.Tensor:
        """Global argmax (ties: the smallest id, as torch.argmax)."""
        value_N, index_N = x_NV.max(-1)
        if self.group is None:
            return index_N
        best_N = self.all_reduce(value_N.clone(), dist.ReduceOp.MAX)
        cand_N = torch.where(value_N == best_N, index_N + self.start, torch.iinfo(index_N.dtype).max)
        return self.all_reduce(cand_N, dist.ReduceOp.MIN)


class _DistillationTerms(torch.autograd.Function):
    """(loss sum, kd sum, ce sum, top-1 agreements) of one chunk; differentiable in the student logits only.

    With p = softmax(t / T), q = softmax(z / T) and sum_v p = 1, the KL needs no [N, V] log-probs:
    KL(p || q) = (p . (t - z)) / T + logsumexp(z / T) - logsumexp(t / T). The forward keeps p and q
    (two [N, V] fp32 tensors; the student logits too when ce_weight > 0 and T != 1) and the backward
    turns q into the gradient in place. Under
    tensor parallelism both logits are this rank's vocabulary slice: the row reductions (logsumexp,
    dot products, target logit, argmax) are all-reduced over the TP group and the gradient is local.
    """

    @staticmethod
    def forward(ctx, z_NV, t_NV, labels_N, temperature: float, ce_weight: float, shard: VocabShard, agreement: bool):
        T = temperature
        z = z_NV.float()
        t = t_NV.float()
        zT, tT = (z, t) if T == 1.0 else (z / T, t / T)
        valid_N = labels_N != IGNORE_INDEX
        weight_N = valid_N.to(torch.float32)
        p_NV, lse_t_N = shard.softmax(tT)
        q_NV, lse_zT_N = shard.softmax(zT)
        # p . (t - z) as two row-wise dot products (no [N, V] temporary).
        dot_N = shard.all_reduce(torch.einsum("nv,nv->n", p_NV, tT) - torch.einsum("nv,nv->n", p_NV, zT))
        kl_N = dot_N + lse_zT_N - lse_t_N
        kd_sum = T**2 * (kl_N * weight_N).sum()
        safe_labels_N = torch.where(valid_N, labels_N, 0)
        lse_z_N = lse_zT_N if T == 1.0 else shard.logsumexp(z)
        target_N, local_labels_N, mine_N = shard.pick(z, safe_labels_N)
        ce_sum = ((lse_z_N - target_N) * weight_N).sum()
        agree = z.new_zeros(())
        if agreement:  # two extra passes over the logits: only when the step is logged
            agree = ((shard.argmax(z) == shard.argmax(t)) & valid_N).sum().to(torch.float32)
        loss = (1.0 - ce_weight) * kd_sum + ce_weight * ce_sum

        ctx.temperature, ctx.ce_weight, ctx.in_dtype = T, ce_weight, z_NV.dtype
        # q = softmax(z / T) and p: the KD gradient; z itself only when CE at another temperature trains too.
        z_kept = z_NV if ce_weight > 0 and T != 1.0 else None
        ctx.save_for_backward(q_NV, p_NV, z_kept, lse_z_N, local_labels_N, weight_N * mine_N, weight_N)
        kd_sum, ce_sum = kd_sum.detach(), ce_sum.detach()
        ctx.mark_non_differentiable(kd_sum, ce_sum, agree)
        return loss, kd_sum, ce_sum, agree

    @staticmethod
    def backward(ctx, grad_loss, _grad_kd, _grad_ce, _grad_agree):
        q_NV, p_NV, z_NV, lse_z_N, local_labels_N, mine_weight_N, weight_N = ctx.saved_tensors
        T, alpha = ctx.temperature, ctx.ce_weight
        scale_N1 = (grad_loss * weight_N).unsqueeze(-1)
        # q is not needed afterwards: it becomes the gradient in place (no third [N, V] tensor at T = 1).
        if alpha == 0:
            grad_NV = q_NV.sub_(p_NV)  # d kd / dz = T (q - p)
            scale_N1 = scale_N1 * T
        elif T == 1.0:
            grad_NV = q_NV.sub_(p_NV, alpha=1.0 - alpha)  # (1 - a)(q - p) + a (q - onehot)
        else:
            # (1 - a) T (q - p) + a (softmax(z) - onehot)
            grad_NV = q_NV.sub_(p_NV).mul_((1.0 - alpha) * T)
            grad_NV.add_(torch.sub(z_NV.float(), lse_z_N.unsqueeze(-1)).exp_(), alpha=alpha)
        if alpha > 0:  # the onehot only on the rank holding the label
            grad_NV.scatter_add_(-1, local_labels_N.unsqueeze(-1), (-alpha * mine_weight_N).unsqueeze(-1))
        return grad_NV.mul_(scale_N1).to(ctx.in_dtype), None, None, None, None, None, None


def distillation_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    ce_weight: float = 0.0,
    shard: VocabShard = VocabShard(),
    agreement: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over the valid tokens of ``[..., V]`` logits: (loss, T^2-scaled KL, CE, top-1 agreements;
    0 unless ``agreement``)."""
    V = student_logits.shape[-1]
    if teacher_logits.shape[-1] != V:
        raise ValueError(f"teacher logits have {teacher_logits.shape[-1]} classes, the student's {V}")
    return _DistillationTerms.apply(
        student_logits.reshape(-1, V),
        teacher_logits.reshape(-1, V),
        labels.reshape(-1),
        temperature,
        ce_weight,
        shard,
        agreement,
    )


class DistillationLoss(BaseLoss):
    """Inner loss of the chunked loss (or the whole loss when unchunked) for logit distillation.

    Called with ``teacher_hidden`` (the teacher's final-norm hidden states of the same tokens) it
    returns the distillation loss and adds the chunk's terms to ``stats``; called without it (the
    validator, which has no teacher) it is plain cross-entropy.
    """

    @dataclass(kw_only=True, slots=True)
    class Config(BaseLoss.Config):
        temperature: float = 1.0
        """Softmax temperature T of both distributions; the KL is scaled by T^2."""
        ce_weight: float = 0.0
        """Weight of the next-token cross-entropy mixed into the loss (0: pure KL)."""
        global_vocab_size: int | None = None
        """Full vocabulary size (cross-entropy without a teacher)."""

    def __init__(self, config: Config, *, compile_config: CompileConfig | None = None):
        self.temperature, self.ce_weight = config.temperature, config.ce_weight
        self.global_vocab_size = config.global_vocab_size
        self.fn = distillation_terms
        self._maybe_compile(compile_config)
        self.cross_entropy = CrossEntropyLoss(
            CrossEntropyLoss.Config(global_vocab_size=config.global_vocab_size), compile_config=compile_config
        )
        self.teacher_lm_head: nn.Module | None = None
        self.stats = DistillStats()

    def set_teacher_lm_head(self, lm_head: nn.Module) -> None:
        self.teacher_lm_head = lm_head

    def __call__(
        self,
        pred: torch.Tensor,
        labels: torch.Tensor,
        global_valid_tokens: torch.Tensor | None = None,
        teacher_hidden: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if teacher_hidden is None:
            return self.cross_entropy(pred, labels, global_valid_tokens)
        assert self.teacher_lm_head is not None, "set_teacher_lm_head before distilling"
        if isinstance(pred, DTensor):
            raise NotImplementedError(
                "distillation takes the spmd_types backend's local logits; set parallelism.spmd_backend = "
                f"'spmd_types' (got DTensor logits with placements {pred.placements})"
            )
        with torch.no_grad():
            teacher_logits = self.teacher_lm_head(teacher_hidden)
        shard = VocabShard()
        if get_spmd_backend() == "spmd_types" and spmd_mesh_size("tp") > 1:
            shard = VocabShard.of_tp_group(current_spmd_mesh().get_group("tp"), self.global_vocab_size)
        for name, logits in (("student", pred), ("teacher", teacher_logits)):
            shard.check_width(logits.shape[-1], self.global_vocab_size, name)
        loss, kd_sum, ce_sum, agree = self.fn(
            pred,
            teacher_logits,
            labels,
            temperature=self.temperature,
            ce_weight=self.ce_weight,
            shard=shard,
            agreement=self.stats.collect_agreement,
        )
        self.stats.add_chunk(kd_sum=kd_sum, ce_sum=ce_sum, agree=agree, tokens=(labels != IGNORE_INDEX).sum())
        if global_valid_tokens is not None:
            with spmd.no_typecheck():
                loss = loss / global_valid_tokens
        return loss, {}
