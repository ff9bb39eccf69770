"""Exact DeepSHAP for attention: the Transformer classifier, its rules and its explicit layer.

Completeness (sum of attributions = f(x) - E f(background)) on many shapes and weight
scales, two closed-form checks, the explicit layer against the module it stands in for,
and the refusals that keep numbers honest.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from seqshap.attribution import DeepExplainer, UnsupportedLayerError
from seqshap.attribution.attention import EncoderLayerParams, ExplicitEncoderLayer
from seqshap.attribution.pairs import Pairing
from seqshap.attribution.rules import BilinearRule, LayerNormRule, SoftmaxRule
from seqshap.models.transformer import TransformerClassifier, masked_softmax

V, T = 60, 14


def rows(n: int, lo: int, hi: int, seed: int) -> torch.Tensor:
    """Front-padded id rows: <start> then ``L - 1`` words, ``L`` drawn from [lo, hi]."""
    g = np.random.default_rng(seed)
    out = torch.zeros(n, T, dtype=torch.long)
    for i in range(n):
        L = int(g.integers(lo, hi + 1))
        out[i, T - L] = 1
        out[i, T - L + 1 :] = torch.from_numpy(g.integers(3, V, L - 1))
    return out


def make(layers=2, heads=2, dim=16, norm_first=False, scale=1.0, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    net = (
        TransformerClassifier(
            vocab_size=V, embed_dim=dim, heads=heads, layers=layers, ff_dim=2 * dim, dropout=0.1, norm_first=norm_first
        )
        .to(dtype)
        .eval()
    )
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


# ------------------------------------------------------------------------------- the model
def test_prediction_does_not_depend_on_padding():
    net = make(norm_first=True)
    ids = rows(3, 2, 8, seed=1)
    short = ids[:, -8:]
    torch.testing.assert_close(net(ids), net(short), atol=1e-6, rtol=0)
    torch.testing.assert_close(net(ids), net(net.embedding(ids)), atol=1e-6, rtol=0)  # embeddings in


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_explicit_layer_computes_what_the_block_computes(norm_first, dtype, tol):
    net = make(layers=1, heads=4, norm_first=norm_first, scale=2.0, dtype=dtype)
    block = net.blocks[0]
    h = torch.randn(5, T, 16, dtype=dtype)
    mask = (torch.arange(T)[None] >= torch.tensor([0, 3, 7, 12, 13])[:, None]).to(dtype)
    explicit = ExplicitEncoderLayer(block, EncoderLayerParams(**block.seqshap_encoder_layer()), Pairing())
    real = mask[:, :, None] > 0  # padded positions' outputs are never read
    torch.testing.assert_close(explicit(h, mask) * real, block(h, mask) * real, atol=tol, rtol=0)


# ------------------------------------------------------------------------------ completeness
CASES = [  # layers, heads, norm_first, weight scale (3 saturates softmax, GELU and LayerNorm)
    (1, 1, False, 1.0),
    (2, 2, False, 1.0),
    (2, 4, True, 1.0),
    (4, 8, False, 1.0),
    (1, 2, False, 3.0),
    (2, 8, True, 3.0),
    (3, 1, False, 3.0),
    (4, 2, True, 1.0),
]


@pytest.mark.parametrize(("layers", "heads", "norm_first", "scale"), CASES)
@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (None, 1e-4)])
def test_completeness_with_references_shorter_and_longer(layers, heads, norm_first, scale, output, dtype, tol):
    net = make(layers, heads, 16, norm_first, scale, seed=layers * 10 + heads)
    x = rows(3, 3, T, seed=1)  # lengths differ from every reference's
    bg = torch.cat([rows(3, 2, 4, seed=2), rows(3, T - 1, T, seed=3)])  # shorter and longer
    ex = DeepExplainer(net, bg, output=output, dtype=dtype)
    phi = ex.shap_values(x)  # raises AdditivityError past tol
    assert ex.last_errors_.max() <= tol
    assert np.isfinite(phi).all()
    # the tolerance is not what makes it pass: float64 is exact to rounding
    if dtype == torch.float64:
        assert ex.last_errors_.max() < 1e-9


def test_default_init_and_trained_model_add_up(tiny_transformer, imdb):
    for net in (make(layers=2, heads=4), tiny_transformer.net):
        model = tiny_transformer if net is tiny_transformer.net else None
        texts = imdb["test"].texts[:4]
        x = model.encode(texts) if model else rows(4, 2, T, seed=5)
        bg = model.encode(imdb["train"].texts[:20]) if model else rows(20, 2, T, seed=6)
        for output in ("probability", "logit"):
            ex = DeepExplainer(net, bg, output=output)
            ex.shap_values(x)
            assert ex.last_errors_.max() < 1e-4


def test_explanations_of_a_trained_transformer_read_as_words(tiny_transformer, imdb):
    exp = DeepExplainer(tiny_transformer, imdb["train"].texts[:20]).explain([imdb["test"].texts[0]])[0]
    assert exp.completeness_error < 1e-4
    assert abs(exp.values.sum() - (exp.prediction - exp.base_value)) <= exp.completeness_error + 1e-9
    words = exp.word_list()
    assert [w.text.lower() for w in words if not w.unknown] == [w.token for w in words if not w.unknown]
    assert len(words) == int(exp.visible.sum())


def test_deeplift_default_reference_is_the_empty_text_also_for_a_bare_net(tiny_transformer, imdb):
    """The default reference is the empty text as the tokenizer writes it (the start token alone);
    a bare ``nn.Module`` gets the native tokenizer's, so the same row; a text reference works."""
    from seqshap.attribution import DeepLift

    text = imdb["test"].texts[0]
    dl = DeepLift(tiny_transformer)
    exp = dl.explain([text])[0]
    assert dl.reference_ == "the empty text"
    assert dl.background.tolist() == tiny_transformer.encode([""]).tolist()
    assert exp.base_value == pytest.approx(float(tiny_transformer.predict([""])[0]), abs=1e-6)
    assert np.isfinite(exp.values).all()
    assert exp.completeness_error < 1e-4
    bare = DeepLift(tiny_transformer.net, maxlen=tiny_transformer.maxlen)
    assert bare.background.tolist() == dl.background.tolist()
    np.testing.assert_allclose(bare.attribute(tiny_transformer.encode([text])), exp.values[None], atol=1e-6)
    exp = DeepLift(tiny_transformer, reference=["an ordinary film"]).explain([text])[0]
    assert np.isfinite(exp.values).all()
    assert exp.completeness_error < 1e-4


def test_a_row_of_padding_only_gives_the_heads_bias_and_explains_exactly(tiny_transformer, imdb):
    """No real token: the mean over nothing is the zero vector, so the output is sigmoid(bias) (the
    answer on no evidence). Rows with a real token are untouched, and explaining against (or explaining)
    such a row adds up, in float32 and float64."""
    from seqshap.attribution import DeepExplainer

    net, T = tiny_transformer.net, tiny_transformer.maxlen
    pad = torch.zeros(1, T, dtype=torch.long)
    with torch.no_grad():
        assert net(pad).item() == pytest.approx(torch.sigmoid(net.fc.bias).item(), abs=1e-7)
    x = tiny_transformer.encode([imdb["test"].texts[0], "a fine film"])
    for dtype, tol in ((None, 1e-4), (torch.float64, 1e-9)):
        ex = DeepExplainer(net, torch.cat([pad, x[1:]]), dtype=dtype)
        ex.shap_values(x)
        assert ex.last_errors_.max() < tol
        ex = DeepExplainer(net, x, dtype=dtype)
        ex.shap_values(pad)
        assert ex.last_errors_.max() < tol


# --------------------------------------------------------------------------- closed forms
def test_one_changed_position_gets_the_whole_difference():
    """(a) A reference equal to the input but at position t: phi_t = f(x) - f(r), the rest 0."""
    for norm_first in (False, True):
        net = make(layers=2, heads=2, norm_first=norm_first, scale=2.0, dtype=torch.float64)
        x = rows(1, 9, 9, seed=7)
        r = x.clone()
        t = T - 4
        r[0, t] = (x[0, t] + 5) % V if (x[0, t] + 5) % V >= 3 else 3
        ex = DeepExplainer(net, r, output="logit")
        phi = ex.shap_values(x)[0, :, 0]
        with torch.no_grad():
            logit = lambda ids, net=net: torch.logit(net(ids)[0, 0]).item()
            diff = logit(x) - logit(r)
        assert phi[t] == pytest.approx(diff, abs=1e-12)
        assert np.all(phi[np.arange(T) != t] == 0.0)


def test_uniform_attention_is_a_bag_of_embeddings_with_known_shapley_values():
    """(b) Zero query/key weights make attention uniform. With the feed-forward and the final
    norm switched off the logit is (1/L) sum_t g(e_t) + const, additive over tokens, so the
    exact Shapley values against a background of same-length reviews are
    phi_t = (g(x_t) - mean_j g(r_jt)) / L, with g computed here from the model's weights."""
    torch.manual_seed(3)
    net = (
        TransformerClassifier(vocab_size=V, embed_dim=8, heads=2, layers=1, ff_dim=16, norm_first=True).double().eval()
    )
    blk = net.blocks[0]
    with torch.no_grad():
        for lin in (blk.attn.q, blk.attn.k, blk.ff1, blk.ff2):
            lin.weight.zero_()
            lin.bias.zero_()
    net.final_norm = nn.Identity()
    L = 9
    x, bg = rows(2, L, L, seed=11), rows(5, L, L, seed=12)
    pos = net.position(torch.arange(T - 1, -1, -1))

    @torch.no_grad()
    def g(ids):  # per-token part of the logit: w.h_t + w.W_o W_v LN1(h_t), h_t = e_t + pos_t
        h = net.embedding(ids) + pos
        a = blk.attn
        return (h @ net.fc.weight[0]) + (a.o.weight @ a.v.weight @ blk.norm1(h).transpose(-1, -2)).transpose(
            -1, -2
        ) @ net.fc.weight[0]

    expected = (g(x) - g(bg).mean(0, keepdim=True)) / L
    expected[x == 0] = 0.0
    phi = DeepExplainer(net, bg, output="logit").shap_values(x)[..., 0]
    np.testing.assert_allclose(phi, expected.numpy(), atol=1e-12)


# ------------------------------------------------------------------------------------ rules
def _grid(*shape, scale=1.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_softmax_rule_is_exact_with_and_without_masks(scale):
    K = 9
    sx, sr = _grid(2, 1, 3, K, scale=scale, seed=1), _grid(1, 4, 3, K, scale=scale, seed=2)
    lx, lr = torch.tensor([9, 4]), torch.tensor([1, 9, 6, 2])
    mx = (torch.arange(K) >= K - lx[:, None]).double().view(2, 1, 1, K)
    mr = (torch.arange(K) >= K - lr[:, None]).double().view(1, 4, 1, K)
    g = _grid(2, 4, 3, K, seed=3)
    px, pr = masked_softmax(sx, mx), masked_softmax(sr, mr)
    m_s, m_mask = SoftmaxRule.multipliers(g, sx, sr, px, pr, mx, mr)
    assert m_mask.shape == (2, 4, 1, K)  # one mask per row of queries, summed over them
    lhs = (m_s * (sx - sr)).sum((-1, -2)) + (m_mask * (mx - mr)).sum((-1, -2))
    torch.testing.assert_close(lhs, (g * (px - pr)).sum((-1, -2)), atol=1e-12, rtol=0)
    assert torch.all(m_mask[(mx == mr).expand_as(m_mask)] == 0)  # only changed keys get mask credit
    m_s, _ = SoftmaxRule.multipliers(g, sx, sr, sx.softmax(-1), sr.softmax(-1))
    torch.testing.assert_close(
        (m_s * (sx - sr)).sum(-1), (g * (sx.softmax(-1) - sr.softmax(-1))).sum(-1), atol=1e-12, rtol=0
    )


def test_softmax_rule_gives_a_pure_shift_nothing():
    sx = _grid(1, 1, 2, 6, seed=4)
    m_s, _ = SoftmaxRule.multipliers(_grid(1, 1, 2, 6, seed=5), sx, sx - 3.0, sx.softmax(-1), sx.softmax(-1))
    assert (m_s * 3.0).sum(-1).abs().max() < 1e-12


def test_bilinear_and_layernorm_rules_are_exact():
    ax, ar, bx, br = (
        _grid(2, 1, 4, 5, seed=1),
        _grid(1, 3, 4, 5, seed=2),
        _grid(2, 1, 5, 6, seed=3),
        _grid(1, 3, 5, 6, seed=4),
    )
    g = _grid(2, 3, 4, 6, seed=5)
    ma, mb = BilinearRule.multipliers(g, ax, ar, bx, br)
    torch.testing.assert_close((ma * (ax - ar)).sum() + (mb * (bx - br)).sum(), (g * (ax @ bx - ar @ br)).sum())
    w, b = _grid(16, seed=6), _grid(16, seed=7)
    zx, zr = _grid(2, 1, 5, 16, scale=3.0, seed=8), _grid(1, 3, 5, 16, scale=0.02, seed=9)
    g = _grid(2, 3, 5, 16, seed=10)
    ln = lambda z: torch.nn.functional.layer_norm(z, (16,), w, b, 1e-5)
    mz = LayerNormRule.multipliers(g, zx, zr, w, 1e-5)
    torch.testing.assert_close((mz * (zx - zr)).sum(), (g * (ln(zx) - ln(zr))).sum())


# --------------------------------------------------------------------------------- refusals
class TorchEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, 8)
        self.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1, enable_nested_tensor=False
        )
        self.fc = nn.Linear(8, 1)

    def forward(self, ids):
        return torch.sigmoid(self.fc(self.enc(self.embedding(ids)).mean(1)))


class MaskedFillAttention(nn.Module):
    """A user's own attention with a boolean padding mask: exact only where masks agree."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, 8)
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.fc = nn.Linear(8, 1)

    def forward(self, ids):
        e = self.embedding(ids)
        s = self.q(e) @ self.k(e).transpose(1, 2)
        a = torch.softmax(s.masked_fill((ids == 0)[:, None, :], -1e9), -1)
        return torch.sigmoid(self.fc((a @ self.v(e)).mean(1)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_boolean_mask_that_differs_from_the_references_is_credited_to_positions(dtype):
    """``masked_fill(ids == 0, -1e9)`` with texts of other lengths than the references: the
    mask is a player; the values add up and the mask's share sits at the padding positions."""
    net = MaskedFillAttention().to(dtype)
    ex = DeepExplainer(net, rows(2, 3, 3, seed=3), dtype=dtype)
    x, bg = rows(1, 8, 8, seed=4), rows(2, 3, 3, seed=3)
    phi = ex.shap_values(x)
    assert ex.last_errors_.max() < (1e-12 if dtype == torch.float64 else 1e-5)
    padding_everywhere = ((x[0] == 0) & (bg == 0).all(0)).numpy()
    assert padding_everywhere.any()
    assert np.all(phi[0, padding_everywhere] == 0.0)  # nothing changed there, nothing credited


def test_pytorch_attention_layers_are_explained_exactly():
    net = TorchEncoder().double().eval()
    ex = DeepExplainer(net, rows(2, 3, T, seed=1), dtype=torch.float64)
    ex.shap_values(rows(2, 5, T, seed=2))
    assert ex.last_errors_.max() < 1e-12


def test_users_own_attention_is_exact_through_the_op_rules():
    net = MaskedFillAttention()
    same_length = rows(4, 6, 6, seed=2)
    ex = DeepExplainer(net, same_length[:2])
    ex.shap_values(same_length[2:])  # matmul of two signals and softmax have rules
    assert ex.last_errors_.max() < 1e-5


class SdpaAttention(nn.Module):
    """A user's own multi-head attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, heads=2, is_causal=False, attn_mask=None, dropout_p=0.0, scale=1.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.heads, self.is_causal, self.attn_mask, self.dropout_p = heads, is_causal, attn_mask, dropout_p
        self.embedding = nn.Embedding(V, 8)
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.norm, self.fc = nn.LayerNorm(8), nn.Linear(8, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(scale)

    def forward(self, ids):
        e = self.embedding(ids)
        B, L, D = e.shape

        def split(t):
            return t.view(B, L, self.heads, D // self.heads).transpose(1, 2)

        mask = self.attn_mask(ids) if callable(self.attn_mask) else self.attn_mask
        o = F.scaled_dot_product_attention(
            split(self.q(e)), split(self.k(e)), split(self.v(e)), mask, self.dropout_p, self.is_causal
        )
        h = self.norm(e + o.transpose(1, 2).reshape(B, L, D))
        return torch.sigmoid(self.fc(h.mean(1)))


def _masks(seed=5):
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(T, T, generator=g) > 0.3
    keep[:, 0] = True  # every query keeps a key
    additive = torch.randn(T, T, generator=g, dtype=torch.float64).masked_fill(~keep, float("-inf"))
    return {"none": {}, "causal": {"is_causal": True}, "bool": {"attn_mask": keep}, "additive": {"attn_mask": additive}}


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "additive"])
@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_scaled_dot_product_attention_is_exact(mask, output, dtype, tol):
    kwargs = _masks()[mask]
    if "attn_mask" in kwargs and kwargs["attn_mask"].is_floating_point():
        kwargs["attn_mask"] = kwargs["attn_mask"].to(dtype)
    net = SdpaAttention(heads=2, scale=3.0, **kwargs).to(dtype).eval()  # weights scaled: softmax saturates
    x = rows(3, 3, T, seed=1)
    bg = torch.cat([rows(3, 2, 4, seed=2), rows(3, T - 1, T, seed=3)])
    ex = DeepExplainer(net, bg, output=output, dtype=dtype)
    phi = ex.shap_values(x)
    assert np.isfinite(phi).all()
    assert ex.last_errors_.max() <= tol
    if dtype == torch.float64:
        assert ex.last_errors_.max() < 1e-9


def test_scaled_dot_product_attention_one_changed_position_gets_the_whole_difference():
    net = SdpaAttention(heads=4, is_causal=True, scale=2.0).double().eval()
    x = rows(1, 9, 9, seed=7)
    r = x.clone()
    t = T - 4
    r[0, t] = 3 if x[0, t] != 3 else 4
    phi = DeepExplainer(net, r, output="logit").shap_values(x)[0, :, 0]
    with torch.no_grad():
        diff = (torch.logit(net(x)) - torch.logit(net(r))).item()
    assert phi[t] == pytest.approx(diff, abs=1e-12)
    assert np.all(phi[np.arange(T) != t] == 0.0)


def test_scaled_dot_product_attention_padding_mask_and_refusals():
    bg, x = rows(2, 3, 3, seed=3), rows(1, 8, 8, seed=4)
    padding = SdpaAttention(attn_mask=lambda ids: (ids != 0)[:, None, None, :])  # differs with the length
    ex = DeepExplainer(padding.double(), bg, dtype=torch.float64)
    ex.shap_values(x)
    assert ex.last_errors_.max() < 1e-12
    with pytest.raises(UnsupportedLayerError, match=r"scaled_dot_product_attention with dropout_p > 0.*\(at .*test_"):
        DeepExplainer(SdpaAttention(dropout_p=0.1), bg).shap_values(x)


@pytest.fixture(scope="module")
def tiny_transformer(imdb, tmp_path_factory):
    """A small Transformer trained for one epoch on 2,000 real reviews."""
    from seqshap.train import TrainConfig, train

    cfg = TrainConfig(
        arch="transformer",
        epochs=1,
        maxlen=40,
        num_words=2000,
        seed=0,
        model={"embed_dim": 16, "heads": 2, "layers": 1, "ff_dim": 32},
    )
    return train(
        imdb["train"].head(2000),
        tmp_path_factory.mktemp("models") / "tiny-tf",
        cfg,
        test_split=imdb["test"].head(500),
        progress=False,
    )
