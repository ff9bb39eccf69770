"""Shapley values of the words by brute force: every coalition (exact) or sampled permutations."""

from __future__ import annotations

import math

import numpy as np

from .._validation import PAIRS
from ..errors import TooManyPlayersError
from .base import Attribution, row_rng


def _shapley_weights(p: int) -> np.ndarray:
    """``w[s] = s! (p-s-1)! / p!`` for coalition sizes ``s = 0..p-1``."""
    return np.array([math.factorial(s) * math.factorial(p - s - 1) / math.factorial(p) for s in range(p)])


class ExactShapley(Attribution):
    """Shapley values of the game ``v(S) = mean_j f(x_S, r_j)`` by enumerating all coalitions.

    Players are the words (at most ``max_players``; the tokenizer's layout says which positions
    are words); an absent word takes the reference row's id at its position (default: padding,
    special tokens kept, so the empty coalition is the text with its words replaced by padding).
    ``reference`` ``[k, T]`` with ``k > 1`` gives the interventional (background) game that
    DeepSHAP approximates. Cost: ``k * 2^p`` forward passes per input.
    """

    name, additive = "exact-shapley", True
    base_name = "the output for the empty coalition (the text with its words replaced by padding)"

    def __init__(self, model, reference=None, max_players: int = 14, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        self.reference = None if reference is None else self._prepare(reference, "reference")
        self.max_players = int(max_players)

    def n_players(self, ids) -> np.ndarray:
        return self.layout.visible(ids).sum(-1)

    def supports(self, ids) -> bool:
        return bool((self.n_players(ids) <= self.max_players).all())

    def _values(self, ids, output_index):
        phi = np.zeros(ids.shape, dtype=np.float64)
        base = np.zeros(len(ids))
        given = self.reference
        if given is not None and given.shape[1] != ids.shape[1]:
            raise ValueError(f"reference rows have length {given.shape[1]} but the inputs have {ids.shape[1]}")
        self.predict_inputs(ids, output_index)
        for i in range(len(ids)):
            # absent words are padding unless references are given (only word positions are read)
            ref = given if given is not None else self.layout.blank_words(ids[i : i + 1])
            pos = self.layout.players(ids[i])
            p = len(pos)
            if p > self.max_players:
                raise TooManyPlayersError(
                    f"exact Shapley enumerates 2^p coalitions; input {i} has {p} words "
                    f"(limit {self.max_players}); use sampling-shapley for longer inputs"
                )
            if p == 0:
                base[i] = float(self.predict_reference(ids[i : i + 1], output_index, "a text without words")[0])
                continue
            masks = np.arange(2**p)
            present = ((masks[:, None] >> np.arange(p)[None, :]) & 1).astype(bool)  # [2^p, p]
            # [k, 2^p, T]: row i where present, reference j where absent
            x = ids[i].expand(len(ref), 2**p, -1).clone()
            absent_m, absent_p = np.nonzero(~present)
            x[:, absent_m, pos[absent_p]] = ref[:, pos[absent_p]]
            v = self.predict(x.reshape(-1, x.shape[-1]), output_index).reshape(len(ref), 2**p)
            self.check_reference(v[:, 0], "the empty coalition (the text with its words replaced by padding)", i)
            v = v.mean(0)  # [2^p]
            size = present.sum(1)
            w = _shapley_weights(p)
            for j in range(p):
                without = masks[~present[:, j]]
                phi[i, pos[j]] = float((w[size[without]] * (v[without | (1 << j)] - v[without])).sum())
            base[i] = v[0]
        return phi, base


class SamplingShapley(Attribution):
    """Permutation-sampling Shapley (Castro et al. 2009) with antithetic pairs.

    Each permutation adds the words one by one to the text with its words replaced by padding
    (special tokens kept) and credits each
    word with the change it causes; a permutation and its reverse form a pair (lower
    variance). Per-permutation sums telescope, so the values add up exactly. Seeded per
    input row (a review gets the same estimate whatever batch it is in).
    Cost: ``n_permutations * (p + 1)`` forward passes per input.
    """

    name, additive, stochastic = "sampling-shapley", True, True
    base_name = "the output for the empty coalition (the text with its words replaced by padding)"

    def __init__(self, model, n_permutations: int = 16, seed: int = 0, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        PAIRS.check("n_permutations", n_permutations)
        self.n_permutations, self.seed = int(n_permutations), int(seed)

    def _values(self, ids, output_index):
        phi = np.zeros(ids.shape, dtype=np.float64)
        base = np.zeros(len(ids))
        self.predict_inputs(ids, output_index)
        for i in range(len(ids)):
            pos = self.layout.players(ids[i])
            p = len(pos)
            empty = self.layout.blank_words(ids[i])
            base[i] = float(
                self.predict_reference(
                    empty[None], output_index, "the empty coalition (the text with its words replaced by padding)", [i]
                )[0]
            )
            if p == 0:
                continue
            rng = row_rng(self.seed, ids[i])
            half = [rng.permutation(p) for _ in range(self.n_permutations // 2)]
            perms = np.stack(half + [h[::-1] for h in half])  # [m, p]
            m = len(perms)
            # steps[m, s, T]: after adding the first s words of permutation m (s = 0..p)
            order_rank = np.empty_like(perms)
            order_rank[np.arange(m)[:, None], perms] = np.arange(p)[None, :]  # step at which word joins
            present = order_rank[:, None, :] < np.arange(p + 1)[None, :, None]  # [m, p+1, p]
            x = empty.expand(m, p + 1, -1).clone()
            mm, ss, jj = np.nonzero(present)
            x[mm, ss, pos[jj]] = ids[i, pos[jj]]
            v = self.predict(x.reshape(-1, x.shape[-1]), output_index).reshape(m, p + 1)
            gains = np.diff(v, axis=1)  # [m, p], by step
            credit = np.take_along_axis(gains, order_rank, axis=1)  # [m, p], by word
            phi[i, pos] = credit.mean(0)
            base[i] = v[0, 0]
        return phi, base
