"""Where Captum's DeepLift rules are right (Linear, ReLU/sigmoid rescale, Conv1d, average
pooling), seqshap must give the same numbers; on an LSTM Captum's numbers do not add up."""

from __future__ import annotations

import captum.attr as captum_attr  # a test extra (pyproject [test]); only used to compare against
import numpy as np
import pytest
import torch
from torch import nn

from seqshap.attribution import DeepExplainer

T, E = 9, 4


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(T * E, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid()
        )

    def forward(self, emb):
        return self.body(emb)


class AvgCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(E, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(6, 1)
        self.out = nn.Sigmoid()

    def forward(self, emb):
        h = self.pool(self.act(self.conv(emb.transpose(1, 2)))).squeeze(-1)
        return self.out(self.fc(h))


@pytest.mark.parametrize("cls", [FeedForward, AvgCNN])
def test_agrees_with_captum_deepliftshap(cls):
    torch.manual_seed(0)
    net = cls().double().eval()
    x = torch.randn(3, T, E, dtype=torch.float64)
    bg = torch.randn(5, T, E, dtype=torch.float64)
    ours = DeepExplainer(net, bg).shap_values(x)[..., 0]
    theirs = captum_attr.DeepLiftShap(net).attribute(x, baselines=bg).sum(-1).detach().numpy()
    assert np.allclose(ours, theirs, atol=1e-10)


def test_captum_misses_on_an_lstm_where_seqshap_adds_up():
    torch.manual_seed(0)

    class Rec(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(E, 8, batch_first=True)
            self.fc = nn.Linear(8, 1)
            self.out = nn.Sigmoid()
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(3)

        def forward(self, emb):
            return self.out(self.fc(self.rnn(emb)[1][0][-1]))

    net = Rec().double().eval()
    x = torch.randn(3, T, E, dtype=torch.float64)
    bg = torch.randn(5, T, E, dtype=torch.float64)
    with torch.no_grad():
        delta = (net(x) - net(bg).mean()).numpy()[:, 0]
    ours = DeepExplainer(net, bg).shap_values(x)[..., 0].sum(1)
    theirs = captum_attr.DeepLiftShap(net).attribute(x, baselines=bg).sum((1, 2)).detach().numpy()
    assert np.abs(ours - delta).max() < 1e-10
    assert np.abs(theirs - delta).max() > 1e-3  # Captum treats the gates as plain gradients
