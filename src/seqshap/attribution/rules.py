"""DeepLIFT rules, one small object per rule, computed on paired rows.

Everything here works on a *pair grid*: an input row ``x`` and a reference row ``r``,
broadcast against each other (``[n, 1, ...]`` with ``[1, k, ...]`` gives all ``n*k``
pairs without copying either side). A rule turns the incoming multiplier ``m_out``
(d output / d Delta out) into multipliers for its inputs such that

    m_out * Delta out == sum_inputs m_in * Delta in        (exactly, per element)

which is what makes the final attributions add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def tolerance(dtype: torch.dtype) -> float:
    """Below this |x - r| the secant slope is replaced by the slope at the midpoint.

    The midpoint slope is exact up to f'''*Delta^3/24, so a fairly large switch point
    is safe and keeps the secant away from catastrophic cancellation.
    """
    return 1e-6 if dtype == torch.float64 else 1e-3


def secant(
    zx: torch.Tensor,
    zr: torch.Tensor,
    fx: torch.Tensor,
    fr: torch.Tensor,
    slope_mid,
    scale: torch.Tensor | float | None = 1.0,
) -> torch.Tensor:
    """Rescale multiplier ``(f(zx) - f(zr)) / (zx - zr)``, and ``f'((zx+zr)/2)`` where
    ``|zx - zr|`` is below :func:`tolerance` times ``scale``. ``slope_mid(z)`` gives ``f'(z)``;
    ``scale`` is the distance over which ``f`` bends (1 for sigmoid-like functions, ``v`` for
    ``rsqrt(v)``), so the midpoint slope is only used where it is accurate; ``None`` for a
    function with kinks (ReLU, clamp, abs), whose secant is used wherever ``zx != zr``: near a
    kink the midpoint slope is not the secant, however close the two sides are."""
    d = zx - zr
    small = d.abs() <= tolerance(d.dtype) * scale if scale is not None else d == 0
    m = (fx - fr) / torch.where(small, torch.ones_like(d), d)
    if bool(small.any()):
        m = m.expand(small.shape).clone() if m.shape != small.shape else m
        mid = ((zx + zr) * 0.5).expand(small.shape)
        m[small] = slope_mid(mid[small])
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
    """The gradient for the stacked halves: the input half's multipliers, zeros for the reference
    half (no rule ever reads a reference half's gradient; linear steps keep the halves apart)."""
    out = m.new_empty((2 * m.shape[0], *m.shape[1:]))
    out[: m.shape[0]] = m
    out[m.shape[0] :].zero_()
    return out


class Rescale(torch.autograd.Function):
    """Elementwise nonlinearity ``f``: multiplier = secant slope between x and reference.

    ``bend``: where the midpoint slope may stand in for a secant (see :func:`secant`):
    ``"smooth"`` (``f`` bends over a distance of 1: sigmoid, tanh, exp, GELU), ``"kink"``
    (piecewise: never), ``"power"`` (``rsqrt``, ``sqrt``, ``1/z``, ``log``, powers: ``f`` bends
    over a distance of ``|z|`` itself, so near 0 only a much closer pair may use it; RMSNorm of a
    zero padding embedding against a word's needs the secant of ``rsqrt`` between ``ε`` and ``4e-4``)."""

    @staticmethod
    def forward(ctx, z, fn, bend: str = "smooth"):
        y = fn(z)
        ctx.save_for_backward(z, y)
        ctx.fn, ctx.bend = fn, bend
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

        m = getattr(ctx, "m", None)  # the slopes do not depend on g: one per forward, reused per output
        if m is None:
            if ctx.bend == "kink":
                scale: torch.Tensor | float | None = None
            elif ctx.bend == "power":
                scale = torch.minimum(zx.abs(), zr.abs()).clamp(max=1.0)
            else:
                scale = 1.0
            m = ctx.m = secant(zx, zr, yx, yr, slope, scale=scale)
        return _both(_halves(g)[0] * m), None, None


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
        w = getattr(ctx, "w", None)  # the weights do not depend on g: one per forward, reused per output
        if w is None:
            (ax, ar), (bx, br) = _halves(a), _halves(b)
            w = ctx.w = ctx.rule.weights(ax, ar, bx, br)
        w_a, w_b = w
        gx = _halves(g)[0]
        ga, gb = gx * w_a, gx * w_b
        return _both_sum_to(ga, a.shape), _both_sum_to(gb, b.shape), None


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if t.shape == shape:
        return t
    return t.sum_to_size(shape)


def _both_sum_to(m: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``_both(m)`` summed to ``shape`` (a factor that was broadcast sums its multipliers); the
    sum runs on the x half before the halves are stacked (a ``[P, T, 1]`` mask's multipliers
    are not first copied at ``[2P, T, D]``)."""
    if len(shape) == m.dim() and shape[0] == 2 * m.shape[0]:
        return _both(_sum_to(m, torch.Size((m.shape[0], *shape[1:]))))
    return _sum_to(_both(m), shape)


def _nonzero(d: torch.Tensor) -> torch.Tensor:
    return torch.where(d == 0, torch.ones_like(d), d)


def max_shares(d_at_x: torch.Tensor, d_at_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How ``Δ max`` splits between the argmax position of x and that of the reference, given
    each position's own ``Δz``: half each; all to one where the other's ``Δz`` is ~0 (dividing
    by it would blow up); where both are ~0, all to the larger non-zero one. Exact: ``Δ max`` is
    0 whenever both ``Δz`` are exactly 0."""
    tol = tolerance(d_at_x.dtype)
    ok_x, ok_r = d_at_x.abs() > tol, d_at_r.abs() > tol
    neither = ~ok_x & ~ok_r
    x_wins = neither & (d_at_x.abs() >= d_at_r.abs()) & (d_at_x != 0)
    r_wins = neither & ~x_wins & (d_at_r != 0)
    half = 0.5 * torch.ones_like(d_at_x)
    share_x = torch.where(ok_x & ok_r, half, ((ok_x & ~ok_r) | x_wins).to(d_at_x.dtype))
    share_r = torch.where(ok_x & ok_r, half, ((ok_r & ~ok_x) | r_wins).to(d_at_x.dtype))
    return share_x, share_r


class MaxOverDim(torch.autograd.Function):
    """``amax(z, dim)``: half of ``Delta y`` goes to the argmax position of ``x``, half to
    the argmax position of the reference (all of it when they coincide), each divided by
    that position's own ``Delta z``. Where a position's ``Delta z`` is ~0 its share moves to
    the other position, so the rule stays exact (:func:`max_shares`)."""

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
        d_at_x = dz.gather(dim, ix)  # Delta z at x's argmax
        d_at_r = dz.gather(dim, ir)  # Delta z at the reference's argmax
        share_x, share_r = max_shares(d_at_x, d_at_r)
        m = torch.zeros_like(zx)
        gx = _halves(g)[0].unsqueeze(dim)
        m.scatter_add_(dim, ix, gx * dy * share_x / _nonzero(d_at_x))
        m.scatter_add_(dim, ir, gx * dy * share_r / _nonzero(d_at_r))
        return _both(m), None


class CenteredSoftmax(torch.autograd.Function):
    """Softmax over classes. ``Delta p_c`` is spread over the logits along their centred
    difference ``u = Delta z - mean(Delta z)``: ``m_cj = Delta p_c * u_j / |u|^2``. This is exact
    (``sum_j m_cj Delta z_j = Delta p_c``), ignores a shift common to all logits (softmax does
    too), and for two classes equals the sigmoid rescale rule on ``z_1 - z_0``. Where ``|u|`` is
    below :func:`tolerance` the multipliers are the softmax's gradient at the midpoint logits (exact
    up to third order in ``Delta z``, as the secant's fallback)."""

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
        gx = _halves(g)[0]
        s = (gx * (px - pr)).sum(dim=dim, keepdim=True)
        m = s * u / torch.where(tiny, torch.ones_like(norm), norm)
        if bool(tiny.any()):
            pm = torch.softmax((zx + zr) * 0.5, dim=dim)
            m = torch.where(tiny, pm * (gx - (gx * pm).sum(dim=dim, keepdim=True)), m)
        return _both(m), None


# ---- rules for attention and normalization ---------------------------------------------------
# Written for any pair layout: the x side and the reference side are broadcast against each
# other (stacked halves [P, ...] with [P, ...], or the deduplicated grid [n, 1, ...] with
# [1, k, ...]); every result has the broadcast pair shape.


class BilinearRule:
    """``C = A @ B`` (matrix product) where both factors depend on the input.

    The two-player Shapley split applied to every term ``A_ik B_kj`` and summed over ``k``
    stays a matrix product: with ``Ā = (A_x + A_r)/2`` and ``B̄ = (B_x + B_r)/2``,
    ``ΔC = ΔA B̄ + Ā ΔB`` exactly, so ``m_A = m_C B̄ᵀ`` and ``m_B = Āᵀ m_C``.
    No ``[pairs, i, k, j]`` elementwise tensor is formed.
    """

    @staticmethod
    def multipliers(g, ax, ar, bx, br) -> tuple[torch.Tensor, torch.Tensor]:
        b_mid = torch.add(bx, br).mul_(0.5)
        a_mid = torch.add(ax, ar).mul_(0.5)
        return g @ b_mid.transpose(-1, -2), a_mid.transpose(-1, -2) @ g


def _ratio(num: torch.Tensor, den: torch.Tensor, at_zero: float = 1.0) -> torch.Tensor:
    """``num / den`` with ``at_zero`` where ``den`` is exactly 0 (the caller's limit)."""
    zero = den == 0
    return torch.where(zero, torch.full_like(num, at_zero), num / torch.where(zero, torch.ones_like(den), den))


class SoftmaxRule:
    """Softmax over the last dim, optionally over the keys whose ``mask`` is 1 only.

    *One mask* (or none): write ``p_i = exp(w_i)`` with ``w_i = s_i - LSE(s)``. Then
    ``Δp_i = σ_i (Δs_i - ΔLSE)`` with ``σ_i = Δp_i / Δw_i`` the secant slope of ``exp``, and
    ``ΔLSE = Σ_j μ_j Δs_j`` exactly with

        μ_j = μ⁰_j (1 + c Δs_j),   μ⁰ = (p_x + p_r)/2,   c = (ΔLSE - Σ μ⁰ Δs) / Σ μ⁰ Δs²

    (the trapezoid rule for the gradient of LSE, plus the smallest correction in proportion
    to it; ``c`` is about 1/12, 0 for a pure shift of the scores, and keys with no
    probability on either side get nothing). The multiplier of ``s_j`` for output ``i`` is
    ``σ_i (δ_ij - μ_j)``: gradient-like (``p_i (δ_ij - p_j)`` as the difference vanishes).

    *Two masks* (the input and the reference have different real keys): the scores and
    the mask are two players. The scores get the one-mask rule averaged over both masks,
    ``½[p(s_x|m_x) - p(s_r|m_x)] + ½[p(s_x|m_r) - p(s_r|m_r)]``; the mask gets the rest,
    ``½ Σ_s [p(s|m_x) - p(s|m_r)]``, which goes to the keys whose mask changed: a key's
    own probability to itself, every other key's change shared out by the changed keys'
    probability mass ``e^{s_j} / Σ_{l changed} e^{s_l}``. Both parts are exact, so the sum is.
    """

    @staticmethod
    def _one_mask(g, sx, sr, px, pr, lx, lr):
        """Multipliers for ``s`` with the mask fixed (``p`` is 0 at masked keys on both sides).
        ``lx``/``lr``: log-sum-exp over the kept keys ``[..., 1]``. Written as a short chain of
        in-place steps: this is the inner loop of explaining attention."""
        ds = sx - sr
        L = lx - lr
        dw = ds - L
        dw.masked_fill_(dw == 0, 1.0)  # there Δp is 0 too: any slope is exact
        gs = (px - pr).div_(dw).mul_(g)  # g σ
        mu0 = px + pr  # 2 μ⁰
        t1 = mu0 * ds
        t2 = (t1 * ds).sum(-1, keepdim=True)
        c = _ratio(2 * L - t1.sum(-1, keepdim=True), t2, 0.0)  # c, from 2μ⁰ sums
        S = gs.sum(-1, keepdim=True)
        return gs.addcmul_(mu0, S, value=-0.5).addcmul_(t1, c * S, value=-0.5)

    @staticmethod
    def _masked_softmax(s, keep):
        z = s.masked_fill(~keep, float("-inf"))
        return torch.softmax(z, -1), torch.logsumexp(z, -1, keepdim=True)

    @staticmethod
    def log_sum_exp(s, mask=None):
        """``[..., 1]`` log-sum-exp over the keys with ``mask`` 1 (all without a mask)."""
        z = s if mask is None else s.masked_fill(mask <= 0.5, float("-inf"))
        return torch.logsumexp(z, -1, keepdim=True)

    @classmethod
    def multipliers(cls, g, sx, sr, px, pr, mx=None, mr=None, lx=None, lr=None):
        """``(m_s, m_mask)`` for the incoming multiplier ``g`` of ``p`` ``[..., Q, K]``. The masks
        are ``[..., 1, K]`` (one per row of queries); ``m_mask``, ``[..., 1, K]``, is already summed
        over the queries (``None`` without masks).
        ``lx``/``lr`` (the log-sum-exp of each side under its own mask) may be passed in
        when they are already known. Scores at masked keys must be finite."""
        lx = cls.log_sum_exp(sx, mx) if lx is None else lx
        lr = cls.log_sum_exp(sr, mr) if lr is None else lr
        if mx is None:
            return cls._one_mask(g, sx, sr, px, pr, lx, lr), None
        kx, kr = mx > 0.5, mr > 0.5
        changed = kx != kr
        if mx.shape[-2] != 1 or mr.shape[-2] != 1:
            raise ValueError("masks must be [..., 1, K]: one mask for all queries of a row")
        if not bool(changed.any()):
            return cls._one_mask(g, sx, sr, px, pr, lx, lr), torch.zeros_like(g[..., :1, :])
        p_sr_mx, l_sr_mx = cls._masked_softmax(sr, kx)  # the reference's scores, the input's keys
        p_sx_mr, l_sx_mr = cls._masked_softmax(sx, kr)
        m_s = cls._one_mask(g, sx, sr, px, p_sr_mx, lx, l_sr_mx)
        m_s = m_s.add_(cls._one_mask(g, sx, sr, p_sx_mr, pr, l_sx_mr, lr)).mul_(0.5)
        # The mask player, summed over the queries: a key's own change plus its share of the
        # unchanged keys' changes, by the changed keys' mass (reductions as matrix products).
        dm = (mx - mr).to(g.dtype)  # ±1 where a key's mask changed: its own inverse
        ch = changed.to(g.dtype)
        m_mask = torch.zeros_like(g[..., :1, :])
        for d, q in ((px - p_sx_mr, px + p_sx_mr), (p_sr_mx - pr, p_sr_mx + pr)):  # s = s_x, then s_r
            gd = g * d
            rest = gd @ (1 - ch).transpose(-1, -2)  # [..., Q, 1]
            mass = (q @ ch.transpose(-1, -2)).clamp_min_(torch.finfo(q.dtype).tiny)
            shared = (rest / mass).transpose(-1, -2) @ q  # [..., 1, K]
            m_mask = m_mask + (shared * ch + gd.sum(-2, keepdim=True)) * dm
        return m_s, 0.5 * m_mask


class LayerNormRule:
    """``y = γ (z - mean z) rsqrt(var + ε) + β`` over the last dim, as a composition of exact steps.

    Centering is linear; ``c²`` has the exact secant ``c_x + c_r``; the mean is linear;
    ``r = rsqrt(v + ε)`` gets the rescale secant (midpoint slope when ``|Δv|`` is tiny);
    ``ĉ = c r`` is a product of two signals and gets the Shapley split; the affine part is
    linear. Each step conserves its difference, so the composition does.
    """

    @staticmethod
    def multipliers(g, zx, zr, weight, eps: float) -> torch.Tensor:
        cx, cr = zx - zx.mean(-1, keepdim=True), zr - zr.mean(-1, keepdim=True)
        vx, vr = (cx * cx).mean(-1, keepdim=True), (cr * cr).mean(-1, keepdim=True)
        rx, rr = torch.rsqrt(vx + eps), torch.rsqrt(vr + eps)
        gc = g * weight if weight is not None else g
        m_c = gc * ((rx + rr) * 0.5)
        m_r = (gc * ((cx + cr) * 0.5)).sum(-1, keepdim=True)
        m_v = m_r * secant(vx, vr, rx, rr, lambda v: -0.5 * torch.rsqrt(v + eps) ** 3, scale=(vx + vr) * 0.5 + eps)
        m_c = m_c + (m_v / zx.shape[-1]) * (cx + cr)
        return m_c - m_c.mean(-1, keepdim=True)


class Bilinear(torch.autograd.Function):
    """``a @ b`` (matmul/bmm) of two signals on the stacked halves: :class:`BilinearRule`."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        (ax, ar), (bx, br) = _halves(a), _halves(b)
        ga, gb = BilinearRule.multipliers(_halves(g)[0], ax, ar, bx, br)
        return _both_sum_to(ga, a.shape), _both_sum_to(gb, b.shape)


class MaskedSoftmax(torch.autograd.Function):
    """Softmax over the last dim of ``s`` where ``keep`` (bool, broadcast to ``s``) on the stacked
    halves, the mask the same for an input and its reference: :class:`SoftmaxRule` with one mask.
    ``s`` is finite everywhere; masked keys have probability 0 on both sides and get nothing."""

    @staticmethod
    def forward(ctx, s, keep):
        z = s.masked_fill(~keep, float("-inf"))
        p, lse = torch.softmax(z, -1), torch.logsumexp(z, -1, keepdim=True)
        ctx.save_for_backward(s, p, lse)
        return p

    @staticmethod
    def backward(ctx, g):
        s, p, lse = ctx.saved_tensors
        (sx, sr), (px, pr), (lx, lr) = _halves(s), _halves(p), _halves(lse)
        return _both(SoftmaxRule._one_mask(_halves(g)[0], sx, sr, px, pr, lx, lr)), None


class LayerNorm(torch.autograd.Function):
    """``F.layer_norm`` over the last dim on the stacked halves: :class:`LayerNormRule`."""

    @staticmethod
    def forward(ctx, z, weight, bias, eps: float):
        ctx.save_for_backward(z, weight)
        ctx.eps = eps
        return F.layer_norm(z, z.shape[-1:], weight, bias, eps)

    @staticmethod
    def backward(ctx, g):
        z, weight = ctx.saved_tensors
        zx, zr = _halves(z)
        return _both(LayerNormRule.multipliers(_halves(g)[0], zx, zr, weight, ctx.eps)), None, None, None


# Elements of the largest per-pair temporary a blockwise backward handles at once (2 MB in float32).
CACHE_ELEMENTS = 1 << 19


# ---- masks that differ between an input and its reference ----------------------------------------
def _under(s: torch.Tensor, keep: torch.Tensor, fill: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax over the last dim of ``s`` where ``keep`` and ``fill`` elsewhere, as the model
    computes it: (finite scores for the rule, probabilities, log-sum-exp ``[..., 1]``). With a
    finite fill the filled scores are the model's own (a row with no key kept is uniform, as
    the model has it); with -inf the masked scores are read as 0 (their probability is 0)."""
    if math.isinf(fill):
        z = s.masked_fill(~keep, float("-inf"))
        return s.masked_fill(~keep, 0.0), torch.softmax(z, -1), torch.logsumexp(z, -1, keepdim=True)
    z = s.masked_fill(~keep, fill)
    return z, torch.softmax(z, -1), torch.logsumexp(z, -1, keepdim=True)


class MaskedScoresSoftmax(torch.autograd.Function):
    """Softmax over the last dim of ``s`` where ``keep`` (float 0/1, broadcast to ``s``) and
    ``fill`` (-inf or a large negative number) elsewhere, on the stacked halves, with the mask a
    second player where it differs between an input and its reference.

    Per row, with ``p(s | k)`` the softmax under mask ``k``, the scores get
    ``½[p(s_x|k_x) − p(s_r|k_x)] + ½[p(s_x|k_r) − p(s_r|k_r)]`` (the one-mask rule of
    :class:`SoftmaxRule` under each mask, zero at the keys it masks) and the mask the rest,
    ``½ Σ_s [p(s|k_x) − p(s|k_r)]``: a changed key gets its own probability's change and a share of
    the unchanged keys' changes in proportion to its probability mass. Rows whose mask is the same
    on both sides get the one-mask rule and nothing for the mask. Exact in both parts.
    """

    @staticmethod
    def forward(ctx, s, keep, fill: float):
        kb = (keep > 0.5).expand_as(s)
        _, p, lse = _under(s, kb, fill)
        ctx.save_for_backward(s, keep, p, lse)
        ctx.fill = fill
        return p

    @staticmethod
    def backward(ctx, g):
        s, keep, p, lse = ctx.saved_tensors
        fill = ctx.fill
        (sx, sr), (kx, kr) = _halves(s), _halves((keep > 0.5).expand_as(s))
        (pxx, prr), (lxx, lrr) = _halves(p), _halves(lse)
        gx = _halves(g)[0]
        m_s = torch.empty_like(gx)
        m_k = torch.zeros_like(gx) if ctx.needs_input_grad[1] else None
        # Blocks of pairs small enough that a block's temporaries stay in cache (every row is
        # independent); the same budget as the explicit encoder layer's.
        per_pair = max(1, gx[0].numel())
        step = max(1, CACHE_ELEMENTS // per_pair)
        for a in range(0, gx.shape[0], step):
            b = slice(a, a + step)
            ms, mk = MaskedScoresSoftmax._block(
                gx[b], sx[b], sr[b], kx[b], kr[b], pxx[b], prr[b], lxx[b], lrr[b], fill, m_k is not None
            )
            m_s[b] = ms
            if m_k is not None and mk is not None:
                m_k[b] = mk
        grad_keep = _both_sum_to(m_k, keep.shape) if m_k is not None else None
        return _both(m_s), grad_keep, None

    @staticmethod
    def _block(gx, sx, sr, kx, kr, pxx, prr, lxx, lrr, fill: float, want_keep: bool):
        """(m_s, m_keep or None) for one block of pairs."""

        def scores(t, k):  # the scores the one-mask rule reads under mask k (see _under)
            return t.masked_fill(~k, 0.0 if math.isinf(fill) else fill)

        zxx, zrr = scores(sx, kx), scores(sr, kr)
        if not bool((kx != kr).any()):
            return SoftmaxRule._one_mask(gx, zxx, zrr, pxx, prr, lxx, lrr).mul_(kx), None
        zrx, prx, lrx = _under(sr, kx, fill)  # the reference's scores under the input's mask
        zxr, pxr, lxr = _under(sx, kr, fill)  # and the other way round
        m_s = SoftmaxRule._one_mask(gx, zxx, zrx, pxx, prx, lxx, lrx).mul_(kx)
        m_s = m_s.add_(SoftmaxRule._one_mask(gx, zxr, zrr, pxr, prr, lxr, lrr).mul_(kr)).mul_(0.5)
        if not want_keep:
            return m_s, None
        ch = (kx != kr).to(gx.dtype)
        dm = kx.to(gx.dtype) - kr.to(gx.dtype)  # ±1 where a key's mask changed: its own inverse
        m_k = torch.zeros_like(gx)
        for d, q in ((pxx - pxr, pxx + pxr), (prx - prr, prx + prr)):  # s = s_x, then s = s_r
            gd = gx * d
            rest = (gd * (1 - ch)).sum(-1, keepdim=True)
            mass = (q * ch).sum(-1, keepdim=True).clamp_min_(torch.finfo(q.dtype).tiny)
            m_k.add_(((rest / mass) * q * ch + gd) * dm)
        return m_s, m_k.mul_(0.5)


class MaskedMax(torch.autograd.Function):
    """``amax`` over ``dim`` of ``s`` where ``keep`` (float 0/1, broadcast to ``s``) and ``fill``
    elsewhere, on the stacked halves. The values get the max rule (:class:`MaxOverDim`) averaged
    over the two masks; the mask gets the rest, ``½ Σ_s [max(s|k_x) − max(s|k_r)]``, shared
    equally by the keys whose mask changed. Exact."""

    @staticmethod
    def forward(ctx, s, keep, fill: float, dim: int):
        z = s.masked_fill(~(keep > 0.5).expand_as(s), fill)
        ctx.save_for_backward(s, keep)
        ctx.fill, ctx.dim = fill, dim
        return z.amax(dim)

    @staticmethod
    def _share(g, zx, zr, dim):
        """Multipliers of z for ``max(zx) − max(zr)`` (the :class:`MaxOverDim` rule)."""
        yx, ix = zx.max(dim=dim, keepdim=True)
        yr, ir = zr.max(dim=dim, keepdim=True)
        dz = zx - zr
        dz = torch.where(torch.isfinite(dz), dz, torch.zeros_like(dz))
        dy = torch.where(torch.isfinite(yx - yr), yx - yr, torch.zeros_like(yx))
        d_at_x, d_at_r = dz.gather(dim, ix), dz.gather(dim, ir)
        share_x, share_r = max_shares(d_at_x, d_at_r)
        m = torch.zeros_like(zx)
        m.scatter_add_(dim, ix, g * dy * share_x / _nonzero(d_at_x))
        m.scatter_add_(dim, ir, g * dy * share_r / _nonzero(d_at_r))
        return m, yx, yr

    @staticmethod
    def backward(ctx, g):
        s, keep = ctx.saved_tensors
        fill, dim = ctx.fill, ctx.dim
        (sx, sr), (kx, kr) = _halves(s), _halves(keep.expand_as(s))
        kx, kr = kx > 0.5, kr > 0.5
        gx = _halves(g)[0].unsqueeze(dim)
        m_s, y_xx, y_rx = MaskedMax._share(gx, sx.masked_fill(~kx, fill), sr.masked_fill(~kx, fill), dim)
        if not bool((kx != kr).any()):
            grad_keep = _both_sum_to(torch.zeros_like(m_s), keep.shape) if ctx.needs_input_grad[1] else None
            return _both(m_s * kx), grad_keep, None, None
        m_s2, y_xr, y_rr = MaskedMax._share(gx, sx.masked_fill(~kr, fill), sr.masked_fill(~kr, fill), dim)
        m_s = 0.5 * (m_s * kx + m_s2 * kr)
        rest = 0.5 * ((y_xx - y_xr) + (y_rx - y_rr))  # the mask's share, [..., 1, ...]
        rest = torch.where(torch.isfinite(rest), rest, torch.zeros_like(rest))
        ch = (kx != kr).to(g.dtype)
        count = ch.sum(dim, keepdim=True).clamp_min(1.0)
        dm = kx.to(g.dtype) - kr.to(g.dtype)
        m_k = gx * rest / count * ch * dm
        grad_keep = _both_sum_to(m_k, keep.shape) if ctx.needs_input_grad[1] else None
        return _both(m_s), grad_keep, None, None


class LogSumExp(torch.autograd.Function):
    """``logsumexp`` over the last dim: ``ΔLSE = Σ_j μ_j Δs_j`` exactly, with the trapezoid weights
    ``μ⁰ = (p_x + p_r)/2`` and the proportional correction of :class:`SoftmaxRule`."""

    @staticmethod
    def forward(ctx, s):
        lse = torch.logsumexp(s, -1, keepdim=True)
        ctx.save_for_backward(s, lse)
        return lse.squeeze(-1)

    @staticmethod
    def backward(ctx, g):
        s, lse = ctx.saved_tensors
        (sx, sr), (lx, lr) = _halves(s), _halves(lse)
        px, pr = torch.exp(sx - lx), torch.exp(sr - lr)
        ds, L = sx - sr, lx - lr
        mu0 = (px + pr) * 0.5
        t1 = mu0 * ds
        c = _ratio(L - t1.sum(-1, keepdim=True), (t1 * ds).sum(-1, keepdim=True), 0.0)
        return _both(_halves(g)[0].unsqueeze(-1) * mu0 * (1 + c * ds))
