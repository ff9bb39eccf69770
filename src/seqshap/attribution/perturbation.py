"""Perturbation methods: leave-one-out occlusion, and random values as the floor to beat."""

from __future__ import annotations

import numpy as np
import torch

from .base import Attribution, row_rng


class Occlusion(Attribution):
    """Leave-one-out: ``phi_t = f(x) - f(x with word t replaced by padding)``; exactly 0 at padding
    and special tokens (the tokenizer's layout says which positions are words)."""

    name = "occlusion"

    def _values(self, ids, output_index):
        vis = self.layout.visible(ids)
        rows, cols = np.nonzero(vis)
        one = np.zeros((len(rows), ids.shape[1]), dtype=bool)
        one[np.arange(len(rows)), cols] = True
        occluded = self.layout.blank_words(ids[torch.from_numpy(rows)], one)
        fx = self.predict_inputs(ids, output_index)
        fo = self.predict_reference(occluded, output_index, "an occluded text (one word replaced by padding)", rows)
        phi = np.zeros(ids.shape, dtype=np.float64)
        phi[rows, cols] = fx[rows] - fo
        return phi, np.full(len(ids), np.nan)


class RandomBaseline(Attribution):
    """Seeded N(0, 1) values on the visible words, 0 elsewhere: what "no signal" scores.

    Seeded per input row from ``seed`` and the row's ids: the same seed gives the same
    values for the same review, a different seed different ones.
    """

    name, stochastic = "random", True

    def __init__(self, model, seed: int = 0, **kw):
        super().__init__(model, **kw)
        self.seed = int(seed)

    def _values(self, ids, output_index):
        vis = self.layout.visible(ids)
        phi = np.zeros(ids.shape, dtype=np.float64)
        for i in range(len(ids)):
            phi[i, vis[i]] = row_rng(self.seed, ids[i]).standard_normal(int(vis[i].sum()))
        return phi, np.full(len(ids), np.nan)
