"""Pair bookkeeping shared by the explicit layers: the stacked batch of inputs and references.

The explainer runs a model on ``[x-rows; reference-rows]`` (2P rows, P = n*k pairs). An
explicit layer (recurrent or attention) runs its forward pass on the n + k *unique* rows
(:class:`_Grid`) and only its backward pass of multipliers per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Pairing:
    """How the stacked batch ``[x-rows; reference-rows]`` (2P rows) pairs up.

    With ``n`` inputs and ``k`` references the first P = n*k rows are each input repeated
    k times and the last P rows are the references tiled n times; then only n + k rows
    are unique. ``n=None`` means row p of the first half pairs with row p of the second.
    """

    n: int | None = None
    k: int | None = None
    tokens: TokenSink | None = None
    ledger: Any = None  # the tracer's :class:`~.signals.Ledger` of this pass
    mode: Any = None  # the tracer's mode (reads masks computed from the ids)

    def signal(self, t: torch.Tensor) -> torch.Tensor:
        """``t``, or the float shadow of a value derived from the ids (a padding mask), which an
        explicit layer must read so that the mask's share reaches the positions."""
        shadow = self.ledger.shadow(t) if self.ledger is not None else None
        return t if shadow is None else shadow


class TokenSink:
    """Per-token attributions taken straight from a recurrent layer whose input *is* an
    embedding output the explainer captured: ``sum_g m_g * Delta(W_ih e)_g`` equals
    ``sum_e (m W_ih)_e * Delta e_e``, so the ``[pairs, T, 4H] x [4H, E]`` product that would
    carry multipliers back to the embedding is never formed."""

    def __init__(self, leaves: list[torch.Tensor]):
        self.leaves = leaves
        self.ledger: Any = None  # set by the tracer: its input features are the leaves
        self.acc: dict[int, torch.Tensor] = {}

    def owns(self, t: torch.Tensor) -> bool:
        leaves = self.leaves if self.ledger is None else [leaf.tensor for leaf in self.ledger.leaves]
        return any(t is leaf for leaf in leaves)

    def add(self, leaf: torch.Tensor, contrib: torch.Tensor) -> None:
        key = id(leaf)
        self.acc[key] = self.acc[key] + contrib if key in self.acc else contrib

    def take(self, leaf: torch.Tensor) -> torch.Tensor | None:
        return self.acc.pop(id(leaf), None)


class _Grid:
    """Unique rows <-> pair grid bookkeeping for one call."""

    def __init__(self, batch: int, pairing: Pairing | None, *tensors: torch.Tensor):
        self.P = batch // 2
        self.dedup, self.a, self.b = False, self.P, 1
        if pairing is not None and pairing.n is not None and pairing.k is not None:
            n, k = pairing.n, pairing.k
            if n * k == self.P and all(self._repeats(t, n, k) for t in tensors):
                self.dedup, self.a, self.b = True, n, k
        self.nx = self.a  # unique x rows

    @staticmethod
    def _repeats(t: torch.Tensor, n: int, k: int) -> bool:
        # Never trust the layout blindly: a wrapper could have mixed rows. Compared as views
        # (broadcast against the first copy), so the check allocates no float copies.
        P = n * k
        x, r = t[:P].reshape(n, k, -1), t[P:].reshape(n, k, -1)
        return bool((x == x[:, :1]).all()) and bool((r == r[:1]).all())

    def unique(self, t: torch.Tensor) -> torch.Tensor:
        """``[2P, ...]`` -> unique rows ``[nx + nr, ...]``."""
        if not self.dedup:
            return t
        return torch.cat([t[: self.P : self.b], t[self.P : self.P + self.b]], 0)

    def expand(self, u: torch.Tensor) -> torch.Tensor:
        """unique rows -> ``[2P, ...]`` in the stacked pair layout."""
        if not self.dedup:
            return u
        ux, ur = u[: self.nx], u[self.nx :]
        return torch.cat([ux.repeat_interleave(self.b, 0), ur.repeat(self.a, *[1] * (u.dim() - 1))], 0)

    def sides(self, s: torch.Tensor, batch_dim: int = 1):
        """Stored ``[T, nu, D]`` -> broadcastable (x ``[T, a, 1, D]``, r ``[T, 1|a, b, D]``)."""
        if self.dedup:
            x, r = s.narrow(batch_dim, 0, self.nx), s.narrow(batch_dim, self.nx, s.shape[batch_dim] - self.nx)
            return x.unsqueeze(batch_dim + 1), r.unsqueeze(batch_dim)
        x, r = s.narrow(batch_dim, 0, self.P), s.narrow(batch_dim, self.P, self.P)
        return x.unsqueeze(batch_dim + 1), r.unsqueeze(batch_dim + 1)

    def grid(self, g: torch.Tensor | None, like_shape, like: torch.Tensor) -> torch.Tensor:
        """x half of an incoming gradient ``[2P, ...]`` -> ``[a, b, ...]`` (zeros if None)."""
        if g is None:
            return like.new_zeros((self.a, self.b, *like_shape))
        return g[: self.P].reshape(self.a, self.b, *g.shape[1:])

    def flat(self, m: torch.Tensor) -> torch.Tensor:
        """``[a, b, ...]`` multipliers -> gradient ``[2P, ...]``: the input half's, zeros for the
        reference half (never read)."""
        m = m.reshape(self.P, *m.shape[2:])
        out = m.new_empty((2 * self.P, *m.shape[1:]))
        out[: self.P] = m
        out[self.P :].zero_()
        return out
