"""The chunked distillation loss equals a straightforward full-softmax reference, value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX

from mlr1_titan.components.loss import MLR1Loss
from mlr1_titan.components.token_chunked_loss import TokenChunkedLoss
from mlr1_titan.distill.kd_loss import DistillationLoss

B, L, D, DT, V = 2, 12, 16, 24, 50


def reference_loss(z, t, labels, temperature, ce_weight, global_valid_tokens):
    """Textbook KD on the full [B, L, V] logits with autograd: log_softmax, KL, CE, mask, mean."""
    log_q = F.log_softmax(z.float() / temperature, dim=-1)
    log_p = F.log_softmax(t.float() / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    ce = F.cross_entropy(z.float().flatten(0, 1), labels.flatten(), reduction="none", ignore_index=IGNORE_INDEX)
    mask = (labels != IGNORE_INDEX).flatten()
    per_token = (1 - ce_weight) * temperature**2 * kl.flatten() + ce_weight * ce
    return per_token[mask].sum() / global_valid_tokens


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g, dtype=torch.float64).float()
    x_t = torch.randn(B, L, DT, generator=g)
    student_head, teacher_head = nn.Linear(D, V, bias=False), nn.Linear(DT, V, bias=False)
    with torch.no_grad():
        student_head.weight.copy_(torch.randn(V, D, generator=g) * 0.5)
        teacher_head.weight.copy_(torch.randn(V, DT, generator=g) * 0.5)
    labels = torch.randint(V, (B, L), generator=g)
    labels[0, -3:] = IGNORE_INDEX  # document ends: no target
    labels[1, 4] = IGNORE_INDEX
    return x, x_t, student_head, teacher_head, labels


def _chunked(chunk_tokens, temperature, ce_weight, student_head, teacher_head):
    loss = TokenChunkedLoss.Config(
        chunk_tokens=chunk_tokens,
        loss_fn=DistillationLoss.Config(temperature=temperature, ce_weight=ce_weight, global_vocab_size=V),
    ).build()
    loss.set_lm_head(student_head)
    loss.loss_fn.set_teacher_lm_head(teacher_head)
    return loss


@pytest.mark.parametrize("chunk_tokens", [B * L, 8, 5, 7, 1])  # 5 and 7 divide neither L nor B x L
@pytest.mark.parametrize(("temperature", "ce_weight"), [(1.0, 0.0), (2.0, 0.0), (1.5, 0.3), (1.0, 1.0)])
def test_chunked_loss_and_gradient_equal_the_full_softmax_reference(chunk_tokens, temperature, ce_weight):
    x, x_t, student_head, teacher_head, labels = _setup()
    gvt = torch.tensor((labels != IGNORE_INDEX).sum().item(), dtype=torch.float32)

    # Reference: full logits, autograd.
    x_ref = x.clone().requires_grad_()
    h_ref = torch.tanh(x_ref)  # some decoder op before the head, so the gradient must flow through it
    with torch.no_grad():
        t_ref = teacher_head(x_t)
    ref = reference_loss(student_head(h_ref), t_ref, labels, temperature, ce_weight, gvt)
    ref.backward()
    ref_grad_x, ref_grad_w = x_ref.grad.clone(), student_head.weight.grad.clone()
    student_head.weight.grad = None

    x_ch = x.clone().requires_grad_()
    loss_fn = _chunked(chunk_tokens, temperature, ce_weight, student_head, teacher_head)
    loss, _ = loss_fn(torch.tanh(x_ch), labels, gvt, teacher_hidden=x_t)
    loss.backward()

    assert loss.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(x_ch.grad, ref_grad_x, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(student_head.weight.grad, ref_grad_w, rtol=1e-5, atol=1e-7)
    assert teacher_head.weight.grad is None  # the teacher never gets a gradient


def test_kl_and_its_gradient_vanish_when_student_equals_teacher():
    x, _, student_head, _, labels = _setup(seed=1)
    x = x.requires_grad_()
    loss_fn = _chunked(7, 1.0, 0.0, student_head, student_head)
    loss, _ = loss_fn(x, labels, torch.tensor(20.0), teacher_hidden=x.detach())
    loss.backward()
    assert abs(loss.item()) < 1e-6
    assert x.grad.abs().max().item() < 1e-6
    assert student_head.weight.grad.abs().max().item() < 1e-6
    stats = loss_fn.loss_fn.stats.reduce()
    assert stats["distill/top1_agreement"] == 1.0
    assert stats["distill/kd_loss"] == pytest.approx(0.0, abs=1e-6)


def test_metrics_are_per_valid_token_means():
    x, x_t, student_head, teacher_head, labels = _setup(seed=2)
    n = int((labels != IGNORE_INDEX).sum())
    loss_fn = _chunked(5, 1.0, 0.0, student_head, teacher_head)
    loss_fn(x.requires_grad_(), labels, torch.tensor(float(n)), teacher_hidden=x_t)[0].backward()
    stats = loss_fn.loss_fn.stats.reduce()
    with torch.no_grad():
        z, t = student_head(x), teacher_head(x_t)
        ce = reference_loss(z, t, labels, 1.0, 1.0, n)
        kd = reference_loss(z, t, labels, 1.0, 0.0, n)
        valid = labels != IGNORE_INDEX
        agree = ((z.argmax(-1) == t.argmax(-1)) & valid).sum().item() / n
    assert stats["distill/ce"] == pytest.approx(ce.item(), rel=1e-6)
    assert stats["distill/kd_loss"] == pytest.approx(kd.item(), rel=1e-6)
    assert stats["distill/top1_agreement"] == pytest.approx(agree)


def test_without_a_teacher_the_loss_is_cross_entropy_as_in_validation():
    x, _, student_head, teacher_head, labels = _setup(seed=3)
    loss_fn = _chunked(5, 2.0, 0.0, student_head, teacher_head)
    with torch.no_grad():
        loss, _ = loss_fn(x, labels, torch.tensor(1.0))
        ce = F.cross_entropy(student_head(x).flatten(0, 1), labels.flatten(), reduction="sum")
    assert loss.item() == pytest.approx(ce.item(), rel=1e-6)


def test_token_chunks_bound_the_logits_of_any_batch_and_sequence():
    """Cross-entropy through the token chunks equals torchtitan's unchunked loss, at any chunk size."""
    x, _, student_head, _, labels = _setup(seed=4)
    full = MLR1Loss.Config(chunked=False, vocab_size=V).build()
    x_full = x.clone().requires_grad_()
    ref, _ = full(student_head(torch.tanh(x_full)), labels, torch.tensor(7.0))
    ref.backward()
    for chunk_tokens in (3, 11, 1000):
        head = nn.Linear(D, V, bias=False)
        head.weight = student_head.weight
        student_head.weight.grad = None
        loss_fn = MLR1Loss.Config(chunk_tokens=chunk_tokens, vocab_size=V).build()
        loss_fn.set_lm_head(head)
        seen = []
        head.register_forward_hook(lambda _m, inp, _out, seen=seen: seen.append(inp[0].shape[1]))
        x_ch = x.clone().requires_grad_()
        loss, _ = loss_fn(torch.tanh(x_ch), labels, torch.tensor(7.0))
        loss.backward()
        assert max(seen) == min(chunk_tokens, B * L) and sum(seen) == B * L
        assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
        torch.testing.assert_close(x_ch.grad, x_full.grad, rtol=1e-5, atol=1e-7)


def _case(V: int):
    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(30, V, generator=g) * 3, torch.randn(30, V, generator=g) * 3
    # ties across the two shards (ids 7 and 7 + V // 2) in both models: argmax must pick the smaller id
    t[:, 7] = t[:, 7 + V // 2] = 20.0
    z[:10, 7] = z[:10, 7 + V // 2] = 25.0
    labels = torch.randint(V, (30,), generator=g)
    labels[::4] = IGNORE_INDEX
    return z, t, labels


def _sharded_terms(rank, world, store_path, V, temperature, ce_weight, agreement, out_path) -> None:
    import torch.distributed as dist

    from mlr1_titan.distill.kd_loss import VocabShard, distillation_terms

    dist.init_process_group("gloo", store=dist.FileStore(store_path, world), rank=rank, world_size=world)
    z, t, labels = _case(V)
    shard = VocabShard.of_tp_group(dist.group.WORLD, V)
    size = -(-V // world)
    z_local = z[:, shard.start : shard.start + size].clone().requires_grad_()
    loss, kd, ce, agree = distillation_terms(
        z_local, t[:, shard.start : shard.start + size], labels, temperature=temperature, ce_weight=ce_weight,
        shard=shard, agreement=agreement,
    )  # fmt: skip
    loss.backward()
    torch.save({"values": torch.stack([loss.detach(), kd, ce, agree]), "grad": z_local.grad}, f"{out_path}.{rank}")
    dist.destroy_process_group()


@pytest.mark.parametrize("V", [50, 51])  # even and uneven vocabulary split
@pytest.mark.parametrize(
    ("temperature", "ce_weight", "agreement"), [(1.0, 0.0, False), (1.0, 0.4, True), (1.7, 0.4, True)]
)  # the default (pure KL, an unlogged step), CE mixed in at T = 1 and at T != 1
def test_vocab_parallel_terms_equal_the_whole_vocabulary(tmp_path, V, temperature, ce_weight, agreement):
    """Two TP ranks, each holding its slice of the classes of both logits: same sums, gradient = the slices."""
    import torch.multiprocessing as mp

    from mlr1_titan.distill.kd_loss import distillation_terms

    out = str(tmp_path / "terms")
    args = (2, str(tmp_path / "store"), V, temperature, ce_weight, agreement, out)
    mp.spawn(_sharded_terms, args=args, nprocs=2)
    z, t, labels = _case(V)
    z = z.requires_grad_()
    loss, kd, ce, agree = distillation_terms(
        z, t, labels, temperature=temperature, ce_weight=ce_weight, agreement=agreement
    )
    loss.backward()
    whole = torch.stack([loss.detach(), kd, ce, agree])
    if agreement:
        assert agree.item() >= 7  # the 7 valid tied rows agree only if both sides break the tie alike
    parts = [torch.load(f"{out}.{r}") for r in range(2)]
    for part in parts:
        torch.testing.assert_close(part["values"], whole, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.cat([p["grad"] for p in parts], dim=-1), z.grad, rtol=1e-5, atol=1e-7)


def test_logits_that_are_not_this_ranks_vocabulary_slice_are_refused():
    x, x_t, student_head, teacher_head, labels = _setup(seed=5)
    loss_fn = _chunked(7, 1.0, 0.0, student_head, teacher_head)
    loss_fn.loss_fn.global_vocab_size = V + 1
    with pytest.raises(ValueError, match=f"student logits have {V} classes on this rank.*gives it {V + 1}"):
        loss_fn(x.requires_grad_(), labels, torch.tensor(1.0), teacher_hidden=x_t)
