"""Per-sample loss gradients over a parameter subset, and their dot products with probe gradients.

The influence of a training document x on a capability c at parameters theta is, in our reading of
the paper's Eq. 2 (Hessian taken as the identity, TracIn / first-order form):

    I_c(x; theta) = grad L(x; theta) . mean_{z in probes(c)} grad L(z; theta)

with L the mean next-token loss of one document. Positive = a gradient step on x lowers the probe
loss. Gradients are taken over a subset of the parameters (`GradientSettings`), per sample with
`torch.func.vmap(grad(...))` over padded micro-batches: one forward and backward per micro-batch,
never one per sample. With `projection_dim` > 0 every gradient is first mapped to that many
dimensions by a seeded Gaussian sketch (Johnson-Lindenstrauss: dot products are kept in expectation),
generated in row blocks so no full P x k matrix is ever held.

Shape legend: B = micro-batch, L = padded length, P = selected parameters, K = probe vectors.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from mlr1_titan.mix.errors import InfluenceError

_SKETCH_ROWS = 1 << 16  # rows of the sketch generated at a time (x projection_dim floats)
_noted: set[str] = set()
logger = logging.getLogger(__name__)


def _note_fallbacks(caught: list[warnings.WarningMessage]) -> None:
    """torch loops over the batch for ops without a vmap rule (the CPU flash-attention kernels):
    say so once per op in plain words, instead of torch's warning on every call."""
    for w in caught:
        match = re.search(r"batching rule for (\S+?)\.", str(w.message))
        if match is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        elif match.group(1) not in _noted:
            _noted.add(match.group(1))
            logger.info(f"mix: {match.group(1)} has no vmap rule here; torch loops over the micro-batch for it")


@dataclass(frozen=True)
class GradientSettings:
    """Which gradients are taken, and how they are batched and sketched."""

    last_blocks: int = 2
    """Transformer blocks, counted from the output, whose weights are in the gradient (with the final norm)."""
    embeddings: bool = False
    """Also the token embedding (= the tied output head): V x dim more values per sample."""
    params: tuple[str, ...] = ()
    """Extra regexes over parameter names to include (each must match whole names, re.fullmatch)."""
    projection_dim: int = 0
    """0: exact dot products; k > 0: gradients sketched to k dimensions first (seeded)."""
    seed: int = 0
    """Seed of the sketch."""
    max_tokens: int = 1024
    """A document is scored on its first max_tokens tokens (BOS included)."""
    batch_size: int = 8
    """Documents per vmap micro-batch (memory: batch_size x P floats)."""

    def __post_init__(self) -> None:
        for name in ("last_blocks", "projection_dim"):
            if getattr(self, name) < 0:
                raise InfluenceError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.max_tokens < 2:
            raise InfluenceError(f"--max-tokens must be >= 2 (one prediction), got {self.max_tokens}")
        if self.batch_size < 1:
            raise InfluenceError(f"--batch-size must be >= 1, got {self.batch_size}")
        for pattern in self.params:
            try:
                re.compile(pattern)
            except re.error as err:
                raise InfluenceError(f"--params {pattern!r} is not a valid regex: {err}") from None

    def identity(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = [f"last {self.last_blocks} blocks + final norm" if self.last_blocks else "no blocks"]
        if self.embeddings:
            parts.append("embeddings")
        if self.params:
            parts.append("params " + ", ".join(self.params))
        parts.append(
            f"sketch to {self.projection_dim} dims (seed {self.seed})" if self.projection_dim else "exact dot products"
        )
        return "; ".join(parts) + f"; first {self.max_tokens} tokens"


def select_parameters(model: torch.nn.Module, settings: GradientSettings) -> list[str]:
    """Names of the parameters the gradient is taken over, in the model's order."""
    names = [name for name, _ in model.named_parameters()]
    layer_ids = sorted({int(m.group(1)) for n in names if (m := re.match(r"layers\.(\d+)\.", n))})
    if settings.last_blocks > len(layer_ids):
        raise InfluenceError(f"--last-blocks {settings.last_blocks}: the model has only {len(layer_ids)} blocks")
    last = set(layer_ids[len(layer_ids) - settings.last_blocks :]) if settings.last_blocks else set()
    patterns = [re.compile(p) for p in settings.params]
    for pattern in patterns:
        if not any(pattern.fullmatch(n) for n in names):
            raise InfluenceError(
                f"--params {pattern.pattern!r} matches no parameter (it must match a whole name); names look like "
                f"{names[:3]}"
            )
    chosen = []
    for name in names:
        block = re.match(r"layers\.(\d+)\.", name)
        if (
            (block and int(block.group(1)) in last)
            or (settings.last_blocks and name.startswith("norm."))
            or (settings.embeddings and name.split(".")[0] in ("tok_embeddings", "output", "lm_head"))
            or any(p.fullmatch(name) for p in patterns)
        ):
            chosen.append(name)
    if not chosen:
        raise InfluenceError(
            "no parameter selected for the influence gradient (--last-blocks 0, no --embeddings, and no "
            f"--params regex matches); parameter names look like {names[:4]}"
        )
    return chosen


def pad_batch(docs: Sequence[np.ndarray], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] tokens (0-padded) and [B, L] bool mask of real tokens, each doc cut to max_tokens."""
    docs = [d[:max_tokens] for d in docs]
    length = max(len(d) for d in docs)
    tokens_BL = torch.zeros(len(docs), length, dtype=torch.long)
    mask_BL = torch.zeros(len(docs), length, dtype=torch.bool)
    for i, d in enumerate(docs):
        tokens_BL[i, : len(d)] = torch.from_numpy(np.asarray(d, dtype=np.int64))
        mask_BL[i, : len(d)] = True
    return tokens_BL, mask_BL


class _Sketch:
    """x -> x @ R / sqrt(k), R a seeded Gaussian P x k matrix generated per tensor in row blocks."""

    def __init__(self, names: list[str], numels: list[int], dim: int, seed: int, device: torch.device):
        self.dim, self.device = dim, device
        self.blocks: list[tuple[int, int, int]] = []  # (start, stop, seed) over the flat gradient
        start = 0
        for name, numel in zip(names, numels):
            base = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:7], "little")
            for i, row in enumerate(range(0, numel, _SKETCH_ROWS)):
                self.blocks.append((start + row, start + min(row + _SKETCH_ROWS, numel), base + i))
            start += numel

    def __call__(self, flat_BP: torch.Tensor) -> torch.Tensor:
        out_BK = torch.zeros(flat_BP.shape[0], self.dim, dtype=torch.float32, device=self.device)
        gen = torch.Generator(device=self.device)
        for lo, hi, seed in self.blocks:
            gen.manual_seed(seed)
            r = torch.randn(hi - lo, self.dim, generator=gen, device=self.device)
            out_BK += flat_BP[:, lo:hi].float() @ r
        return out_BK / math.sqrt(self.dim)


@dataclass
class GradientModel:
    """A model with the selected parameters exposed to torch.func; everything else is a constant."""

    model: torch.nn.Module
    settings: GradientSettings
    names: list[str] = field(init=False)
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        self.model.eval()
        self.names = select_parameters(self.model, self.settings)
        params = dict(self.model.named_parameters())
        self.device = next(iter(params.values())).device
        self.selected = {n: params[n].detach() for n in self.names}
        self.frozen = {n: p.detach() for n, p in params.items() if n not in self.selected}
        self.frozen.update(dict(self.model.named_buffers()))
        numels = [self.selected[n].numel() for n in self.names]
        self.num_params = sum(numels)
        if self.settings.projection_dim >= self.num_params:
            raise InfluenceError(
                f"--projection-dim {self.settings.projection_dim} is not below the {self.num_params} selected "
                "parameters: exact dot products (--projection-dim 0) are cheaper and exact"
            )
        self.sketch = (
            _Sketch(self.names, numels, self.settings.projection_dim, self.settings.seed, self.device)
            if self.settings.projection_dim
            else None
        )

    @property
    def vector_dim(self) -> int:
        return self.settings.projection_dim or self.num_params

    def _doc_loss(self, selected: dict, tokens_L: torch.Tensor, mask_L: torch.Tensor) -> torch.Tensor:
        logits_1LV = functional_call(self.model, {**selected, **self.frozen}, (tokens_L[None, :-1],))
        nll_L = F.cross_entropy(logits_1LV[0].float(), tokens_L[1:], reduction="none")
        weight_L = mask_L[1:].float()
        return (nll_L * weight_L).sum() / weight_L.sum()

    def _flatten(self, grads: dict[str, torch.Tensor], batch: int) -> torch.Tensor:
        flat_BP = torch.cat([grads[n].reshape(batch, -1).float() for n in self.names], dim=1)
        return self.sketch(flat_BP) if self.sketch is not None else flat_BP

    def per_sample(self, docs: Sequence[np.ndarray]) -> torch.Tensor:
        """[B, P] (or [B, k]) gradients of each document's mean token loss, one vmap call."""
        tokens_BL, mask_BL = pad_batch(docs, self.settings.max_tokens)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            grads = vmap(grad(self._doc_loss), in_dims=(None, 0, 0))(
                self.selected, tokens_BL.to(self.device), mask_BL.to(self.device)
            )
        _note_fallbacks(caught)
        return self._flatten(grads, len(docs))

    def mean_gradient(self, docs: Sequence[np.ndarray]) -> torch.Tensor:
        """[P] (or [k]) gradient of the mean over `docs` of their mean token loss, float64."""
        if not docs:
            raise InfluenceError("mean gradient of an empty probe set")
        total = torch.zeros(self.vector_dim, dtype=torch.float64, device=self.device)
        selected = {n: p.clone().requires_grad_(True) for n, p in self.selected.items()}
        for start in range(0, len(docs), self.settings.batch_size):
            tokens_BL, mask_BL = pad_batch(docs[start : start + self.settings.batch_size], self.settings.max_tokens)
            tokens_BL, mask_BL = tokens_BL.to(self.device), mask_BL.to(self.device)
            logits_BLV = functional_call(self.model, {**selected, **self.frozen}, (tokens_BL[:, :-1],))
            nll_BL = F.cross_entropy(
                logits_BLV.flatten(0, 1).float(), tokens_BL[:, 1:].flatten(), reduction="none"
            ).view_as(tokens_BL[:, 1:])
            weight_BL = mask_BL[:, 1:].float()
            loss = ((nll_BL * weight_BL).sum(1) / weight_BL.sum(1)).sum()
            grads = torch.autograd.grad(loss, [selected[n] for n in self.names])
            total += self._flatten(dict(zip(self.names, grads)), 1)[0].double()
        return total / len(docs)

    def probe_vectors(self, probes: dict[str, list[np.ndarray]], capabilities: list[str]) -> torch.Tensor:
        """[K, P] (or [K, k]) mean probe gradients of `capabilities`, float32."""
        return torch.stack([self.mean_gradient(probes[c]).float() for c in capabilities])

    def scores(self, docs: Sequence[np.ndarray], vectors_KP: torch.Tensor) -> np.ndarray:
        """[n, K] float64: per-sample gradient . each of the K probe vectors.

        Documents are sorted by length into micro-batches (less padding); the result is in input order.
        """
        order = sorted(range(len(docs)), key=lambda i: (-min(len(docs[i]), self.settings.max_tokens), i))
        out = np.zeros((len(docs), vectors_KP.shape[0]), dtype=np.float64)
        vectors_PK = vectors_KP.to(self.device, torch.float32).T
        bs = self.settings.batch_size
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            grads_BP = self.per_sample([docs[i] for i in idx])
            out[idx] = (grads_BP @ vectors_PK).double().cpu().numpy()
        return out
