"""Runs a user's model so that every operation on the input signal uses a DeepLIFT rule.

Two checks keep numbers honest:
1. before anything runs, every module is looked up in the composite's module rules
   (:mod:`.canonizers`); a ``torch.nn`` layer the engine cannot explain exactly raises
   :class:`UnsupportedLayerError`;
2. during the forward pass a ``TorchFunctionMode`` sees every torch call. A call that touches
   the signal must be linear (multipliers pass through autograd unchanged) or have a rule in
   :data:`~.op_rules.OP_RULES`; a value computed from the token ids (a padding mask, a length,
   the index of the last real token) is tracked too (:mod:`.signals`), so its difference
   between an input and its reference is credited to positions. Anything else raises, naming
   the operation and the user's line.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from .canonizers import DEFAULT, Composite, canonized
from .op_rules import ELEMENTWISE, LINEAR_OPS, OP_RULES, supported_ops
from .pairs import Pairing
from .rules import ProductRule
from .signals import Ledger, MaskedScores, Refusal, _is_large_negative, infer_bdim, op_name, refuse

# Results with no gradient however their inputs change: a value derived from the input.
COMPARISONS = frozenset(
    {
        *("eq", "ne", "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"),
        *("greater", "less", "greater_equal", "less_equal", "not_equal", "equal", "isin", "eq_", "ne_"),
        *("isnan", "isinf", "isfinite", "isneginf", "isposinf", "signbit"),
    }
)
NON_DIFFERENTIABLE = frozenset(
    {
        *COMPARISONS,
        *("argmax", "argmin", "argsort", "nonzero", "count_nonzero", "searchsorted", "bucketize", "bincount"),
        *("detach", "all", "any", "floor_divide", "__floordiv__", "remainder", "__mod__", "fmod"),
    }
)
# Steps replayed on a derived value's float shadow (linear in it, or logic on 0/1 indicators).
_SAME = frozenset(
    {
        *("view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "transpose", "permute", "t", "T"),
        *("expand", "expand_as", "repeat", "repeat_interleave", "flip", "roll", "narrow", "select", "__getitem__"),
        *("contiguous", "clone", "cat", "concat", "stack", "movedim", "chunk", "split", "unbind", "view_as"),
        *("sum", "cumsum", "mean", "add", "__add__", "__radd__", "sub", "__sub__", "__rsub__", "rsub", "neg"),
        *("__neg__", "mul", "__mul__", "__rmul__", "div", "__truediv__", "pad", "tril", "triu", "reshape_as"),
    }
)
# Reductions replayed on the shadow through their own exact rules (a max over indicators is "any").
_REDUCE_REPLAY = frozenset({"amax", "amin", "max", "min", "maximum", "minimum"})
_CASTS = frozenset(
    {"to", "float", "double", "half", "long", "int", "bool", "byte", "short", "type", "type_as", "detach", "bfloat16"}
)
_NOT = frozenset({"__invert__", "logical_not", "bitwise_not"})
_AND = frozenset({"__and__", "__rand__", "logical_and", "bitwise_and"})
_OR = frozenset({"__or__", "__ror__", "logical_or", "bitwise_or"})
# Operations that read a derived argument as a mask or an index themselves (no shadow swapped in).
_READS_MASKS = frozenset(
    {"masked_fill", "masked_fill_", "where", "__getitem__", "gather", "take_along_dim", "index_select"}
)
_CONSTANT_MAKERS = frozenset(
    {"zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones", "new_full"}
)
_MASK_KEEPING = frozenset(
    {"view", "reshape", "transpose", "permute", "unsqueeze", "squeeze", "contiguous", "to", "float", "type_as", "clone"}
)
_MASK_CONSUMERS = frozenset({"softmax", "_softmax", "amax", "max"})
_ADDS = frozenset({"add", "__add__", "__radd__", "__iadd__", "add_"})
# Fused attention calls that take an additive mask as an argument and read it themselves.
_READS_ADDITIVE_MASKS = frozenset({"multi_head_attention_forward", "scaled_dot_product_attention"})


class SquashLog:
    """The sigmoid/softmax calls of one forward pass, so the logit can be read off the output."""

    def __init__(self):
        self._seen: dict[int, tuple[str, torch.Tensor, torch.Tensor]] = {}

    def record(self, kind: str, inp: torch.Tensor, out: torch.Tensor) -> None:
        self._seen[id(out)] = (kind, inp, out)  # keeps `out` alive, so its id cannot be reused

    def logit_of(self, out: torch.Tensor) -> tuple[str, torch.Tensor] | None:
        """If ``out`` came straight from a sigmoid/softmax, (kind, its input)."""
        hit = self._seen.get(id(out))
        return (hit[0], hit[1]) if hit is not None and hit[2] is out else None


class SquashRecorder(TorchFunctionMode):
    """Logs sigmoid/softmax calls of a plain (unruled) forward pass."""

    def __init__(self):
        super().__init__()
        self.log = SquashLog()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = op_name(func)
        if name in ("sigmoid", "sigmoid_"):
            self.log.record("sigmoid", args[0], out)
        elif name in ("softmax", "_softmax"):
            self.log.record("softmax", args[0], out)
        return out


def _tensors(x) -> list[torch.Tensor]:
    return [t for t in tree_flatten(x)[0] if isinstance(t, torch.Tensor)]


class DeepLiftMode(TorchFunctionMode):
    """Routes every call that touches the signal (or a value derived from the ids) to its rule."""

    def __init__(self, rule: ProductRule, ledger: Ledger):
        super().__init__()
        self.rule, self.ledger = rule, ledger
        self.log = SquashLog()

    # -- helpers for the rules ---------------------------------------------------------------
    def run(self, fn, *args, **kwargs):
        """``fn`` under this mode (a rule's explicit steps, each ruled in turn)."""
        with self, torch.enable_grad():
            return fn(*args, **kwargs)

    def record_signal(self, t: torch.Tensor, bdim: int | None) -> None:
        self.ledger.record(t, bdim)

    def derive(self, t: torch.Tensor, src: torch.Tensor) -> None:
        """Record ``t`` as computed from ``src`` without a gradient (indices of a max, say)."""
        self.ledger.record(t, self.ledger.bdim(src) if t.dim() == src.dim() else None, derived=True)

    def annotate(self, out: torch.Tensor, masked: MaskedScores, fill: float) -> None:
        hit = self.ledger.info(out)
        bdim = hit.bdim if hit is not None else self.ledger.bdim(masked.scores)
        self.ledger.record(out, bdim, masked=MaskedScores(masked.scores, masked.keep, fill))

    def masked(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        hit = self.ledger.info(t)
        if hit is None or hit.masked is None:
            return None
        return hit.masked.scores, hit.masked.keep, hit.masked.fill

    def _masked_of(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        hit = self.masked(t)
        assert hit is not None  # called only for tensors recorded with masked scores
        return hit

    def indicator(self, onehot: torch.Tensor) -> torch.Tensor:
        """A ``[batch, T]`` 0/1 indicator computed from derived values: an input feature where it
        differs between an input and its reference, else a constant."""
        L = self.ledger
        if L.halves_equal(onehot, 0):
            return onehot
        if L.position_dim(onehot, 0) is None:
            raise refuse("a selection computed from the ids does not have one value per token position")
        return L.add_leaf(onehot, 0, L.position_dim(onehot, 0) or 1, "selection")

    def mask_signal(self, mask, what: str) -> torch.Tensor | None:
        """The float 0/1 player for a boolean mask computed from the ids, where it differs between
        an input and its reference (its shadow, or a new input feature over its positions);
        ``None`` for a constant mask."""
        L = self.ledger
        if not isinstance(mask, torch.Tensor) or not L.tracked(mask):
            return None
        if mask.requires_grad:
            raise refuse(f"{what}: a mask that is itself a signal has no rule")
        b = L.bdim(mask)
        if L.halves_equal(mask, b):
            return None
        known = L.shadow(mask)
        if known is not None:
            return known
        with torch._C.DisableTorchFunction():
            value = mask.to(L.dtype)
        return self._value_leaf(value, b, what)

    def _value_leaf(self, value: torch.Tensor, b: int | None, what: str) -> torch.Tensor:
        L = self.ledger
        pos = L.position_dim(value, b)
        if pos is None and b is not None and value.shape[-1] == L.positions and value.dim() - 1 != b:
            pos = value.dim() - 1  # a mask over (..., keys): the keys' positions get its share
        if pos is None or b is None:
            raise refuse(
                f"{what}: a mask computed from the ids that differs between an input and its reference, and whose "
                f"values cannot be traced back to token positions"
            )
        return L.add_leaf(value, b, pos, "mask")

    def additive_keep(self, A: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(keep, bias)`` for an additive attention mask ``A`` (0 or a bias where a key takes
        part, -inf or a large negative number where it does not)."""
        L = self.ledger
        hit = L.info(A)
        if hit is not None and hit.masked is not None:
            bias = hit.masked.scores
            with torch._C.DisableTorchFunction():
                zero = not isinstance(bias, torch.Tensor) or not bool(bias.ne(0).any())
            return hit.masked.keep, None if zero else bias
        with torch._C.DisableTorchFunction():
            neg = A <= -1e4
            keep_value = (~neg).to(A.dtype)
            finite = A.masked_fill(neg, 0.0)
            shift = None if not bool(finite.ne(0).any()) else finite
        if not L.tracked(A):
            return keep_value, shift
        b = L.bdim(A)
        if shift is not None and not L.halves_equal(finite, b):
            raise refuse("an additive attention mask whose finite part differs between an input and its reference")
        if L.halves_equal(keep_value, b):
            return keep_value, shift
        shadow = L.shadow(A)
        if shadow is not None:
            with torch._C.DisableTorchFunction():
                lows = torch.unique(A[neg])
            if lows.numel() == 1 and torch.isfinite(lows).all():
                low = float(lows[0])
                keep = self.run(lambda: 1 - (shadow - finite) / low)
                with torch._C.DisableTorchFunction():
                    if torch.equal(keep.detach(), keep_value):
                        return keep, shift
        return self._value_leaf(keep_value, b, "additive attention mask"), shift

    # -- dispatch ----------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        L = self.ledger
        flat = tree_flatten((args, kwargs))[0]
        tracked = [t for t in flat if L.tracked(t)]
        if not tracked:
            return func(*args, **kwargs)
        name = op_name(func)
        if name in METADATA:
            return func(*args, **kwargs)
        grad = torch.is_grad_enabled()
        if name == "embedding" and not any(t.requires_grad for t in tracked):
            return self._feature(func, args, kwargs)
        if name == "embedding_bag" or not grad or not any(t.requires_grad for t in tracked):
            if name == "embedding_bag":
                return OP_RULES[name](self, func, args, kwargs)
            return self._derived(func, name, args, kwargs, tracked)
        if name in NON_DIFFERENTIABLE:
            return self._derived(func, name, args, kwargs, tracked)
        return self._ruled(func, name, args, kwargs, tracked)

    def _feature(self, func, args, kwargs):
        """An embedding lookup of ids (or of positions computed from them): an input feature."""
        L = self.ledger
        idx = args[0] if args else kwargs["input"]
        out = func(*args, **kwargs)
        b = L.bdim(idx)
        pos = L.position_dim(idx, b) if idx.dim() >= 2 else None
        if b is None or pos is None:
            L.record(out, infer_bdim("embedding", args, kwargs, out, L, idx) if b is not None else None, derived=True)
            return out
        return L.add_leaf(out, b, pos, "embedding")

    def _derived(self, func, name, args, kwargs, tracked):
        """A call on values derived from the ids (no signal, or no gradient): run it as it is and
        track what comes out; comparisons with one value per position become input features,
        linear steps and logic are replayed on the float shadows."""
        L = self.ledger
        out = func(*args, **kwargs)
        src = tracked[0]
        outs = _tensors(out)
        if name in _CONSTANT_MAKERS:
            return out  # the same for every row: a constant
        for i, o in enumerate(outs):
            b = infer_bdim(name, args, kwargs, o, L, src)
            shadow = None
            masked = None
            logic = o.dtype == torch.bool and name not in _SAME | _CASTS | _NOT | _AND | _OR
            if logic and name not in COMPARISONS:
                shadow = self._replay(func, name, args, kwargs, i, len(outs))  # any/all of indicators
            if shadow is None and (name in COMPARISONS or logic):
                pos = L.position_dim(o, b)
                if b is not None and pos is not None and not L.halves_equal(o, b):
                    with torch._C.DisableTorchFunction():
                        value = o.to(L.dtype)
                    shadow = L.add_leaf(value, b, pos, "mask")
            elif name == "where" and len(args) == 3 and L.derived(args[0]) and not any(L.derived(t) for t in args[1:]):
                shadow, masked = self._where_constants(args, o)
            elif name.startswith("masked_fill") and len(args) > 2 and _is_large_negative(args[2]):
                keep = self.mask_signal(args[1], name)
                if keep is not None or L.derived(args[1]):
                    with torch._C.DisableTorchFunction():
                        base = args[0].masked_fill(args[1], 0.0) if not L.derived(args[0]) else None
                    keep_t = self.run(lambda k=keep: 1 - k) if keep is not None else None
                    if keep_t is None:
                        with torch._C.DisableTorchFunction():
                            keep_t = (~args[1]).to(o.dtype)
                    masked = MaskedScores(base if base is not None else torch.zeros_like(o), keep_t, float(args[2]))
            else:
                shadow = self._replay(func, name, args, kwargs, i, len(outs))
            L.record(o, b, derived=True, shadow=shadow, masked=masked)
        return out

    def _where_constants(self, args, out: torch.Tensor) -> tuple[torch.Tensor | None, MaskedScores | None]:
        """``where(cond, a, b)`` with ``cond`` computed from the ids and constant ``a``, ``b``: the
        shadow ``c·a + (1 − c)·b``, or, where ``a`` or ``b`` is a large negative number (an
        additive attention mask), masked scores whose keep is ``c`` (or ``1 − c``)."""
        cond, a, b = args
        c = self.mask_signal(cond, "where")
        if c is None:
            return None, None
        if _is_large_negative(b) and not _is_large_negative(a):
            keep, other, fill = c, a, b
        elif _is_large_negative(a) and not _is_large_negative(b):
            keep, other, fill = self.run(lambda: 1 - c), b, a
        else:
            return self.run(lambda: c * a + (1 - c) * b), None
        with torch._C.DisableTorchFunction():
            base = torch.zeros_like(out) + (other if not isinstance(other, torch.Tensor) else other.to(out.dtype))
            f = float(fill) if not isinstance(fill, torch.Tensor) else float(fill.reshape(-1)[0])
        return None, MaskedScores(base, keep, f)

    def _replay(self, func, name, args, kwargs, index: int, count: int) -> torch.Tensor | None:
        """The float shadow of output ``index`` of a derived call, where the step can be replayed."""
        L = self.ledger
        derived = [t for t in _tensors((args, kwargs)) if L.derived(t)]
        if not derived:
            return None

        def shadow_of(t):
            if not isinstance(t, torch.Tensor) or not L.derived(t):
                return t
            s = L.shadow(t)
            if s is not None:
                return s
            if L.halves_equal(t, L.bdim(t)):
                with torch._C.DisableTorchFunction():
                    return t.to(L.dtype) if not t.is_floating_point() else t
            raise _NoShadow

        try:
            if name in _CASTS:
                s = shadow_of(args[0])
                return s if s is not args[0] and s.requires_grad else None
            if name in _NOT:
                s = shadow_of(args[0])
                return self.run(lambda: 1 - s) if s.requires_grad else None
            if name in _AND | _OR:
                a, b = (shadow_of(x) for x in args[:2])
                a = a.to(L.dtype) if isinstance(a, torch.Tensor) else a
                b = b.to(L.dtype) if isinstance(b, torch.Tensor) else b
                if name in _AND:
                    return self.run(lambda: a * b)
                return self.run(lambda: a + b - a * b)
            if name in ("any", "all") and (len(args) > 1 or "dim" in kwargs):
                return self._reduce_logic(name, shadow_of(args[0]), args, kwargs)
            if name in _SAME or name in ELEMENTWISE or name in _REDUCE_REPLAY:
                sargs = tree_map(shadow_of, args)
                skw = {k: shadow_of(v) for k, v in kwargs.items() if k != "dtype"}
                if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in _tensors((sargs, skw))):
                    return None
                res = self.run(lambda: func(*sargs, **skw))
                res = _tensors(res)
                return res[index] if len(res) == count else None
        except _NoShadow:
            return None
        return None

    def _reduce_logic(self, name: str, s: torch.Tensor, args, kwargs) -> torch.Tensor | None:
        """``any``/``all`` over one dim of 0/1 indicators, as products: ``all = Π s``,
        ``any = 1 − Π (1 − s)`` (each product by the Shapley split, so exact)."""
        if not s.requires_grad:
            return None
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keep = bool(kwargs.get("keepdim", args[2] if len(args) > 2 else False))
        if not isinstance(dim, int):
            return None

        def body():
            parts = (s if name == "all" else 1 - s).unbind(dim)
            acc = parts[0]
            for q in parts[1:]:
                acc = acc * q
            out = acc if name == "all" else 1 - acc
            return out.unsqueeze(dim) if keep else out

        return self.run(body)

    def _ruled(self, func, name, args, kwargs, tracked):
        L = self.ledger
        masked_args = [t for t in tracked if (h := L.info(t)) is not None and h.masked is not None]
        if masked_args and name not in _READS_ADDITIVE_MASKS:
            hit = self._masked_step(func, name, args, kwargs, masked_args)
            if hit is not _MISS:
                return hit
        if name in _ADDS and (added := self._additive_mask_sum(func, name, args, kwargs)) is not None:
            return added
        if name not in _READS_MASKS and name not in _READS_ADDITIVE_MASKS:
            args, kwargs = tree_map(self._as_signal(name), (args, kwargs))
        if name in OP_RULES:
            out = OP_RULES[name](self, func, args, kwargs)
        elif name in LINEAR_OPS:
            out = func(*args, **kwargs)
        else:
            raise refuse(
                f"cannot explain operation {name!r} exactly with DeepSHAP; linear operations and "
                f"{', '.join(supported_ops())} are supported"
            )
        self._record_outputs(name, args, kwargs, out, tracked)
        return out

    def _additive_mask_sum(self, func, name, args, kwargs):
        """``scores + mask`` where ``mask`` is computed from the ids and holds large negative numbers
        (an additive attention mask, as Hugging Face builds it): masked scores for the softmax."""
        L = self.ledger
        if len(args) < 2:
            return None
        a, b = args[0], args[1]
        for s_, A in ((a, b), (b, a)):
            if not (isinstance(s_, torch.Tensor) and s_.requires_grad and isinstance(A, torch.Tensor)):
                continue
            if A.requires_grad or not L.derived(A) or not A.is_floating_point():
                continue
            with torch._C.DisableTorchFunction():
                low = float(A.min()) if A.numel() else 0.0
            info = L.info(A)
            if low > -1e4 or (info is not None and info.masked is not None):
                continue
            keep, bias = self.additive_keep(A)
            if keep is None:
                continue
            scores = self.run(lambda s_=s_, bias=bias: s_ + bias) if bias is not None else s_
            out = func(*args, **kwargs)
            fill = float("-inf") if math.isinf(low) else low
            b_out = infer_bdim(name, args, kwargs, out, L, s_)
            L.record(out, b_out, masked=MaskedScores(scores, keep, fill))
            return out
        return None

    def _as_signal(self, name: str):
        L = self.ledger

        def swap(t):
            if not isinstance(t, torch.Tensor) or not L.derived(t):
                return t
            shadow = L.shadow(t)
            if shadow is not None:
                return shadow  # in the model's dtype, even where the user cast the mask to float32
            b = L.bdim(t)
            if L.halves_equal(t, b):
                return t
            pos = L.position_dim(t, b)
            if b is not None and pos is not None:  # one value per position: an input feature of it
                with torch._C.DisableTorchFunction():
                    value = t.to(L.dtype)
                leaf = L.add_leaf(value, b, pos, "derived")
                L.infos[id(t)].shadow = leaf
                return leaf
            raise refuse(
                f"{name} uses a value computed from the token ids (a mask, a length, a position) that differs "
                f"between an input and its reference, in a way seqshap cannot credit to token positions"
            )

        return swap

    def _record_outputs(self, name, args, kwargs, out, tracked) -> None:
        L = self.ledger
        src = next((t for t in tracked if t.requires_grad), tracked[0])
        for o in _tensors(out):
            known = L.info(o)
            if known is not None and known.masked is not None:
                continue
            b = infer_bdim(name, args, kwargs, o, L, src) if known is None else known.bdim
            if b is None and o.dim() and o.shape[0] == L.batch and all(L.bdim(t) == 0 for t in tracked):
                b = 0  # a rule's own result, computed batch first
            if o.requires_grad:
                L.record(o, b)
            elif L.info(o) is None:
                L.record(o, b, derived=True)

    def _masked_step(self, func, name, args, kwargs, masked_args):
        """A step applied to masked scores: shape steps and scalings carry the mask along,
        ``+``/``-`` add to the scores; softmax/max read it (their rules); anything else is refused."""
        L = self.ledger
        if name in _MASK_CONSUMERS or name in ("amax",):
            return _MISS  # the op rule reads the annotation
        z = masked_args[0]
        scores, keep, fill = self._masked_of(z)
        out = func(*args, **kwargs)
        if name in _MASK_KEEPING:
            with torch._C.DisableTorchFunction():
                k_full = keep.expand_as(scores) if keep.shape != scores.shape else keep
            rest = args[1:] if args and args[0] is z else args
            new_scores = self.run(lambda: func(scores, *rest, **kwargs))
            new_keep = self.run(lambda: func(k_full, *rest, **kwargs))
        elif name in ("mul", "__mul__", "__rmul__", "div", "__truediv__") and len(masked_args) == 1:
            other = args[1] if args[0] is z else args[0]
            if isinstance(other, torch.Tensor) and (other.requires_grad or other.numel() != 1 or float(other) <= 0):
                raise refuse(f"{name} of scores filled with a large negative number by other than a positive constant")
            if not isinstance(other, torch.Tensor) and other <= 0:
                raise refuse(f"{name} of masked scores by a non-positive number flips the mask")
            new_scores = self.run(lambda: func(scores, other) if args[0] is z else func(other, scores))
            new_keep = keep
        elif name in ("add", "__add__", "__radd__", "__iadd__", "sub", "__sub__"):
            a, b = args[0], args[1]
            if len(masked_args) == 2:
                sa, ka, fa = self._masked_of(a)
                sb, kb, fb = self._masked_of(b)
                new_scores = self.run(lambda: func(sa, sb))
                new_keep = self.run(lambda: ka * kb)
                fill = min(fa, fb)
            else:
                other = b if a is z else a
                if name.startswith("sub") and a is not z:
                    raise refuse("subtracting masked scores flips the mask")
                other = self._as_signal(name)(other)
                new_scores = self.run(lambda: scores + other if not name.startswith("sub") else scores - other)
                new_keep = keep
        else:
            raise refuse(
                f"{name} reads scores filled with -inf or a large negative number; seqshap rules such scores in a "
                f"softmax or a max over the masked dim (a shape change or a positive scaling on the way is fine)"
            )
        src = next((t for t in _tensors(args) if t.requires_grad), z)
        L.record(out, infer_bdim(name, args, kwargs, out, L, src), masked=MaskedScores(new_scores, new_keep, fill))
        return out


class _NoShadow(Exception):
    pass


_MISS = object()
METADATA = frozenset(
    {
        *("__get__", "shape", "dtype", "device", "requires_grad", "is_cuda", "ndim", "size", "dim", "numel"),
        *("stride", "is_contiguous", "is_floating_point", "__len__", "__format__", "__repr__", "get_device"),
        *("data_ptr", "layout", "element_size", "is_nested", "is_sparse", "is_complex", "__hash__", "grad_fn"),
        *("_has_compatible_shallow_copy_type", "_nested_tensor_from_mask_left_aligned", "names", "is_leaf"),
        "requires_grad_",
    }
)


def explain_forward(
    model: nn.Module,
    inputs: torch.Tensor,
    rule: ProductRule,
    pairing: Pairing,
    composite: Composite = DEFAULT,
) -> tuple[torch.Tensor, DeepLiftMode, Ledger]:
    """Run ``model`` on the stacked pair batch ``inputs`` ``[2P, T]`` (ids) or ``[2P, T, E]``
    (embeddings) under the rules; returns (output, mode, ledger: the input features)."""
    dtype = inputs.dtype if inputs.is_floating_point() else _float_dtype(model)
    ledger = Ledger(batch=inputs.shape[0], positions=inputs.shape[1], n=pairing.n, k=pairing.k, dtype=dtype)
    if inputs.is_floating_point():
        inputs = ledger.add_leaf(inputs, 0, 1, "embedding")
    else:
        ledger.record(inputs, 0, derived=True)
    mode = DeepLiftMode(rule, ledger)
    if pairing.tokens is not None:
        pairing.tokens.ledger = ledger
    pairing = Pairing(pairing.n, pairing.k, pairing.tokens, ledger, mode)
    try:
        with canonized(model, pairing, rule, composite), mode:
            out = model(inputs)
    except Refusal as e:
        raise e.error from None
    return out, mode, ledger


def _float_dtype(model: nn.Module) -> torch.dtype:
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.get_default_dtype()


__all__ = [
    "COMPARISONS",
    "ELEMENTWISE",
    "LINEAR_OPS",
    "OP_RULES",
    "DeepLiftMode",
    "SquashLog",
    "SquashRecorder",
    "explain_forward",
]
