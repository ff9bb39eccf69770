"""Property-based tests of the DeepLIFT engine (Hypothesis): random small architectures (the
Transformer included), random weights at every scale up to saturation and overflow, NaN
planted in random parameters, random ids and backgrounds. Whatever is drawn, the explainer
gives finite attributions that add up, or a clear error; never a silent NaN.

Examples are derandomized (the same ones every run, so a failure reproduces) and have no
deadline (nothing here may pass or fail on time).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqshap import AdditivityError, DeepExplainer, NonFiniteError
from seqshap.models import TRAINABLE, build_model

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOL = {torch.float32: 1e-4, torch.float64: 1e-5}  # shap_values' own tolerances


@st.composite
def small_models(draw, scales: tuple[float, ...] = (1e-3, 0.1, 1.0, 3.0)):
    """(net, vocab size, length): a random small architecture, its default init times a random scale."""
    arch = draw(st.sampled_from(TRAINABLE))
    vocab = draw(st.integers(8, 30))
    heads = draw(st.sampled_from([1, 2]))
    embed = heads * draw(st.integers(2, 4))
    if arch == "cnn":
        size = {"filters": draw(st.integers(1, 6)), "kernel_size": draw(st.sampled_from([1, 3, 5]))}
    elif arch == "transformer":
        size = {
            "heads": heads,
            "layers": draw(st.integers(1, 2)),
            "ff_dim": draw(st.integers(2, 8)),
            "max_positions": 16,
            "norm_first": draw(st.booleans()),
        }
    else:
        size = {"hidden": draw(st.integers(1, 6))}
    torch.manual_seed(draw(st.integers(0, 2**16)))
    net = build_model(arch, vocab_size=vocab, embed_dim=embed, **size).eval()
    scale = draw(st.sampled_from(scales))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net, vocab, draw(st.integers(2, 9))


@st.composite
def ids(draw, vocab: int, length: int, rows: tuple[int, int]) -> torch.Tensor:
    """Random rows of ids, Keras-style (front padding, a start token) or anything in the vocabulary."""
    n = draw(st.integers(*rows))
    out = []
    for _ in range(n):
        if draw(st.booleans()):
            k = draw(st.integers(0, length - 1))
            words = draw(st.lists(st.integers(3, vocab - 1), min_size=k, max_size=k))
            out.append([0] * (length - 1 - k) + [1] + words)
        else:
            out.append(draw(st.lists(st.integers(0, vocab - 1), min_size=length, max_size=length)))
    return torch.tensor(out, dtype=torch.long)


def attempt(f):
    """``(f(), None)``, or ``(None, the AdditivityError it raised)`` (NonFiniteError is one)."""
    try:
        return f(), None
    except AdditivityError as e:
        return None, e


def check_answer(explainer: DeepExplainer, x: torch.Tensor, dtype: torch.dtype) -> None:
    """The property: finite values that add up (within shap_values' tolerance), or an AdditivityError
    (NonFiniteError included) with a message; and explain() agrees."""
    phi, error = attempt(lambda: explainer.shap_values(x))
    event(f"shap_values: {type(error).__name__ if error is not None else 'finite and complete'}")
    if error is not None:
        assert str(error)
        _, again = attempt(lambda: explainer.explain(x))
        assert type(again) in (type(error), NonFiniteError, type(None))
        return
    assert np.isfinite(phi).all()
    assert np.isfinite(explainer.last_errors_).all()
    assert explainer.last_errors_.max() <= TOL[dtype]
    for e in explainer.explain(x):
        assert e.is_finite()
        assert e.completeness_error <= TOL[dtype]
        json.dumps(e.to_dict(), allow_nan=False)


def build(net, bg, **kw) -> DeepExplainer | None:
    """The explainer, or None when the background's own output is NaN or infinite (named, up front)."""
    explainer, error = attempt(lambda: DeepExplainer(net, bg, **kw))
    if error is not None:
        event("the background's output is NaN or infinite")
        assert isinstance(error, NonFiniteError)
        assert "background row" in str(error)
    return explainer


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_completeness_at_ordinary_scales(data, dtype):
    """Default init times 1e-3..3, float32 and float64: the attributions always add up."""
    net, vocab, T = data.draw(small_models())
    bg = data.draw(ids(vocab, T, (1, 3)))
    x = data.draw(ids(vocab, T, (1, 3)))
    output = data.draw(st.sampled_from(["probability", "logit"]))
    explainer = DeepExplainer(net, bg, output=output, dtype=None if dtype == torch.float32 else dtype)
    phi = explainer.shap_values(x)  # raises AdditivityError past the tolerance
    assert phi.shape == (len(x), T, 1)
    assert np.isfinite(phi).all()
    assert explainer.last_errors_.max() <= TOL[dtype]


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
@pytest.mark.slow
def test_saturating_and_overflowing_weights_never_give_silent_nan(data, dtype):
    """Scales that saturate every squash (10, 1e3) and that overflow float32 (1e20, 1e30)."""
    net, vocab, T = data.draw(small_models((10.0, 1e3, 1e20, 1e30)))
    bg = data.draw(ids(vocab, T, (1, 3)))
    x = data.draw(ids(vocab, T, (1, 3)))
    output = data.draw(st.sampled_from(["probability", "logit"]))
    explainer = build(net, bg, output=output, dtype=None if dtype == torch.float32 else dtype)
    if explainer is not None:
        check_answer(explainer, x, dtype)


@PROPERTY
@given(data=st.data())
def test_nan_in_any_parameter_never_gives_silent_nan(data):
    net, vocab, T = data.draw(small_models())
    params = list(net.parameters())
    p = params[data.draw(st.integers(0, len(params) - 1))]
    flat = p.data.view(-1)
    flat[data.draw(st.integers(0, flat.numel() - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    bg = data.draw(ids(vocab, T, (1, 3)))
    x = data.draw(ids(vocab, T, (1, 3)))
    explainer = build(net, bg)
    if explainer is not None:
        check_answer(explainer, x, torch.float32)


@pytest.mark.parametrize("arch", TRAINABLE)
def test_a_nan_word_is_named_in_every_architecture(arch):
    """The plainest case of the property, one per architecture: a word whose embedding is NaN."""
    torch.manual_seed(0)
    size = {"cnn": {"filters": 3}, "transformer": {"heads": 2, "layers": 1, "ff_dim": 4}}.get(arch, {"hidden": 3})
    net = build_model(arch, vocab_size=12, embed_dim=4, **size).eval()
    with torch.no_grad():
        net.embedding.weight[7] = float("nan")
    explainer = DeepExplainer(net, torch.tensor([[0, 0, 1, 3, 4]]))
    with pytest.raises(NonFiniteError, match=r"the model's output for input 1 is nan"):
        explainer.shap_values(torch.tensor([[0, 1, 3, 4, 5], [0, 1, 3, 7, 5]]))
