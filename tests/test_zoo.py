"""Users' own PyTorch models, unchanged: every design of tests/zoo.py is explained exactly, with
weights scaled so that the nonlinearities saturate and references of other lengths than the
inputs; closed forms for the EmbeddingBag and the attention-pooling models; the model is
handed back as it was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zoo
from seqshap import DeepExplainer, DeepLift

T = 12
NAMES = sorted(zoo.ZOO)


def inputs_and_references(name: str):
    side = zoo.ZOO[name][1]
    x = zoo.texts(2, T, side, (5, 10), seed=2)  # shorter and longer than most references
    bg = zoo.texts(3, T, side, (3, 12, 7), seed=1)
    return x, bg


def plain(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_adds_up_in_float64(name, output):
    net = zoo.make(name, scale=3.0)  # weights x3: sigmoid/tanh/softmax saturate
    x, bg = inputs_and_references(name)
    ex = DeepExplainer(net, bg, output=output, dtype=torch.float64)
    phi = ex.shap_values(x)
    assert phi.shape == (2, T, ex.n_outputs)
    assert ex.last_errors_.max() <= 1e-6
    # the explained number is the model's own output for the text
    exps = ex.explain(x)
    y = plain(net.double(), x)
    for e, row in zip(exps, y, strict=True):
        if output == "probability":
            assert e.output_value == pytest.approx(float(row[e.output_index]), abs=1e-12)
        elif row.numel() == 1:  # a sigmoid's logit (a saturated one overflows torch.logit)
            p = torch.sigmoid(torch.tensor(e.output_value, dtype=torch.float64))
            assert p == pytest.approx(float(row[0]), abs=1e-12)
        assert abs(e.values.sum() - (e.output_value - e.base_value)) <= 1e-6


@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_adds_up_in_float32(name, output):
    net = zoo.make(name, scale=2.0)
    x, bg = inputs_and_references(name)
    ex = DeepExplainer(net, bg, output=output)
    ex.shap_values(x)  # raises AdditivityError past 1e-4
    assert ex.last_errors_.max() <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_the_users_model_is_handed_back_unchanged(name):
    net = zoo.make(name)
    net.train()  # explaining uses eval mode; the user's flag comes back
    flags = [p.requires_grad for p in net.parameters()]
    modules = [type(m) for m in net.modules()]
    x, bg = inputs_and_references(name)
    DeepExplainer(net, bg).shap_values(x)
    assert net.training
    assert [p.requires_grad for p in net.parameters()] == flags
    assert [type(m) for m in net.modules()] == modules
    assert torch.backends.mha.get_fastpath_enabled()


def test_one_changed_word_gets_the_whole_difference_everywhere():
    """x and its reference differ at one position only (same length): that position's value is
    f(x) - f(r) to rounding, every other position exactly 0, in every zoo model."""
    for name in NAMES:
        net = zoo.make(name, scale=2.0).double()
        side = zoo.ZOO[name][1]
        x = zoo.texts(1, T, side, (8,), seed=5)
        r = x.clone()
        t = 2 if side == "right" else T - 3
        r[0, t] = 7 if x[0, t] != 7 else 8
        phi = DeepLift(net, r, output="probability").shap_values(x)[0]
        diff = (plain(net, x) - plain(net, r))[0].numpy()
        np.testing.assert_allclose(phi[t], diff, atol=1e-12, err_msg=name)
        others = np.arange(T) != t
        assert np.all(phi[others] == 0.0), name


# ---- closed forms --------------------------------------------------------------------------------
class BagLogit(nn.Module):
    """EmbeddingBag(mean, padding_idx) -> Linear -> sigmoid: logit = w · (S / n) + b."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.embedding = nn.EmbeddingBag(50, 6, mode="mean", padding_idx=0)
        self.fc = nn.Linear(6, 1)

    def forward(self, ids):
        return torch.sigmoid(self.fc(self.embedding(ids)))


def test_embedding_bag_mean_closed_form_with_other_lengths():
    """With S the sum of the real tokens' embeddings and n their count, the logit is w·S/n + b.
    The quotient's Shapley split gives S the share ½(ΔS/n_r + ΔS/n_x), spread over the positions
    by their ΔS_t, and n the rest, spread over the positions whose padding changed."""
    net = BagLogit().double().eval()
    x = zoo.texts(1, T, "right", (4,), seed=7)
    r = zoo.texts(1, T, "right", (9,), seed=8)
    phi = DeepLift(net, r, output="logit").shap_values(x)[0, :, 0]
    E, w = net.embedding.weight.detach(), net.fc.weight.detach()[0]
    ex = torch.where((x[0] != 0)[:, None], E[x[0]], 0.0)  # padding rows are zero in the bag
    er = torch.where((r[0] != 0)[:, None], E[r[0]], 0.0)
    nx, nr = float((x != 0).sum()), float((r != 0).sum())
    per_token = ((ex - er) @ w) * 0.5 * (1 / nr + 1 / nx)
    Sx, Sr = float(ex.sum(0) @ w), float(er.sum(0) @ w)
    count_share = (Sx / nx - Sr / nr) - float(per_token.sum())
    changed = ((x[0] != 0) != (r[0] != 0)).double()  # each changed position is one step of the count
    expected = per_token + count_share * changed / changed.sum()
    np.testing.assert_allclose(phi, expected.numpy(), atol=1e-12)


def test_embedding_bag_sum_is_linear_per_token():
    net = zoo.make("embeddingbag_tutorial")
    net.embedding.mode = "sum"
    net = net.double()
    x, r = zoo.texts(1, T, "right", (6,), seed=3), zoo.texts(1, T, "right", (11,), seed=4)
    phi = DeepLift(net, r, output="logit").shap_values(x)[0]  # [T, 2] classes
    E = net.embedding.weight.detach()
    W = net.fc.weight.detach()
    d = torch.where((x[0] != 0)[:, None], E[x[0]], 0.0) - torch.where((r[0] != 0)[:, None], E[r[0]], 0.0)
    np.testing.assert_allclose(phi, (d @ W.T).numpy(), atol=1e-12)  # each token's change of each logit


class AttentionPool(nn.Module):
    """Attention pooling over the real tokens, scores ``w · e_t`` masked with -inf; w = 0 makes
    the attention uniform over the real tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.embedding = nn.Embedding(50, 6)
        self.score = nn.Linear(6, 1, bias=False)
        self.fc = nn.Linear(6, 1)
        with torch.no_grad():
            self.score.weight.zero_()

    def forward(self, ids):
        e = self.embedding(ids)
        s = self.score(e).squeeze(-1).masked_fill(ids == 0, float("-inf"))
        return torch.sigmoid(self.fc((F.softmax(s, dim=-1).unsqueeze(-1) * e).sum(1)))


def test_attention_pooling_closed_form_with_other_lengths():
    """Uniform attention p = keep / Σkeep. The product p·e splits by Shapley: each token gets
    p̄_t w·Δe_t; the weights' change Δp_t w·ē_t goes to the mask, which gives each key whose
    padding changed its own part and the unchanged keys' part in proportion to its mass."""
    net = AttentionPool().double().eval()
    x = zoo.texts(1, T, "right", (4,), seed=9)
    r = zoo.texts(1, T, "right", (7,), seed=10)
    phi = DeepLift(net, r, output="logit").shap_values(x)[0, :, 0]
    E, w = net.embedding.weight.detach(), net.fc.weight.detach()[0]
    kx, kr = (x[0] != 0).double(), (r[0] != 0).double()
    px, pr = kx / kx.sum(), kr / kr.sum()
    ex, er = E[x[0]], E[r[0]]
    token = 0.5 * (px + pr) * ((ex - er) @ w)
    g = 0.5 * (ex + er) @ w  # what a unit of attention on t is worth
    d = px - pr
    changed = kx != kr
    q = px + pr
    rest = float((g * d)[~changed].sum())
    mask = torch.where(changed, g * d + rest * q / q[changed].sum(), torch.zeros(()))
    np.testing.assert_allclose(phi, (token + mask).numpy(), atol=1e-12)
    with torch.no_grad():
        diff = float(torch.logit(net(x)) - torch.logit(net(r)))
    assert phi.sum() == pytest.approx(diff, abs=1e-12)


def test_seq_first_and_batch_first_transformers_agree():
    """The same encoder weights run batch-first and [T, batch]: the explanations are the same."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)

    class Net(nn.Module):
        def __init__(self, batch_first: bool):
            super().__init__()
            torch.manual_seed(1)
            self.embedding = nn.Embedding(50, 8)
            self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
            self.enc.load_state_dict(layer.state_dict())
            self.fc = nn.Linear(8, 1)
            self.batch_first = batch_first

        def forward(self, ids):
            e = self.embedding(ids)
            if self.batch_first:
                h = self.enc(e, src_key_padding_mask=ids == 0).mean(1)
            else:
                h = self.enc(e.transpose(0, 1), src_key_padding_mask=ids == 0).mean(0)
            return torch.sigmoid(self.fc(h))

    x, r = zoo.texts(2, T, "right", (5, 9), seed=1), zoo.texts(3, T, "right", (3, 11, 7), seed=2)
    a = DeepExplainer(Net(True).double().eval(), r, dtype=torch.float64).shap_values(x)
    b = DeepExplainer(Net(False).double().eval(), r, dtype=torch.float64).shap_values(x)
    np.testing.assert_allclose(a, b, atol=1e-12)
