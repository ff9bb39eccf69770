"""Gradient methods: gradient x input and Integrated Gradients, both at the embedding level."""

from __future__ import annotations

import numpy as np
import torch

from .._validation import POSITIVE
from .base import Attribution


class GradXInput(Attribution):
    """``sum_E grad_e f(x) * e`` at every position (embedding-level gradient x input)."""

    name = "gradxinput"

    def _values(self, ids, output_index):
        out = []
        with self._plain(), torch.enable_grad():
            for i in range(0, len(ids), self.batch_size):
                e = self.embedding(ids[i : i + self.batch_size]).detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self._forward(e)[:, output_index].sum(), e)
                out.append((g * e).sum(-1).double().detach())
        return torch.cat(out).numpy(), np.full(len(ids), np.nan)


class IntegratedGradients(Attribution):
    """IG over the embeddings from the baseline "every word replaced by padding, special tokens
    kept" (:meth:`TokenLayout.blank_words <seqshap.data.layout.TokenLayout.blank_words>` of the
    model's tokenizer layout): its base value is f(that row).

    The path integral uses ``steps``-point Gauss-Legendre quadrature (exact for polynomial
    paths of degree ``2*steps - 1``, so it converges much faster than a Riemann sum).
    ``completeness_error`` = convergence delta ``|sum_t phi_t - (f(x) - f(baseline))|``.
    For a model that masks padding (the Transformer), the mask switches on as soon as the path
    leaves the baseline: that jump is outside the integral, so the delta is large (BENCHMARKS.md).
    """

    name, additive = "ig", True
    base_name = "the output for the IG baseline (the text with its words replaced by padding)"

    def __init__(self, model, steps: int = 32, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        POSITIVE.check("steps", steps)
        nodes, weights = np.polynomial.legendre.leggauss(int(steps))
        self.alphas = torch.tensor((nodes + 1) / 2)  # [S] in (0, 1)
        self.weights = torch.tensor(weights / 2)  # [S], sum 1
        self.steps = int(steps)
        self.last_deltas_: np.ndarray | None = None

    def baseline_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` ``[n, T]`` with every word replaced by padding, special tokens kept in place."""
        return self.layout.blank_words(ids)

    def _values(self, ids, output_index):
        fx = self.predict_inputs(ids, output_index)
        base_ids = self.baseline_ids(ids)
        S, rows = self.steps, max(1, self.batch_size // self.steps)
        phis = []
        with self._plain(), torch.enable_grad():
            for i in range(0, len(ids), rows):
                x, x0 = self.embedding(ids[i : i + rows]).detach(), self.embedding(base_ids[i : i + rows]).detach()
                a = self.alphas.to(x.dtype).view(1, S, 1, 1)
                path = (x0[:, None] + a * (x - x0)[:, None]).reshape(-1, *x.shape[1:]).requires_grad_(True)
                (g,) = torch.autograd.grad(self._forward(path)[:, output_index].sum(), path)
                avg = (g.view(len(x), S, *x.shape[1:]) * self.weights.to(x.dtype).view(1, S, 1, 1)).sum(1)
                phis.append((avg * (x - x0)).sum(-1).double().detach())
        phi = torch.cat(phis).numpy()
        base = self.predict_reference(
            base_ids, output_index, "the IG baseline (the text with its words replaced by padding)"
        )
        self.last_deltas_ = np.abs(phi.sum(1) - (fx - base))
        return phi, base
