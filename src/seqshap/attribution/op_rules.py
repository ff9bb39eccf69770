"""The rule for each torch operation that touches the signal, one small object per rule.

A rule is called as ``rule(mode, func, args, kwargs)`` by :class:`~.tracer.DeepLiftMode` for a
call that has a signal among its arguments (values derived from the ids already replaced by
their float shadows where they are used as numbers) and returns the output computed under the
rule. Rules move the batch dim of their signals to the front (the halves the autograd rules of
:mod:`.rules` read) and back, so models in ``[T, batch, ...]`` layout are paired correctly.

The tables at the end are the whole story: :data:`LINEAR_OPS` pass multipliers through
autograd unchanged (linear in the signal, or metadata), :data:`ELEMENTWISE` are one-input
nonlinearities (the rescale rule is exact for any of them), :data:`OP_RULES` the rest.
Anything else that touches the signal is refused by name, with the user's line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.grad import conv1d_input
from torch.utils._pytree import tree_flatten

from . import functional
from .rules import (
    Bilinear,
    CenteredSoftmax,
    LayerNorm,
    LogSumExp,
    MaskedMax,
    MaskedScoresSoftmax,
    MaxOverDim,
    Product,
    Rescale,
    _both,
)
from .signals import MaskedScores, _bind, _is_large_negative, _signal, op_name, refuse

# The tracing mode (tracer.DeepLiftMode), which calls these rules: named here without importing it.
DeepLiftMode = Any


class OpRule:
    """Base: ``rule(mode, func, args, kwargs)`` -> the output, computed under the rule."""

    def __call__(self, mode: DeepLiftMode, func, args: tuple, kwargs: dict):
        raise NotImplementedError


# ---- helpers: batch dim to the front and back ------------------------------------------------------
# Piecewise functions: their secant is exact however close input and reference are (see secant).
KINKED = frozenset(
    {
        *("relu", "leaky_relu", "relu6", "hardtanh", "hardsigmoid", "prelu", "rrelu", "threshold", "softshrink"),
        *("hardshrink", "abs", "absolute", "sign", "sgn", "clamp", "clip", "clamp_min", "clamp_max", "floor"),
        *("ceil", "round", "trunc", "frac", "maximum", "minimum"),
    }
)


# Power laws: they bend over a distance of |z| (see Rescale).
POWER_LAW = frozenset({"rsqrt", "sqrt", "reciprocal", "log", "log2", "log10", "pow", "__pow__", "float_power"})


def elementwise(mode: DeepLiftMode, z: torch.Tensor, fn: Callable, name: str = "") -> torch.Tensor:
    """The rescale rule for a one-input elementwise ``fn`` (called ``name``) of the signal ``z``."""
    b = mode.ledger.bdim(z)
    base = name.rstrip("_")
    if base in KINKED or fn in (torch.relu, torch.abs):
        bend = "kink"
    elif base in POWER_LAW or fn in (torch.rsqrt, torch.sqrt, torch.reciprocal, torch.log):
        bend = "power"
    else:
        bend = "smooth"
    out = Rescale.apply(mode.ledger.front(z, b), fn, bend)
    return out if not b else out.movedim(0, b)


def product(mode: DeepLiftMode, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b`` of two signals (broadcast): the Shapley split of :class:`~.rules.Product`."""
    nd = max(a.dim(), b.dim())
    L = mode.ledger
    ba = L.bdim(a)
    if ba is None:
        raise refuse("a product of two signals mixes the rows of the batch")
    ob = ba + nd - a.dim()
    ap = a.reshape((1,) * (nd - a.dim()) + tuple(a.shape))
    bp = b.reshape((1,) * (nd - b.dim()) + tuple(b.shape))
    out = Product.apply(ap.movedim(ob, 0), bp.movedim(ob, 0), mode.rule)
    return out.movedim(0, ob)


def reciprocal(mode: DeepLiftMode, z: torch.Tensor) -> torch.Tensor:
    return elementwise(mode, z, torch.reciprocal)


# ---- products, quotients, matrix products ------------------------------------------------------------
class _Product(OpRule):
    """``a * b``: linear when one factor is constant, else the product rule (Shapley split)."""

    def __call__(self, mode, func, args, kwargs):
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if not (_signal(a) and _signal(b)):
            return func(*args, **kwargs)
        return product(mode, a, b)


class _Divide(OpRule):
    """``a / b``: linear in ``a``; by a signal ``b`` it is ``a * (1/b)``: the reciprocal gets the
    rescale rule and the product the Shapley split."""

    def __call__(self, mode, func, args, kwargs):
        name = op_name(func)
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if name == "__rtruediv__":
            a, b = b, a
        if not _signal(b):
            return func(*args, **kwargs)
        if kwargs.get("rounding_mode") is not None:
            raise refuse(f"{name} with rounding_mode has no exact rule")
        inv = reciprocal(mode, b)
        return product(mode, a, inv) if _signal(a) else a * inv


class _MatrixProduct(OpRule):
    """``matmul``/``bmm``/``mm``/``@``: a linear map while one operand is constant (computed once
    per unique row, see :class:`_PairwiseLinear`); for two signals :class:`~.rules.Bilinear`
    (Shapley split inside the product)."""

    def __call__(self, mode, func, args, kwargs):
        name = op_name(func)
        a, b = args[0], args[1]
        if name == "__rmatmul__":
            a, b = b, a
        if _signal(a) and _signal(b):
            L = mode.ledger
            nd = max(a.dim(), b.dim())
            ba = L.bdim(a)
            if ba is None or ba >= a.dim() - 2 or (L.bdim(b) is not None and L.bdim(b) >= b.dim() - 2):
                raise refuse(f"{name} of two signals along the batch dim cannot be paired")
            ob = ba + nd - a.dim()
            ap = a.reshape((1,) * (nd - a.dim()) + tuple(a.shape)).movedim(ob, 0)
            bp = b.reshape((1,) * (nd - b.dim()) + tuple(b.shape)).movedim(ob, 0)
            return Bilinear.apply(ap, bp).movedim(0, ob)
        if _signal(a) and isinstance(b, torch.Tensor) and not _signal(b) and b.dim() == 2:
            return pairwise_linear(mode, lambda z: z @ b, a, lambda g: g @ b.transpose(0, 1), func, args, kwargs)
        return func(*args, **kwargs)


class _LinearInOne(OpRule):
    """``einsum``, ``outer``, ``kron``: linear while at most one operand is a signal."""

    def __call__(self, mode, func, args, kwargs):
        flat, _ = tree_flatten((args, kwargs))
        if sum(_signal(t) for t in flat) < 2:
            return func(*args, **kwargs)
        raise refuse(f"cannot explain {op_name(func)} of two signals exactly; write it as a matmul or a product")


def pairwise_linear(mode: DeepLiftMode, fn: Callable, z: torch.Tensor, vjp: Callable, func, args, kwargs):
    """A linear map ``fn`` of one signal ``z`` (``linear``, ``conv1d``, a matmul by a constant):
    computed on the n + k unique rows and expanded to the 2P pair rows, so explaining costs about
    one pass over the unique rows, not two over the pairs; its backward carries the input half's
    multipliers through the transpose ``vjp`` (the reference half's are never read)."""
    L = mode.ledger
    b = L.bdim(z)
    if b is None or (zf := L.front(z, b)).shape[0] != L.batch or L.unique_rows(zf) is None:
        return func(*args, **kwargs)
    out = _Expanded.apply(zf, fn, vjp, L)
    return out if not b else out.movedim(0, b)


class _PairwiseLinear:
    """The linear maps that :func:`pairwise_linear` runs on the unique rows."""

    @staticmethod
    def linear(mode, func, args, kwargs):
        bound = _bind(("input", "weight", "bias"), args, kwargs)
        z, w, bias = bound["input"], bound["weight"], bound.get("bias")
        if _signal(w) or _signal(bias) or not _signal(z):
            if _signal(w) and _signal(z):
                raise refuse("linear whose weight depends on the input: use matmul (it has a rule)")
            return func(*args, **kwargs)
        if z.dim() < 2 or mode.ledger.bdim(z) == z.dim() - 1:
            return func(*args, **kwargs)
        return pairwise_linear(mode, lambda u: F.linear(u, w, bias), z, lambda g: g @ w, func, args, kwargs)

    @staticmethod
    def conv1d(mode, func, args, kwargs):
        bound = _bind(("input", "weight", "bias", "stride", "padding", "dilation", "groups"), args, kwargs)
        z, w = bound["input"], bound["weight"]
        if _signal(w) or not _signal(z) or z.dim() != 3 or mode.ledger.bdim(z) != 0:
            return func(*args, **kwargs)
        rest = {k: v for k, v in bound.items() if k not in ("input", "weight", "bias")}
        if isinstance(rest.get("padding"), str):
            return func(*args, **kwargs)  # 'same'/'valid': leave it to autograd over the pairs

        def vjp(g, _shape=z.shape):
            return conv1d_input((g.shape[0], *_shape[1:]), w, g, **rest)

        return pairwise_linear(mode, lambda u: F.conv1d(u, w, bound.get("bias"), **rest), z, vjp, func, args, kwargs)


class _Expanded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, fn, vjp, ledger):
        with torch._C.DisableTorchFunction():
            u = ledger.unique_rows(z)
            out = ledger.expand_rows(fn(u))
            ctx.vjp, ctx.P = vjp, z.shape[0] // 2
            return out

    @staticmethod
    def backward(ctx, g):
        gx = ctx.vjp(g[: ctx.P])
        return _both(gx), None, None, None


class _Linear(OpRule):
    """``linear`` of one signal: computed on the unique rows (:func:`pairwise_linear`)."""

    def __call__(self, mode, func, args, kwargs):
        return _PairwiseLinear.linear(mode, func, args, kwargs)


class _AddMM(OpRule):
    """``addmm(bias, x, W) = bias + x @ W`` (GPT-2's Conv1D) with a constant ``W``: a linear map on the
    unique rows; with ``x`` and ``W`` both signals, the bilinear rule."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "mat1", "mat2", "beta", "alpha"), args, kwargs)
        bias, x, w = bound["input"], bound["mat1"], bound["mat2"]
        beta, alpha = bound.get("beta", 1), bound.get("alpha", 1)
        if _signal(w) or _signal(bias) or not _signal(x) or beta != 1 or alpha != 1:
            if _signal(x) and _signal(w):
                return mode.run(lambda: bias + x @ w)
            return func(*args, **kwargs)
        return pairwise_linear(mode, lambda u: torch.addmm(bias, u, w), x, lambda g: g @ w.t(), func, args, kwargs)


class _Conv1d(OpRule):
    """``conv1d`` of one signal: computed on the unique rows (:func:`pairwise_linear`)."""

    def __call__(self, mode, func, args, kwargs):
        return _PairwiseLinear.conv1d(mode, func, args, kwargs)


# ---- masks, selections ------------------------------------------------------------------------
class _Select(OpRule):
    """``masked_fill(s, mask, v)`` / ``where(cond, a, b)``: linear for a constant mask; a mask
    computed from the ids that differs between an input and its reference is a player of its own.

    A constant mask (or one that is the same for an input and its reference) is linear. A mask
    computed from the ids that differs between them is a player of its own: with a finite fill,
    ``where(c, a, b) = c·a + (1 − c)·b`` with the products split by Shapley; with -inf or a
    large negative fill the result is kept as masked scores (:class:`MaskedScores`) for the
    softmax or max that reads them, which credit the mask exactly."""

    def __call__(self, mode, func, args, kwargs):
        name = op_name(func)
        if name.startswith("masked_fill"):
            bound = _bind(("input", "mask", "value"), args, kwargs)
            s, mask, value = bound["input"], bound["mask"], bound["value"]
            return self._where(mode, func, args, kwargs, mask, fill=value, other=s, fill_where_true=True)
        cond, a, b = [*args, kwargs.get("input"), kwargs.get("other")][:3]
        if a is None or b is None:
            raise refuse("where(cond) with one argument (nonzero) has no rule on a signal")
        if _is_large_negative(b) and not _signal(b):
            return self._where(mode, func, args, kwargs, cond, fill=b, other=a, fill_where_true=False)
        if _is_large_negative(a) and not _signal(a):
            return self._where(mode, func, args, kwargs, cond, fill=a, other=b, fill_where_true=True)
        keep = mode.mask_signal(cond, name)
        if keep is None:
            return func(*args, **kwargs)
        c = keep
        out_a = product(mode, c, a) if _signal(a) else c * a
        one_minus = 1 - c
        out_b = product(mode, one_minus, b) if _signal(b) else one_minus * b
        return out_a + out_b

    def _where(self, mode, func, args, kwargs, mask, fill, other, fill_where_true: bool):
        """``other`` where the mask says keep, ``fill`` elsewhere."""
        name = op_name(func)
        if _signal(fill):
            raise refuse(f"{name} whose fill value depends on the input has no rule")
        m = mode.mask_signal(mask, name)
        if _is_large_negative(fill):
            out = func(*args, **kwargs)
            if m is None:
                mb = (
                    mask.to(other.dtype)
                    if isinstance(mask, torch.Tensor)
                    else torch.tensor(float(mask), dtype=other.dtype)
                )
                m = mb
            keep = (1 - m) if fill_where_true else m
            mode.annotate(out, MaskedScores(other, keep), float(fill))
            return out
        if m is None:
            return func(*args, **kwargs)
        keep = (1 - m) if fill_where_true else m
        v = fill if isinstance(fill, torch.Tensor) else torch.tensor(float(fill), dtype=other.dtype)
        if not _signal(other):
            return keep * other + (1 - keep) * v
        return product(mode, keep, other) + (1 - keep) * v


class _Index(OpRule):
    """``h[rows, idx]`` / ``gather(h, dim, idx)`` where ``idx`` comes from the ids (the last real
    token, say) and differs between an input and its reference: a selection is a sum of the
    values times a one-hot indicator of the chosen position; the indicator is an input feature
    (credited to the positions the choice moved between), the product split by Shapley."""

    def __call__(self, mode, func, args, kwargs):
        name = op_name(func)
        L = mode.ledger
        if name == "__getitem__":
            h, index = args[0], args[1]
            items = index if isinstance(index, tuple) else (index,)
            derived = [i for i in items if isinstance(i, torch.Tensor) and L.derived(i)]
            if not derived or all(L.halves_equal(i, L.bdim(i)) for i in derived):
                return func(*args, **kwargs)
            if not (
                len(items) == 2 and _is_row_range(items[0], L.batch) and L.derived(items[1]) and items[1].dim() == 1
            ):
                raise refuse(
                    "indexing a signal with positions computed from the ids that differ between an input and its "
                    "reference is supported as h[torch.arange(batch), index] (one position per row)"
                )
            if L.bdim(h) != 0:
                raise refuse("h[torch.arange(batch), index] needs the batch as h's first dim")
            return _select_along(mode, h, items[1], dim=1)
        bound = _bind(("input", "dim", "index"), args, kwargs)
        h, dim, idx = bound["input"], int(bound["dim"]), bound["index"]
        if not L.derived(idx) or L.halves_equal(idx, L.bdim(idx)):
            return func(*args, **kwargs)
        dim = dim % h.dim()
        if L.bdim(h) != 0 or dim == 0 or idx.shape[dim] != 1:
            raise refuse("gather with positions computed from the ids is supported along one position per row")
        flat = idx.movedim(dim, -1).reshape(idx.shape[0], -1)
        if not bool((flat == flat[:, :1]).all()):
            raise refuse("gather with positions computed from the ids must pick one position per row")
        return _select_along(mode, h, flat[:, 0], dim=dim).unsqueeze(dim).expand(idx.shape)


def _is_row_range(t, batch: int) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and not t.is_floating_point()
        and t.dim() == 1
        and t.shape[0] == batch
        and bool((t == torch.arange(batch, device=t.device)).all())
    )


def _select_along(mode, h: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """``h`` at position ``idx[b]`` of ``dim`` for each row b, as ``Σ_t h_t · [t = idx]``."""
    T = h.shape[dim]
    with torch._C.DisableTorchFunction():
        onehot = (torch.arange(T, device=h.device)[None, :] == idx.reshape(-1, 1)).to(h.dtype)
    sel = mode.indicator(onehot)  # [B, T]: an input feature where the choice differs
    shape = [1] * h.dim()
    shape[0], shape[dim] = h.shape[0], T
    w = sel.reshape(shape)
    return product(mode, h, w).sum(dim) if _signal(w) else (h * w).sum(dim)


# ---- nonlinearities ---------------------------------------------------------------------------
class _Elementwise(OpRule):
    """One-input elementwise nonlinearity: the rescale rule (secant slope between input and
    reference), exact for any such function."""

    def __init__(self, fn=None):
        self.fn = fn  # the plain torch function; None: call the traced one with its extra arguments

    def __call__(self, mode, func, args, kwargs):
        flat, _ = tree_flatten((args[1:], kwargs))
        if any(_signal(t) for t in flat):
            raise refuse(f"{op_name(func)} with more than one argument depending on the input has no rule")
        z = args[0]
        fn = self.fn or (lambda u, _f=func, _a=args[1:], _k=kwargs: _f(u, *_a, **_k))
        out = elementwise(mode, z, fn, op_name(func))
        if self.fn is torch.sigmoid:
            mode.log.record("sigmoid", z, out)
        return out


class _Softmax(OpRule):
    """Softmax over a dim: :class:`~.rules.CenteredSoftmax` (class outputs), or the masked rule
    when the scores carry a mask (:class:`~.rules.MaskedScoresSoftmax`)."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "dim", "_stacklevel", "dtype"), args, kwargs)
        z, dim = bound["input"], bound.get("dim")
        if dim is None:
            raise refuse("softmax without an explicit dim cannot be explained")
        L = mode.ledger
        b = L.bdim(z)
        dim = int(dim) % z.dim()
        if b == dim:
            raise refuse("softmax over the batch dim mixes inputs and references")
        zf = L.front(z, b)
        df = _moved(dim, b)
        masked = mode.masked(z)
        if masked is not None:
            scores, keep, fill = masked
            sf = L.front(scores, b).movedim(df, -1)
            kf = keep.reshape((1,) * (z.dim() - keep.dim()) + tuple(keep.shape))
            kf = (kf.movedim(b, 0) if b else kf).movedim(df, -1)
            out = MaskedScoresSoftmax.apply(sf, kf, fill).movedim(-1, df)
        elif _is_key_softmax(zf, df):
            out = MaskedScoresSoftmax.apply(zf.movedim(df, -1), torch.ones((), dtype=zf.dtype), 0.0).movedim(-1, df)
        else:
            out = CenteredSoftmax.apply(zf, df)
        out = out if not b else out.movedim(0, b)
        mode.log.record("softmax", z, out)
        return out


def _moved(dim: int, b: int | None) -> int:
    """Index of ``dim`` after the batch dim ``b`` is moved to the front."""
    if not b:
        return dim
    return dim + 1 if dim < b else dim


def _is_key_softmax(z: torch.Tensor, dim: int) -> bool:
    """Softmax over more than a few entries that is not the model's last step (attention
    weights, pooling weights): the one-mask trapezoid rule, whose multipliers look like the
    gradient; a softmax over classes keeps the centred rule (equal to the sigmoid rule for two)."""
    return z.dim() > 2


class _LogSoftmax(OpRule):
    """``log_softmax = z − logsumexp(z)``: linear plus :class:`~.rules.LogSumExp`."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "dim"), args, kwargs)
        z, dim = bound["input"], bound.get("dim")
        if dim is None:
            raise refuse("log_softmax without an explicit dim cannot be explained")
        return z - _logsumexp(mode, z, int(dim), keepdim=True)


class _LogSumExpOp(OpRule):
    """``logsumexp`` over a dim: :class:`~.rules.LogSumExp` (trapezoid weights with the exact correction)."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "dim", "keepdim"), args, kwargs)
        dim = bound["dim"]
        if isinstance(dim, (tuple, list)):
            if len(dim) != 1:
                raise refuse("logsumexp over several dims at once is not supported")
            dim = dim[0]
        z = bound["input"]
        masked = mode.masked(z)
        if masked is not None:
            raise refuse("logsumexp of scores with a large negative fill is not supported; use softmax")
        return _logsumexp(mode, z, int(dim), bool(bound.get("keepdim", False)))


def _logsumexp(mode, z: torch.Tensor, dim: int, keepdim: bool) -> torch.Tensor:
    L = mode.ledger
    b = L.bdim(z)
    dim = dim % z.dim()
    if b == dim:
        raise refuse("logsumexp over the batch dim mixes inputs and references")
    df = _moved(dim, b)
    out = LogSumExp.apply(L.front(z, b).movedim(df, -1))  # [batch, ...] without df
    out = out.unsqueeze(-1).movedim(-1, df)
    out = out if not b else out.movedim(0, b)
    return out if keepdim else out.squeeze(dim)


class _MaxOverDim(OpRule):
    """``max(z, dim)`` / ``amax`` / ``min`` / ``amin``: :class:`~.rules.MaxOverDim` (on ``−z`` for
    the min); masked scores get :class:`~.rules.MaskedMax`. Two tensors: ``max(a, b) = b + relu(a − b)``."""

    def __call__(self, mode, func, args, kwargs):
        name = op_name(func)
        lowest = name in ("min", "amin", "minimum", "fmin")
        other = args[1] if len(args) > 1 else kwargs.get("other")
        if name in ("maximum", "minimum", "fmax", "fmin") or isinstance(other, torch.Tensor):
            a, b = args[0], other
            d = elementwise(mode, a - b, torch.relu) if _signal(a - b) else torch.relu(a - b)
            return a - d if lowest else b + d
        if len(args) + len(kwargs) < 2:
            raise refuse(f"{name} over a whole tensor is not supported; give a dim")
        bound = _bind(("input", "dim", "keepdim"), args, kwargs)
        z, dim, keep = bound["input"], bound.get("dim"), bool(bound.get("keepdim", False))
        if isinstance(dim, (tuple, list)):
            if len(dim) != 1:
                raise refuse(f"{name} over several dims at once is not supported")
            dim = dim[0]
        L = mode.ledger
        b = L.bdim(z)
        dim = int(dim) % z.dim()  # type: ignore[arg-type]  # None was refused above
        if b is None or b == dim:
            raise refuse(f"{name} over the batch dim mixes inputs and references")
        df = _moved(dim, b)
        masked = mode.masked(z)
        if masked is not None:
            if lowest:
                raise refuse(f"{name} of scores filled with a large negative number is not supported")
            scores, keepm, fill = masked
            kf = keepm.reshape((1,) * (z.dim() - keepm.dim()) + tuple(keepm.shape))
            kf = kf.movedim(b, 0) if b else kf
            y = MaskedMax.apply(L.front(scores, b), kf, fill, df)
        else:
            zf = L.front(z, b)
            y = -MaxOverDim.apply(-zf, df) if lowest else MaxOverDim.apply(zf, df)
        if b:
            y = _back(y, b, df)
        out = y.unsqueeze(dim) if keep else y
        if name in ("max", "min"):
            with torch._C.DisableTorchFunction():
                zz = z.detach()
                idx = (zz.argmin if lowest else zz.argmax)(dim=dim, keepdim=keep)
            mode.derive(idx, z)
            cls = torch.return_types.min if lowest else torch.return_types.max
            return cls((out, idx))
        return out


def _back(y: torch.Tensor, b: int, reduced: int) -> torch.Tensor:
    """A front-batched result with dim ``reduced`` removed -> batch back at its place."""
    dest = b if reduced > b else b - 1
    return y.movedim(0, dest)


class _GlobalMaxPool(OpRule):
    """``adaptive_max_pool1d(z, 1)``: max over the last dim."""

    def __call__(self, mode, func, args, kwargs):
        size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
        if size not in (1, (1,), [1]):
            raise refuse(f"adaptive_max_pool1d with output_size={size} is not supported (output_size=1 is)")
        z = args[0]
        if mode.ledger.bdim(z) != 0:
            raise refuse("adaptive_max_pool1d needs the batch first")
        y = MaxOverDim.apply(z, -1).unsqueeze(-1)
        if "indices" in op_name(func):
            with torch._C.DisableTorchFunction():
                idx = z.detach().argmax(-1, keepdim=True)
            mode.derive(idx, z)
            return (y, idx)
        return y


class _MaxPool1d(OpRule):
    """``max_pool1d`` without padding/dilation: max over each window (a strided view)."""

    PARAMS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(self.PARAMS, args, kwargs)
        k = bound["kernel_size"]
        k = k[0] if isinstance(k, (tuple, list)) else k
        s = bound.get("stride") or k
        s = s[0] if isinstance(s, (tuple, list)) else s
        if (
            bound.get("padding", 0) not in (0, (0,))
            or bound.get("dilation", 1) not in (1, (1,))
            or bound.get("ceil_mode")
        ):
            raise refuse("max_pool1d with padding, dilation or ceil_mode is not supported")
        if bound.get("return_indices") or "indices" in op_name(func):
            raise refuse("max_pool1d(return_indices=True) is not supported")
        z = bound["input"]
        if mode.ledger.bdim(z) != 0:
            raise refuse("max_pool1d needs the batch first")
        return MaxOverDim.apply(z.unfold(-1, k, s), -1)


# ---- normalizations --------------------------------------------------------------------------------
class _LayerNorm(OpRule):
    """``layer_norm`` over the trailing dims: :class:`~.rules.LayerNorm` (an exact composition)."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "normalized_shape", "weight", "bias", "eps"), args, kwargs)
        z, shape = bound["input"], tuple(bound["normalized_shape"])
        w, bias = bound.get("weight"), bound.get("bias")
        if _signal(w) or _signal(bias):
            raise refuse("layer_norm whose weight or bias depends on the input has no rule")
        eps = float(bound.get("eps", 1e-5))
        L = mode.ledger
        b = L.bdim(z)
        if b is None or b >= z.dim() - len(shape):
            raise refuse("layer_norm over the batch dim mixes inputs and references")
        zf = L.front(z, b)
        if len(shape) == 1:
            out = LayerNorm.apply(zf, w, bias, eps)
        else:
            lead = zf.shape[: zf.dim() - len(shape)]
            flat = LayerNorm.apply(zf.reshape(*lead, -1), None, None, eps).reshape(zf.shape)
            out = flat * w if w is not None else flat
            out = out + bias if bias is not None else out
        return out if not b else out.movedim(0, b)


class _RMSNorm(OpRule):
    """``rms_norm``: ``z · rsqrt(mean(z²) + ε) · w``: square and rsqrt by the rescale rule, the
    product of the two signals by the Shapley split."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "normalized_shape", "weight", "eps"), args, kwargs)
        z, shape, w = bound["input"], tuple(bound["normalized_shape"]), bound.get("weight")
        eps = bound.get("eps")
        eps = torch.finfo(z.dtype).eps if eps is None else float(eps)
        dims = tuple(range(-len(shape), 0))
        return mode.run(lambda: _rms(z, dims, eps, w))


def _rms(z, dims, eps, w):
    r = torch.rsqrt(torch.square(z).mean(dims, keepdim=True) + eps)
    out = z * r
    return out * w if w is not None else out


class _GroupNorm(OpRule):
    """``group_norm``: LayerNorm's composition over each group's channels and positions, then
    the per-channel affine map."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "num_groups", "weight", "bias", "eps"), args, kwargs)
        z, G = bound["input"], int(bound["num_groups"])
        w, bias, eps = bound.get("weight"), bound.get("bias"), float(bound.get("eps", 1e-5))
        if mode.ledger.bdim(z) != 0:
            raise refuse("group_norm needs the batch first ([batch, channels, ...])")
        N, C = z.shape[:2]
        y = LayerNorm.apply(z.reshape(N, G, -1), None, None, eps).reshape(z.shape)
        shape = (1, C) + (1,) * (z.dim() - 2)
        y = y * w.reshape(shape) if w is not None else y
        return y + bias.reshape(shape) if bias is not None else y


class _InstanceNorm(OpRule):
    """``instance_norm``: each channel normalized over its positions, LayerNorm's composition, then
    the per-channel affine map (with running statistics: an affine map, linear)."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(
            ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum", "eps"),
            args,
            kwargs,
        )
        z = bound["input"]
        if mode.ledger.bdim(z) != 0:
            raise refuse("instance_norm needs the batch first ([batch, channels, positions])")
        if not bound.get("use_input_stats", True):
            return func(*args, **kwargs)
        C = z.shape[1]
        y = LayerNorm.apply(z.reshape(z.shape[0], C, -1), None, None, float(bound.get("eps", 1e-5))).reshape(z.shape)
        shape = (1, C) + (1,) * (z.dim() - 2)
        w, b = bound.get("weight"), bound.get("bias")
        y = y * w.reshape(shape) if w is not None else y
        return y + b.reshape(shape) if b is not None else y


class _BatchNorm(OpRule):
    """``batch_norm`` with running statistics (inference): an affine map per channel, linear."""

    def __call__(self, mode, func, args, kwargs):
        bound = _bind(("input", "running_mean", "running_var", "weight", "bias", "training"), args, kwargs)
        if bound.get("training") or bound.get("running_mean") is None:
            raise refuse(
                "batch_norm over the batch's own statistics (training mode, or track_running_stats=False) mixes "
                "inputs and references; explain the model in eval mode with running statistics"
            )
        if mode.ledger.bdim(bound["input"]) != 0:
            raise refuse("batch_norm needs the batch first")
        return func(*args, **kwargs)


class _Norm(OpRule):
    """``norm``/``linalg.vector_norm`` with p = 2 over given dims: ``sqrt(sum z²)`` (square and
    sqrt by the rescale rule); p = 1: ``sum |z|``."""

    def __call__(self, mode, func, args, kwargs):
        name = op_name(func)
        if name in ("norm",):
            bound = _bind(("input", "p", "dim", "keepdim"), args, kwargs)
        else:
            bound = _bind(("x", "ord", "dim", "keepdim"), args, kwargs)
            bound = {
                "input": bound["x"],
                "p": bound.get("ord", 2),
                "dim": bound.get("dim"),
                "keepdim": bound.get("keepdim", False),
            }
        z, p, dim, keep = bound["input"], bound.get("p", 2), bound.get("dim"), bool(bound.get("keepdim", False))
        p = 2 if p in (None, "fro") else p
        if dim is None:
            raise refuse(f"{name} over the whole tensor mixes inputs and references; give a dim")
        if p == 2:
            return mode.run(lambda: torch.sqrt(torch.square(z).sum(dim, keepdim=keep)))
        if p == 1:
            return mode.run(lambda: torch.abs(z).sum(dim, keepdim=keep))
        raise refuse(f"{name} with p={p} is not supported (p = 1 and 2 are)")


# ---- fused functional layers, written out ---------------------------------------------------------------
class _Explicit(OpRule):
    """A fused functional call replaced by its explicit steps, each ruled (see :mod:`.functional`)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, mode, func, args, kwargs):
        return getattr(functional, self.name)(mode, func, args, kwargs)


# ---- the tables ------------------------------------------------------------------------------------
# Linear in the signal (or metadata): autograd's own backward is the DeepLIFT backward for them.
LINEAR_OPS = frozenset(
    {
        *("__get__", "shape", "dtype", "device", "requires_grad", "is_cuda", "ndim", "data_ptr", "layout"),
        *("T", "mT", "H", "mH", "real", "__getitem__", "__setitem__", "__len__", "__iter__", "__format__"),
        *("__repr__", "size", "dim", "numel", "stride", "is_contiguous", "is_floating_point", "contiguous"),
        *("clone", "to", "type", "type_as", "float", "double", "half", "bfloat16", "view", "view_as", "reshape"),
        *("reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze", "squeeze_", "unsqueeze_", "permute"),
        *("transpose", "transpose_", "t", "swapaxes", "swapdims", "flip", "fliplr", "expand", "expand_as"),
        *("repeat", "repeat_interleave", "tile", "narrow", "select", "index_select", "gather", "take_along_dim"),
        *("split", "split_with_sizes", "chunk", "tensor_split", "unbind", "cat", "concat", "concatenate"),
        *("stack", "hstack", "vstack", "dstack", "movedim", "moveaxis", "roll", "pad", "add", "__add__"),
        *("__radd__", "__iadd__", "add_", "sub", "__sub__", "__rsub__", "__isub__", "sub_", "rsub", "neg"),
        *("__neg__", "negative", "__pos__", "positive", "sum", "mean", "nansum", "cumsum", "embedding"),
        *("avg_pool1d", "adaptive_avg_pool1d", "dropout", "alpha_dropout", "feature_alpha_dropout"),
        *("dropout1d", "dropout2d", "identity", "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"),
        *("zeros_like", "ones_like", "empty_like", "full_like", "requires_grad_", "cpu", "__contains__"),
        *("__hash__", "__eq__", "__ne__", "__bool__", "__float__", "__int__", "__index__", "tolist", "item"),
        *("numpy", "get_device", "_has_compatible_shallow_copy_type", "diagonal", "tril", "triu", "trace"),
        *("diag_embed", "unfold", "as_strided", "copy_", "detach_", "contiguous", "broadcast_to"),
        *("_nested_tensor_from_mask_left_aligned", "is_nested", "is_sparse", "is_complex", "element_size"),
    }
)

# One-input elementwise nonlinearities: the rescale rule is exact for any of them.
ELEMENTWISE: dict[str, Callable | None] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "exp": torch.exp,
    "rsqrt": torch.rsqrt,
    "sqrt": torch.sqrt,
    "reciprocal": torch.reciprocal,
    "square": torch.square,
    **dict.fromkeys(
        (
            "leaky_relu",
            "elu",
            "selu",
            "celu",
            "gelu",
            "silu",
            "mish",
            "softplus",
            "softsign",
            "hardsigmoid",
            "hardtanh",
            "hardswish",
            "relu6",
            "logsigmoid",
            "log_sigmoid",
            "tanhshrink",
            "softshrink",
            "hardshrink",
            "threshold",
            "prelu",
            "rrelu",
            "log",
            "log1p",
            "log2",
            "log10",
            "expm1",
            "exp2",
            "sin",
            "cos",
            "tan",
            "atan",
            "asinh",
            "sinh",
            "cosh",
            "erf",
            "erfc",
            "abs",
            "absolute",
            "sign",
            "sgn",
            "pow",
            "__pow__",
            "clamp",
            "clip",
            "clamp_min",
            "clamp_max",
            "floor",
            "ceil",
            "round",
            "trunc",
            "frac",
            "nan_to_num",
            "logit",
            "xlogy",
            "special_expit",
            "expit",
            "sinc",
            "arctan",
        ),
        None,
    ),
}

OP_RULES: dict[str, OpRule] = {
    **dict.fromkeys(("mul", "__mul__", "__rmul__", "__imul__", "mul_", "multiply"), _Product()),
    **dict.fromkeys(("div", "__truediv__", "__rtruediv__", "__itruediv__", "true_divide", "divide", "div_"), _Divide()),
    **dict.fromkeys(("matmul", "__matmul__", "__rmatmul__", "mm", "bmm"), _MatrixProduct()),
    **dict.fromkeys(("einsum", "outer", "kron", "tensordot"), _LinearInOne()),
    **dict.fromkeys(("linear",), _Linear()),
    **dict.fromkeys(("conv1d",), _Conv1d()),
    **dict.fromkeys(("addmm",), _AddMM()),
    **dict.fromkeys(("masked_fill", "masked_fill_", "where"), _Select()),
    **dict.fromkeys(("__getitem__", "gather", "take_along_dim"), _Index()),
    **dict.fromkeys(("softmax", "_softmax"), _Softmax()),
    **dict.fromkeys(("log_softmax", "_log_softmax"), _LogSoftmax()),
    **dict.fromkeys(("logsumexp",), _LogSumExpOp()),
    **dict.fromkeys(("amax", "max", "amin", "min", "maximum", "minimum", "fmax", "fmin"), _MaxOverDim()),
    **dict.fromkeys(
        ("adaptive_max_pool1d", "_adaptive_max_pool1d", "adaptive_max_pool1d_with_indices"), _GlobalMaxPool()
    ),
    **dict.fromkeys(("max_pool1d", "_max_pool1d", "max_pool1d_with_indices"), _MaxPool1d()),
    **dict.fromkeys(("layer_norm",), _LayerNorm()),
    **dict.fromkeys(("rms_norm",), _RMSNorm()),
    **dict.fromkeys(("group_norm",), _GroupNorm()),
    **dict.fromkeys(("batch_norm",), _BatchNorm()),
    **dict.fromkeys(("instance_norm",), _InstanceNorm()),
    **dict.fromkeys(("norm", "linalg_vector_norm", "vector_norm"), _Norm()),
    "glu": _Explicit("glu"),
    "normalize": _Explicit("normalize"),
    "scaled_dot_product_attention": _Explicit("scaled_dot_product_attention"),
    "multi_head_attention_forward": _Explicit("multi_head_attention_forward"),
    "embedding_bag": _Explicit("embedding_bag"),
    **dict.fromkeys(("lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"), _Explicit("recurrent_cell")),
    **{name: _Elementwise(fn) for name, fn in ELEMENTWISE.items()},
    **{f"{name}_": _Elementwise(fn) for name, fn in ELEMENTWISE.items() if not name.startswith("_")},
}

# Operations that are linear only in some arguments: they also need their other signal args constant.
INDEX_OPS = frozenset({"__getitem__", "gather", "take_along_dim"})


def supported_ops() -> list[str]:
    """Names of the nonlinear operations with a rule (for error messages and docs)."""
    return sorted({n.strip("_") for n, r in OP_RULES.items() if not isinstance(r, _LinearInOne)})
