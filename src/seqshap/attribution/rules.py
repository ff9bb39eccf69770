"""DeepLIFT rules, one small object per rule, computed on paired rows.

Everything here works on a *pair grid*: an input row ``x`` and a reference row ``r``,
broadcast against each other (``[n, 1, ...]`` with ``[1, k, ...]`` gives all ``n*k``
pairs without copying either side). A rule turns the incoming multiplier ``m_out``
(d output / d Delta out) into multipliers for its inputs such that

    m_out * Delta out == sum_inputs m_in * Delta in        (exactly, per element)

which is what makes the final attributions add up.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def tolerance(dtype: torch.dtype) -> float:
    """Below this |x - r| the secant slope is replaced by the slope at the midpoint.

    The midpoint slope is exact up to f'''*Delta^3/24, so a fairly large switch point
    is safe and keeps the secant away from catastrophic cancellation.
    """
    return 1e-6 if dtype == torch.float64 else 1e-3


def secant(zx: torch.Tensor, zr: torch.Tensor, fx: torch.Tensor, fr: torch.Tensor,
           slope_mid) -> torch.Tensor:
    """Rescale multiplier ``(f(zx) - f(zr)) / (zx - zr)``, and ``f'((zx+zr)/2)`` where
    ``|zx - zr|`` is below :func:`tolerance`. ``slope_mid(z)`` gives ``f'(z)``."""
    d = zx - zr
    small = d.abs() <= tolerance(d.dtype)
    m = (fx - fr) / torch.where(small, torch.ones_like(d), d)
    if bool(small.any()):
        m = torch.where(small, slope_mid((zx + zr) * 0.5), m)
    return m


def secant_stored(zx, zr, fx, fr, half_slope_x, half_slope_r) -> torch.Tensor:
    """:func:`secant` with the fallback slope given as ``(f'(zx) + f'(zr)) / 2`` from values
    stored in the forward pass (the trapezoid slope, as accurate as the midpoint one to
    third order, and free of new transcendental calls)."""
    d = zx - zr
    small = d.abs() <= tolerance(d.dtype)
    m = (fx - fr) / d.masked_fill(small, 1.0)
    return torch.where(small, half_slope_x + half_slope_r, m)


def sigmoid_slope(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


def tanh_slope(z: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(z) ** 2


@dataclass(frozen=True)
class ProductRule:
    """How ``Delta(a*b)`` is split between the two factors; ``a`` is the gate.

    - ``"shapley"``: the two-player Shapley split, exact and symmetric:
      ``phi_a = Delta a * (b_x + b_r)/2``, ``phi_b = Delta b * (a_x + a_r)/2``.
    - ``"signal"``: the gate is treated as a weight and the whole difference goes to the
      signal ``b`` (``m_b = Delta(ab) / Delta b``); where ``Delta b`` is ~0 it falls back to
      the Shapley split, so it is exact too.
    """
    name: str = "shapley"

    def __post_init__(self):
        if self.name not in ("shapley", "signal"):
            raise ValueError(f"unknown product rule {self.name!r}; use 'shapley' or 'signal'")

    def weights(self, ax, ar, bx, br) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_a, w_b) with ``w_a * Delta a + w_b * Delta b == a_x b_x - a_r b_r``."""
        w_a, w_b = (bx + br) * 0.5, (ax + ar) * 0.5
        if self.name == "shapley":
            return w_a, w_b
        db = bx - br
        small = db.abs() <= tolerance(db.dtype)
        signal_w = (ax * bx - ar * br) / torch.where(small, torch.ones_like(db), db)
        return torch.where(small, w_a, torch.zeros_like(w_a)), torch.where(small, w_b, signal_w)


# ---- autograd functions for ops outside the recurrent layers -------------------------------
# These run on the stacked batch [x-rows; reference-rows] (2P rows). Only the x half of the
# incoming gradient carries multipliers; both halves get the result (the reference half is
# never read, but linear ops in between stay shape-consistent).

def _halves(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = t.shape[0] // 2
    return t[:p], t[p:]


def _both(m: torch.Tensor) -> torch.Tensor:
    return torch.cat([m, m], 0)


class Rescale(torch.autograd.Function):
    """Elementwise nonlinearity ``f``: multiplier = secant slope between x and reference."""

    @staticmethod
    def forward(ctx, z, fn):
        y = fn(z)
        ctx.save_for_backward(z, y)
        ctx.fn = fn
        return y

    @staticmethod
    def backward(ctx, g):
        z, y = ctx.saved_tensors
        zx, zr = _halves(z)
        yx, yr = _halves(y)
        fn = ctx.fn

        def slope(mid):
            with torch.enable_grad():
                mid = mid.detach().requires_grad_(True)
                return torch.autograd.grad(fn(mid).sum(), mid)[0]
        m = secant(zx, zr, yx, yr, slope)
        return _both(_halves(g)[0] * m), None


class Product(torch.autograd.Function):
    """``a * b`` where both factors depend on the input (``a`` is taken as the gate)."""

    @staticmethod
    def forward(ctx, a, b, rule: ProductRule):
        ctx.save_for_backward(a, b)
        ctx.rule = rule
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        (ax, ar), (bx, br) = _halves(a), _halves(b)
        w_a, w_b = ctx.rule.weights(ax, ar, bx, br)
        gx = _halves(g)[0]
        ga, gb = gx * w_a, gx * w_b
        # Undo broadcasting: a factor that was broadcast sums its multipliers.
        return _sum_to(_both(ga), a.shape), _sum_to(_both(gb), b.shape), None


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if t.shape == shape:
        return t
    return t.sum_to_size(shape)


class MaxOverDim(torch.autograd.Function):
    """``amax(z, dim)``: half of ``Delta y`` goes to the argmax position of ``x``, half to
    the argmax position of the reference (all of it when they coincide), each divided by
    that position's own ``Delta z``. Where a position's ``Delta z`` is ~0 its share moves to
    the other position, so the rule stays exact."""

    @staticmethod
    def forward(ctx, z, dim: int):
        y, idx = z.max(dim=dim, keepdim=True)
        ctx.save_for_backward(z, y, idx)
        ctx.dim = dim
        return y.squeeze(dim)

    @staticmethod
    def backward(ctx, g):
        z, y, idx = ctx.saved_tensors
        dim = ctx.dim
        (zx, zr), (yx, yr), (ix, ir) = _halves(z), _halves(y), _halves(idx)
        dy = yx - yr
        dz = zx - zr
        tol = tolerance(z.dtype)
        d_at_x = dz.gather(dim, ix)           # Delta z at x's argmax
        d_at_r = dz.gather(dim, ir)           # Delta z at the reference's argmax
        ok_x, ok_r = d_at_x.abs() > tol, d_at_r.abs() > tol
        share_x = torch.where(ok_x & ok_r, 0.5 * torch.ones_like(dy), ok_x.to(dy.dtype))
        share_r = torch.where(ok_x & ok_r, 0.5 * torch.ones_like(dy), (ok_r & ~ok_x).to(dy.dtype))
        safe = lambda d: torch.where(d.abs() > tol, d, torch.ones_like(d))  # noqa: E731
        m = torch.zeros_like(zx)
        gx = _halves(g)[0].unsqueeze(dim)
        m.scatter_add_(dim, ix, gx * dy * share_x / safe(d_at_x))
        m.scatter_add_(dim, ir, gx * dy * share_r / safe(d_at_r))
        return _both(m), None


class CenteredSoftmax(torch.autograd.Function):
    """Softmax over classes. ``Delta p_c`` is spread over the logits along their centred
    difference ``u = Delta z - mean(Delta z)``: ``m_cj = Delta p_c * u_j / |u|^2``. This is exact
    (``sum_j m_cj Delta z_j = Delta p_c``), ignores a shift common to all logits (softmax does
    too), and for two classes equals the sigmoid rescale rule on ``z_1 - z_0``."""

    @staticmethod
    def forward(ctx, z, dim: int):
        p = torch.softmax(z, dim=dim)
        ctx.save_for_backward(z, p)
        ctx.dim = dim
        return p

    @staticmethod
    def backward(ctx, g):
        z, p = ctx.saved_tensors
        dim = ctx.dim
        (zx, zr), (px, pr) = _halves(z), _halves(p)
        u = (zx - zr) - (zx - zr).mean(dim=dim, keepdim=True)
        norm = (u * u).sum(dim=dim, keepdim=True)
        tiny = norm <= tolerance(z.dtype) ** 2
        # g_c * Delta p_c summed over classes c, spread along u
        s = (_halves(g)[0] * (px - pr)).sum(dim=dim, keepdim=True)
        m = torch.where(tiny, torch.zeros_like(u), s * u / torch.where(tiny, torch.ones_like(norm), norm))
        return _both(m), None
