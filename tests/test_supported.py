"""docs/supported.md is the engine's rule tables, and the tables hold what the page promises."""

from pathlib import Path

import pytest
import torch
from torch import nn

from seqshap import DeepExplainer, UnsupportedLayerError
from seqshap.attribution import DEFAULT_COMPOSITE, Canonize, Composite
from seqshap.attribution.supported import markdown

PAGE = Path(__file__).resolve().parent.parent / "docs" / "supported.md"


def test_the_page_is_generated_from_the_tables():
    assert PAGE.read_text(encoding="utf-8") == markdown(), (
        "docs/supported.md is stale: python -m seqshap.attribution.supported > docs/supported.md"
    )


def test_every_torch_nn_layer_on_the_page_is_in_the_table():
    page = PAGE.read_text(encoding="utf-8")
    for layer in DEFAULT_COMPOSITE.modules:
        assert f"`nn.{layer.__name__}`" in page


class Extras(nn.Module):
    """Layers of the table not in the zoo: InstanceNorm1d, LayerNorm over two dims, LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 6)
        self.inorm = nn.InstanceNorm1d(6, affine=True)
        self.ln = nn.LayerNorm((5, 6))
        self.act = nn.Hardswish()
        self.fc = nn.Linear(6, 3)
        self.out = nn.LogSoftmax(-1)

    def forward(self, ids):
        h = self.inorm(self.embedding(ids).transpose(1, 2)).transpose(1, 2)
        h = self.act(self.ln(h[:, :5]))
        return self.out(self.fc(h.mean(1)))


def test_layers_beyond_the_zoo_add_up():
    torch.manual_seed(0)
    net = Extras().double().eval()
    x, bg = torch.randint(0, 30, (2, 8)), torch.randint(0, 30, (3, 8))
    ex = DeepExplainer(net, bg, output="raw", dtype=torch.float64)
    ex.shap_values(x)
    assert ex.last_errors_.max() < 1e-10


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.dec = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)
        self.fc = nn.Linear(8, 1)

    def forward(self, ids):
        e = self.embedding(ids)
        return torch.sigmoid(self.fc(self.dec(e, e).mean(1)))


def test_a_layer_outside_the_table_is_refused_by_name_and_a_composite_can_add_it():
    bg = torch.randint(0, 30, (2, 8))
    with pytest.raises(UnsupportedLayerError, match=r"module 'dec' \(TransformerDecoderLayer\)"):
        DeepExplainer(Decoder().eval(), bg)
    # a composite is a value: a user lists the layer as ruled by its operations and takes responsibility
    ours = Composite({**DEFAULT_COMPOSITE.modules, nn.TransformerDecoderLayer: "ops"})
    ex = DeepExplainer(Decoder().double().eval(), bg, dtype=torch.float64, composite=ours)
    ex.shap_values(torch.randint(0, 30, (1, 8)))
    assert ex.last_errors_.max() < 1e-10
    assert isinstance(DEFAULT_COMPOSITE.modules[nn.LSTM], Canonize)
