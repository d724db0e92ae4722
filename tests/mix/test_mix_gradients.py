"""Per-sample influence gradients: equal to plain autograd, one sample at a time; sketch and selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlr1_titan.mix.controlled import FLAVOR
from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.mix.gradients import GradientModel, GradientSettings, select_parameters
from mlr1_titan.model import build_on_cpu


@pytest.fixture(scope="module")
def model():
    return build_on_cpu(FLAVOR, seed=3)[1]


def _docs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [np.concatenate([[1], rng.integers(3, 259, int(rng.integers(5, 40)))]) for _ in range(n)]


def _reference_grad(model, names, doc):
    """The gradient of one document's mean token loss, by ordinary backward on the unbatched doc."""
    model.zero_grad(set_to_none=True)
    tokens = torch.as_tensor(doc)[None]
    logits = model(tokens[:, :-1])
    torch.nn.functional.cross_entropy(logits[0].float(), tokens[0, 1:]).backward()
    params = dict(model.named_parameters())
    return torch.cat([params[n].grad.flatten() for n in names])


def test_per_sample_gradients_and_scores_equal_one_backward_per_document(model):
    gm = GradientModel(model, GradientSettings(last_blocks=1, embeddings=True, batch_size=4))
    docs = _docs(7)
    batched = gm.per_sample(docs[:4])  # padded to the longest of the four
    for i in range(4):
        ref = _reference_grad(model, gm.names, docs[i])
        torch.testing.assert_close(batched[i], ref, rtol=1e-4, atol=1e-6)
    probe = _docs(5, seed=1)
    mean = gm.mean_gradient(probe)
    ref_mean = torch.stack([_reference_grad(model, gm.names, d) for d in probe]).mean(0)
    torch.testing.assert_close(mean.float(), ref_mean, rtol=1e-4, atol=1e-6)
    scores = gm.scores(docs, mean[None])
    expected = np.array([float(_reference_grad(model, gm.names, d) @ ref_mean) for d in docs])
    np.testing.assert_allclose(scores[:, 0], expected, rtol=1e-3, atol=1e-7)
    # Micro-batch composition does not change a document's score (up to float rounding).
    one_by_one = GradientModel(model, GradientSettings(last_blocks=1, embeddings=True, batch_size=1))
    np.testing.assert_allclose(one_by_one.scores(docs, mean[None]), scores, rtol=1e-3, atol=1e-7)


def test_sketch_keeps_dot_products_and_is_seeded(model):
    exact = GradientModel(model, GradientSettings(last_blocks=2))
    docs, probe = _docs(12), _docs(6, seed=1)
    exact_scores = exact.scores(docs, exact.mean_gradient(probe)[None])[:, 0]

    def sketched(seed):
        gm = GradientModel(model, GradientSettings(last_blocks=2, projection_dim=2048, seed=seed))
        assert gm.vector_dim == 2048
        return gm.scores(docs, gm.mean_gradient(probe)[None])[:, 0]

    a, b, c = sketched(0), sketched(0), sketched(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.corrcoef(a, exact_scores)[0, 1] > 0.9


def test_parameter_selection(model):
    names = select_parameters(model, GradientSettings(last_blocks=1))
    assert names and all(n.startswith(("layers.1.", "norm.")) for n in names) and "norm.weight" in names
    with_emb = select_parameters(model, GradientSettings(last_blocks=0, embeddings=True))
    assert with_emb == ["tok_embeddings.weight"]
    by_regex = select_parameters(model, GradientSettings(last_blocks=0, params=(r"layers\.0\.feed_forward\..*",)))
    assert by_regex == [n for n, _ in model.named_parameters() if n.startswith("layers.0.feed_forward.")]
    with pytest.raises(InfluenceError, match="no parameter selected"):
        select_parameters(model, GradientSettings(last_blocks=0))
    with pytest.raises(InfluenceError, match="only 2 blocks"):
        select_parameters(model, GradientSettings(last_blocks=3))
    with pytest.raises(InfluenceError, match="'tok_embeddings' matches no parameter"):
        select_parameters(model, GradientSettings(params=("tok_embeddings",)))
    with pytest.raises(InfluenceError, match="--projection-dim 10000000 is not below"):
        GradientModel(model, GradientSettings(last_blocks=1, projection_dim=10_000_000))
    with pytest.raises(InfluenceError, match="not a valid regex"):
        GradientSettings(params=("(",))
