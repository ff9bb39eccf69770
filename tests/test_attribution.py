"""The DeepSHAP engine: exactness on every architecture and output space, closed-form
cases, shap's return convention, unsupported layers, and that the user's model is untouched."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from seqshap.attribution import (
    AdditivityError,
    DeepExplainer,
    DeepLift,
    Explanation,
    ProductRule,
    UnsupportedLayerError,
)
from seqshap.attribution.rules import Product
from seqshap.models import TRAINABLE, build_model

V, T = 60, 10


def small(arch: str, seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    size = {
        "cnn": {"filters": 6, "kernel_size": 3},
        "transformer": {"heads": 1, "layers": 2, "ff_dim": 7, "norm_first": True},
    }.get(arch, {"hidden": 7})
    net = build_model(arch, vocab_size=V, embed_dim=5, **size, **kw).eval()
    with torch.no_grad():  # larger weights than the default init: saturated gates, big logits
        for p in net.parameters():
            p.mul_(3.0)
    return net


def data(n: int, k: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, V, (n, T), generator=g)
    bg = torch.randint(3, V, (k, T), generator=g)
    x[0, :4] = 0  # front padding, as the encoder makes it
    bg[0, :6] = 0
    if n > 1 and k > 1:
        bg[1] = x[1]  # an input identical to a reference: every difference is 0
    return x, bg


def miss(ex: DeepExplainer, x, phi) -> float:
    return float(ex.completeness_errors(ex._prepare(x, "x"), phi).max())


CASES = list(itertools.product(TRAINABLE, ("probability", "logit"), (torch.float64, None), ("shapley", "signal")))


@pytest.mark.parametrize(("arch", "output", "dtype", "rule"), CASES)
@pytest.mark.slow
def test_completeness_every_architecture(arch, output, dtype, rule):
    net = small(arch)
    x, bg = data(4, 6)
    ex = DeepExplainer(net, bg, output=output, dtype=dtype, product_rule=rule)
    phi = ex.shap_values(x, check_additivity=False)
    assert phi.shape == (4, T, 1)
    bound = 1e-5 if dtype == torch.float64 else 1e-4
    assert miss(ex, x, phi) <= bound
    # the explanation is not trivially zero
    assert np.abs(phi).sum() > 1e-3


@pytest.mark.parametrize("arch", TRAINABLE)
def test_random_untrained_default_init_also_adds_up(arch):
    torch.manual_seed(5)
    net = build_model(arch, vocab_size=V, embed_dim=8).eval()
    x, bg = data(3, 5, seed=9)
    ex = DeepExplainer(net, bg, dtype=torch.float64)
    assert miss(ex, x, ex.shap_values(x)) <= 1e-5


def test_trained_model_seed_style_job(tiny_model, imdb):
    """The seed call on a trained model: ids from real reviews, 100 background rows."""
    bg = tiny_model.encode(imdb["train"].texts[:100])
    x = tiny_model.encode(imdb["test"].texts[:10])
    ex = DeepExplainer(tiny_model.net, bg)
    phi = ex.shap_values(x)  # additivity checked inside
    assert phi.shape == (10, 40, 1)
    assert ex.last_errors_.max() <= 1e-4
    assert ex.expected_value.shape == (1,)
    f_bg = tiny_model.predict_ids(bg)
    assert ex.expected_value[0] == pytest.approx(f_bg.mean(), abs=1e-6)
    # padding positions shared by input and every reference get exactly nothing
    assert np.all(phi[x == 0].ravel() == 0) or np.abs(phi[x == 0]).max() < 1e-6


class BagOfWords(nn.Module):
    """f(x) = sum_t w[x_t] + b: linear, so DeepSHAP must equal exact Shapley values."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(V, 3)
        self.fc = nn.Linear(3, 1)

    def forward(self, ids):
        return self.fc(self.embedding(ids).sum(1))


def test_linear_model_equals_exact_shapley():
    net = BagOfWords().eval()
    x, bg = data(2, 4)
    ex = DeepExplainer(net, bg, output="raw", dtype=torch.float64)
    phi = ex.shap_values(x)[..., 0]
    with torch.no_grad():
        w = net.fc(net.embedding.weight.double().to(torch.float32)).double()[:, 0] - net.fc.bias.double()
    # For a linear model the Shapley value of token t is w[x_t] - mean_k w[r_kt].
    expected = w[x] - w[bg].mean(0)
    assert np.allclose(phi, expected.numpy(), atol=1e-6)


def test_product_rule_equals_two_player_shapley():
    """One gate product with one reference: the rule gives exact Shapley values."""
    ax, ar, bx, br = 0.9, 0.2, -1.5, 0.7
    v = lambda a, b: a * b
    shapley_a = 0.5 * ((v(ax, br) - v(ar, br)) + (v(ax, bx) - v(ar, bx)))
    shapley_b = 0.5 * ((v(ar, bx) - v(ar, br)) + (v(ax, bx) - v(ax, br)))
    a = torch.tensor([ax, ar], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([bx, br], dtype=torch.float64, requires_grad=True)
    y = Product.apply(a, b, ProductRule("shapley"))
    ga, gb = torch.autograd.grad(y[0], (a, b))
    assert float(ga[0] * (ax - ar)) == pytest.approx(shapley_a, abs=1e-12)
    assert float(gb[0] * (bx - br)) == pytest.approx(shapley_b, abs=1e-12)
    # the "signal" rule gives the whole difference to the signal b
    y = Product.apply(a, b, ProductRule("signal"))
    ga, gb = torch.autograd.grad(y[0], (a, b))
    assert float(ga[0]) == 0.0
    assert float(gb[0] * (bx - br)) == pytest.approx(ax * bx - ar * br, abs=1e-12)


def test_single_reference_deeplift_is_exact_shapley_for_one_gate():
    """y = sigmoid(u) * v with u, v linear in two tokens: with one reference the rule is
    the 2-player Shapley value of (u-token, v-token)."""

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, 1)
            with torch.no_grad():
                self.embedding.weight.copy_(torch.linspace(-2, 2, V)[:, None])

        def forward(self, ids):
            e = self.embedding(ids)[..., 0]
            return torch.sigmoid(e[:, :1]) * e[:, 1:2]

    net = Gate().eval()
    x, r = torch.tensor([[50, 10]]), torch.tensor([[20, 40]])
    ex = DeepLift(net, r, output="raw", dtype=torch.float64)
    phi = ex.shap_values(x)[0, :, 0]
    w = net.embedding.weight.double()[:, 0]
    f = lambda a, b: torch.sigmoid(w[a]) * w[b]
    s0 = 0.5 * ((f(50, 40) - f(20, 40)) + (f(50, 10) - f(20, 10)))
    s1 = 0.5 * ((f(20, 10) - f(20, 40)) + (f(50, 10) - f(50, 40)))
    assert phi.tolist() == pytest.approx([s0.item(), s1.item()], abs=1e-10)


def test_return_convention_matches_shap_multi_output():
    class TwoClass(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, 4)
            self.rnn = nn.GRU(4, 5, batch_first=False)
            self.fc = nn.Linear(5, 3)

        def forward(self, ids):
            out, _ = self.rnn(self.embedding(ids).transpose(0, 1))
            return torch.softmax(self.fc(out[-1]), dim=-1)

    torch.manual_seed(0)
    net = TwoClass().eval()
    x, bg = data(3, 4)
    ex = DeepExplainer(net, bg, dtype=torch.float64)
    phi = ex.shap_values(x)
    assert phi.shape == (3, T, 3)
    assert ex.expected_value.shape == (3,)
    assert miss(ex, x, phi) <= 1e-5
    # probabilities sum to one, so the three outputs' attributions cancel per token
    assert np.allclose(phi.sum(-1), 0, atol=1e-9)
    logit = DeepExplainer(net, bg, output="logit", dtype=torch.float64)
    assert miss(logit, x, logit.shap_values(x)) <= 1e-5


class Wrapper(nn.Module):
    """A user's own wrapper: functional ops, a module list, an LSTM not batch-first, two
    layers, bidirectional, and an elementwise gate between two signals."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, 6)
        self.blocks = nn.ModuleList([nn.LSTM(6, 4, num_layers=2, bidirectional=True), nn.Linear(8, 8)])
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(8, 1))

    def forward(self, ids):
        e = self.embedding(ids).permute(1, 0, 2)  # [T, B, E]
        out, _ = self.blocks[0](e)
        z = out.mean(0)
        gated = torch.tanh(self.blocks[1](z)) * torch.sigmoid(z)
        return torch.sigmoid(self.head(gated) + 0.1 * torch.relu(z).amax(-1, keepdim=True))


@pytest.mark.parametrize("output", ["probability", "logit"])
def test_user_wrapper_with_many_shapes(output):
    torch.manual_seed(2)
    net = Wrapper().eval()
    x, bg = data(3, 5)
    ex = DeepExplainer(net, bg, output=output, dtype=torch.float64)
    assert miss(ex, x, ex.shap_values(x)) <= 1e-5
    ex32 = DeepExplainer(net, bg, output=output)
    assert miss(ex32, x, ex32.shap_values(x)) <= 1e-4


def test_float_embeddings_as_input():
    net = small("gru")
    x, bg = data(2, 3)
    e_x, e_bg = net.embedding(x).detach(), net.embedding(bg).detach()
    phi_ids = DeepExplainer(net, bg, dtype=torch.float64).shap_values(x)
    phi_emb = DeepExplainer(net, e_bg, dtype=torch.float64).shap_values(e_x)
    assert np.allclose(phi_ids, phi_emb, atol=1e-9)


def test_users_model_is_unchanged_after_explaining():
    net = small("bilstm")
    net.train()  # even a model left in training mode comes back as it was
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modules = [(n, type(m)) for n, m in net.named_modules()]
    flags = [p.requires_grad for p in net.parameters()]
    x, bg = data(2, 3)
    net.eval()
    ref = net(x).detach()
    net.train()
    DeepExplainer(net, bg).shap_values(x)
    assert [(n, type(m)) for n, m in net.named_modules()] == modules
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert [p.requires_grad for p in net.parameters()] == flags
    assert net.training
    assert isinstance(net.rnn, nn.LSTM)
    net.eval()
    assert torch.equal(net(x), ref)


def test_canonized_cells_compute_the_same_outputs():
    """Before trusting any attribution: the explicit cells reproduce nn.LSTM/nn.GRU."""
    from seqshap.attribution.recurrent import Pairing, _ExplicitRNN

    torch.manual_seed(0)
    for rnn in (
        nn.LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True),
        nn.GRU(5, 4, num_layers=2, bidirectional=True),
        nn.LSTM(5, 3, bias=False),
    ):
        x = torch.randn(6, 7, 5, dtype=torch.float64)
        rnn = rnn.double()
        want = rnn(x)
        got = _ExplicitRNN(rnn, Pairing(), ProductRule())(x)
        assert torch.allclose(want[0], got[0], atol=1e-12)
        for a, b in zip(
            want[1] if isinstance(want[1], tuple) else (want[1],),
            got[1] if isinstance(got[1], tuple) else (got[1],),
            strict=True,
        ):
            assert torch.allclose(a, b, atol=1e-12)


class WithBilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, 4)
        self.bil = nn.Bilinear(4, 4, 1)

    def forward(self, ids):
        e = self.embedding(ids).mean(1)
        return torch.sigmoid(self.bil(e, e))


class CustomOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, 4)

    def forward(self, ids):
        e = self.embedding(ids).mean(1)
        return torch.sigmoid(torch.cumprod(e, dim=-1).sum(-1, keepdim=True))


class SortPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, 4)

    def forward(self, ids):
        top = torch.topk(self.embedding(ids), 2, dim=1).values
        return torch.sigmoid(top.sum((1, 2)).unsqueeze(-1))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (WithBilinear(), r"module 'bil' \(Bilinear\).*matmul.*supported layers: .*LSTM"),
        (
            CustomOp(),
            r"cannot explain operation 'cumprod'.* \(at .*test_attribution.py:\d+: return torch.sigmoid\(torch.cum",
        ),
        (SortPool(), r"cannot explain operation 'topk'.*\(at .*test_attribution.py:\d+: top = torch.topk"),
    ],
)
def test_unsupported_layers_and_operations_are_named_with_the_users_line(model, match):
    _, bg = data(1, 2)
    with pytest.raises(UnsupportedLayerError, match=match):
        DeepExplainer(model.eval(), bg)


def test_bad_inputs_have_clear_errors(tiny_model):
    bg = torch.randint(3, 100, (4, 40))
    ex = DeepExplainer(tiny_model, bg)
    with pytest.raises(ValueError, match=r"unknown word ids \[5000\]"):
        ex.shap_values(torch.full((1, 40), 5000))
    with pytest.raises(ValueError, match=r"token ids must be \[n, T\]"):
        ex.shap_values(torch.zeros(40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"has shape \(1, 39\) but the background rows are \(40,\)"):
        ex.shap_values(torch.zeros(1, 39, dtype=torch.long))
    with pytest.raises(ValueError, match="text 1 is empty"):
        ex.explain(["fine", "   "])
    with pytest.raises(TypeError, match="not a single str"):
        ex.explain("just one string")
    with pytest.raises(ValueError, match="unknown output 'odds'"):
        DeepExplainer(tiny_model, bg, output="odds")
    with pytest.raises(ValueError, match="output='probability' needs a model"):
        DeepExplainer(BagOfWords(), bg[:, :T] % V)


def test_additivity_failure_reports_the_miss(monkeypatch):
    net = small("lstm")
    x, bg = data(2, 3)
    ex = DeepExplainer(net, bg)
    real = ex._attribute
    monkeypatch.setattr(ex, "_attribute", lambda xs: real(xs) + 0.01)
    with pytest.raises(AdditivityError, match=r"miss f\(x\) - E\[f\(background\)\] by 0\.1"):
        ex.shap_values(x)
    assert ex.shap_values(x, check_additivity=False).shape == (2, T, 1)


def test_explain_returns_frozen_explanations(tiny_model, imdb):
    ex = DeepExplainer(tiny_model, imdb["train"].texts[:20])
    texts = ["the acting was great but the plot was awful", imdb["test"].texts[0]]
    exps = ex.explain(texts, labels=[1, int(imdb["test"].labels[0])])
    e = exps[0]
    assert isinstance(e, Explanation)
    assert e.text == texts[0]
    assert e.label == 1
    assert e.tokens[-9:] == ("the", "acting", "was", "great", "but", "the", "plot", "was", "awful")
    assert e.values.sum() == pytest.approx(e.output_value - e.base_value, abs=1e-4)
    assert e.completeness_error <= 1e-4
    assert e.output_space == "probability"
    assert e.output_value == pytest.approx(tiny_model.predict(texts[:1])[0], abs=1e-6)
    with pytest.raises(ValueError, match="read-only"):
        e.values[0] = 1.0
    with pytest.raises(AttributeError):
        e.base_value = 0.0
    assert [t for t, _ in e.words()][:2] == ["the", "acting"]


def test_summarized_background_and_single_reference(tiny_model, imdb):
    bg = tiny_model.encode(imdb["train"].texts[:60])
    x = tiny_model.encode(imdb["test"].texts[:5])
    full = DeepExplainer(tiny_model.net, bg)
    fast = DeepExplainer(tiny_model.net, bg, summarize=10)
    assert len(fast.background) <= 10
    assert fast.weights.sum().item() == pytest.approx(1.0)
    a, b = full.shap_values(x), fast.shap_values(x)  # both exact w.r.t. their own background
    corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert corr > 0.5  # a 6x smaller background: close, not equal (BENCHMARKS.md has the cost)
    one = DeepLift(tiny_model)
    assert one.background.shape == (1, 40)
    assert one.background.tolist() == tiny_model.encode([""]).tolist()  # the empty text: the start token alone
    assert one.reference_ == "the empty text"
    one.shap_values(x)


def test_chunking_gives_the_same_numbers():
    net = small("lstm2")
    x, bg = data(7, 5)
    big = DeepExplainer(net, bg, dtype=torch.float64, batch_pairs=10_000).shap_values(x)
    tiny = DeepExplainer(net, bg, dtype=torch.float64, batch_pairs=6).shap_values(x)
    assert np.allclose(big, tiny, atol=1e-12)
    # fewer pairs per chunk than background rows: each input against slices of the background
    sliced = DeepExplainer(net, bg, dtype=torch.float64, batch_pairs=2).shap_values(x)
    assert np.allclose(big, sliced, atol=1e-12)


def test_default_chunk_fits_the_memory_budget():
    from seqshap.attribution import explainer as E

    net = small("lstm2")
    x, bg = data(4, 5)
    ex = DeepExplainer(net, bg, dtype=torch.float64)
    assert ex.pair_bytes_ > 0
    assert ex._pairs_per_chunk() * ex.pair_bytes_ <= E.MEMORY_BUDGET
    # a budget smaller than one input's pairs slices the background, with the same numbers
    full = ex.shap_values(x)
    ex.pair_bytes_ = E.MEMORY_BUDGET // 2
    assert ex._pairs_per_chunk() == 2 < len(bg)
    assert np.allclose(ex.shap_values(x), full, atol=1e-12)


def test_expected_value_is_mean_background_output():
    net = small("cnn")
    _, bg = data(2, 6)
    for output, squash in (("probability", lambda z: z), ("logit", lambda p: torch.log(p / (1 - p)))):
        ex = DeepExplainer(net, bg, output=output, dtype=torch.float64)
        with torch.no_grad():
            want = squash(net.double()(bg)).mean().item()
        net.float()
        assert math.isclose(ex.expected_value[0], want, abs_tol=1e-9)


@pytest.mark.slow
def test_direct_token_path_equals_generic_path():
    """The shortcut that reads token attributions straight off the LSTM/GRU input projection
    must agree with carrying multipliers back through W_ih to the embedding."""

    class Detour(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            e = self.inner.embedding(ids) * 1.0  # a new tensor: the generic path is taken
            return self.inner(e)

    for arch in ("lstm", "bilstm", "gru", "lstm2"):
        net = small(arch)
        x, bg = data(3, 4)
        direct = DeepExplainer(net, bg, dtype=torch.float64).shap_values(x)
        generic = DeepExplainer(Detour(net), bg, dtype=torch.float64).shap_values(x)
        assert np.allclose(direct, generic, atol=1e-12), arch


def test_pair_layout_is_checked_before_rows_are_deduplicated():
    """The recurrent rules run their forward on unique rows only when the stacked batch really
    is [each input repeated k times; the references tiled n times]."""
    from seqshap.attribution.recurrent import Pairing, _Grid

    n, k = 3, 4
    x, r = torch.randn(n, 5, 2), torch.randn(k, 5, 2)
    stacked = torch.cat([x.repeat_interleave(k, 0), r.repeat(n, 1, 1)])
    assert _Grid(len(stacked), Pairing(n, k), stacked).dedup
    mixed = stacked.clone()
    mixed[1] += 1.0  # one input copy differs from its siblings
    assert not _Grid(len(mixed), Pairing(n, k), mixed).dedup
    assert not _Grid(len(stacked), Pairing(n, k), stacked.flip(0)).dedup


def test_deepexplainer_and_deeplift_are_the_registered_methods_themselves(tiny_model, imdb):
    """One interface: the registry holds DeepExplainer and DeepLift themselves, not wrappers."""
    from seqshap.attribution import METHODS, OUTPUT_SPACES, Attribution, make_method

    assert METHODS["deepshap"] is DeepExplainer
    assert METHODS["deeplift"] is DeepLift
    assert all(issubclass(cls, Attribution) for cls in METHODS.values())
    bg = imdb["train"].texts[:5]
    ex = make_method("deepshap", tiny_model, background=bg)
    assert type(ex) is DeepExplainer
    x = tiny_model.encode(imdb["test"].texts[:3])
    phi = ex.shap_values(x)
    np.testing.assert_array_equal(ex.attribute(x), phi[:, :, 0])
    _, base = ex.attribute_with_base(x)
    assert np.all(base == ex.expected_value[0])
    assert type(make_method("deeplift", tiny_model)) is DeepLift
    # the one output-space check, for every method
    assert OUTPUT_SPACES == ("probability", "logit", "raw")
    for name in METHODS:
        with pytest.raises(ValueError, match=r"unknown output 'odds'; choose one of \('probability', 'logit', 'raw'\)"):
            make_method(name, tiny_model, background=bg, output="odds")


def test_rsqrt_near_zero_uses_the_secant_in_float32():
    """RMSNorm of a zero (padding) embedding against a small word embedding: rsqrt between ε and
    ~4e-4 bends over a distance of its argument, so the float32 midpoint slope (10x off there)
    must not stand in for the secant."""

    class RMSPool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 16, padding_idx=0)
            self.out = torch.nn.Linear(16, 2)
            with torch.no_grad():
                self.emb.weight.mul_(0.02)

        def forward(self, x):
            h = self.emb(x)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
            last = (torch.arange(x.shape[1]) * (x != 0).int()).argmax(-1)
            return torch.softmax(self.out(h)[torch.arange(len(x)), last], -1)

    torch.manual_seed(0)
    net = RMSPool().eval()
    x = torch.randint(1, 50, (2, 12))
    bg = torch.randint(1, 50, (2, 12))
    bg[0, 5:] = 0
    ex = DeepExplainer(net, bg)
    ex.shap_values(x)
    assert ex.last_errors_.max() <= 1e-5
