"""Runs a user's model so that every operation on the input signal uses a DeepLIFT rule.

Two checks keep numbers honest:
1. before anything runs, every module is looked up in :data:`MODULE_RULES`; a module
   type the engine cannot explain exactly raises :class:`UnsupportedLayerError`;
2. during the forward pass a ``TorchFunctionMode`` sees every torch call. Calls that
   touch the input signal (tensors that require grad: the parameters are frozen for
   the explanation) must be linear (they pass multipliers through autograd unchanged)
   or have a rule in :data:`OP_RULES`; anything else raises, naming the operation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import UnsupportedLayerError
from ..models.hf import HFEncoderLayer
from ..models.transformer import EncoderBlock, PaddingMask
from .attention import ExplicitEncoderLayer, block_params, hf_layer_params
from .pairs import Pairing
from .recurrent import _ExplicitRNN
from .rules import Bilinear, CenteredSoftmax, LayerNorm, MaskedSoftmax, MaxOverDim, Product, ProductRule, Rescale


# ---- modules -----------------------------------------------------------------------------
class Canonize:
    """Rewrite a layer into explicit steps with known rules while it is explained
    (``factory(module, pairing, rule) -> nn.Module`` sharing the module's parameters)."""

    def __init__(self, factory: Callable[..., nn.Module]):
        self.factory = factory

    def __call__(self, module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
        return self.factory(module, pairing, rule)


class Unsupported:
    """A layer without an exact rule, and what to do instead."""

    def __init__(self, hint: str = ""):
        self.hint = hint


def _encoder_block(module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
    assert isinstance(module, EncoderBlock)  # the table binds this canonizer to EncoderBlock only
    return ExplicitEncoderLayer(module, block_params(module), pairing)


def _hf_encoder_layer(module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
    assert isinstance(module, HFEncoderLayer)  # the table binds this canonizer to HFEncoderLayer only
    return ExplicitEncoderLayer(module, hf_layer_params(module.layer), pairing)


_ATTENTION_HINT = (
    "build the encoder from seqshap.models.transformer.EncoderBlock (its attention, softmax, "
    "LayerNorm and padding mask have exact rules)"
)

# Module type -> what happens to it while it is explained:
#   Canonize  rewritten to explicit steps (its children are not looked at);
#   "feature" its output is an input feature the attributions are credited to (per position);
#   "ops"     its torch calls are checked and ruled one by one (OP_RULES);
#   Unsupported: refused before anything runs.
MODULE_RULES: dict[type, object] = {
    nn.LSTM: Canonize(_ExplicitRNN),
    nn.GRU: Canonize(_ExplicitRNN),
    EncoderBlock: Canonize(_encoder_block),
    HFEncoderLayer: Canonize(_hf_encoder_layer),
    nn.Embedding: "feature",
    PaddingMask: "feature",
    nn.Linear: "ops",
    nn.Bilinear: Unsupported(),
    nn.Conv1d: "ops",
    nn.LayerNorm: "ops",
    nn.Dropout: "ops",
    nn.Dropout1d: "ops",
    nn.AlphaDropout: "ops",
    nn.Sigmoid: "ops",
    nn.Tanh: "ops",
    nn.ReLU: "ops",
    nn.LeakyReLU: "ops",
    nn.ELU: "ops",
    nn.GELU: "ops",
    nn.SiLU: "ops",
    nn.Softplus: "ops",
    nn.Hardsigmoid: "ops",
    nn.Hardtanh: "ops",
    nn.ReLU6: "ops",
    nn.Softmax: "ops",
    nn.MaxPool1d: "ops",
    nn.AdaptiveMaxPool1d: "ops",
    nn.AvgPool1d: "ops",
    nn.AdaptiveAvgPool1d: "ops",
    nn.Flatten: "ops",
    nn.Unflatten: "ops",
    nn.Identity: "ops",
    nn.Sequential: "ops",
    nn.ModuleList: "ops",
    nn.ModuleDict: "ops",
    nn.MultiheadAttention: Unsupported(_ATTENTION_HINT),
    nn.TransformerEncoderLayer: Unsupported(_ATTENTION_HINT),
    nn.TransformerEncoder: Unsupported(_ATTENTION_HINT),
    nn.Transformer: Unsupported(_ATTENTION_HINT),
}


def supported_layers() -> list[str]:
    return sorted(t.__name__ for t, how in MODULE_RULES.items() if not isinstance(how, Unsupported))


def feature_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose outputs are the input features attributions are credited to."""
    return [m for m in model.modules() if MODULE_RULES.get(type(m)) == "feature"]


def check_modules(model: nn.Module) -> None:
    """Raise before any number is computed if a module has no exact rule."""
    todo: list[tuple[str, nn.Module]] = [("", model)]
    while todo:
        name, module = todo.pop()
        how = MODULE_RULES.get(type(module))
        if isinstance(how, Unsupported) or (how is None and type(module).__module__.startswith("torch.nn")):
            hint = f"; {how.hint}" if isinstance(how, Unsupported) and how.hint else ""
            raise UnsupportedLayerError(
                f"cannot explain module {name or '<root>'!r} ({type(module).__name__}) exactly with DeepSHAP{hint}; "
                f"supported layers: {', '.join(supported_layers())} (and your own modules built from them)"
            )
        if isinstance(module, nn.RNNBase) and module.proj_size:
            raise UnsupportedLayerError(f"module {name!r}: {type(module).__name__} with proj_size is not supported")
        if not isinstance(how, Canonize):  # a rewritten layer's insides never run
            todo.extend((f"{name}.{c}" if name else c, m) for c, m in reversed(list(module.named_children())))


@contextlib.contextmanager
def canonized(model: nn.Module, pairing: Pairing, rule: ProductRule):
    """Swap every layer with a :class:`Canonize` rule for its explicit form (same parameter
    objects) and freeze all parameters; put everything back afterwards, whatever happens."""
    swaps = []
    todo = [model]
    while todo:
        parent = todo.pop()
        for child_name, child in parent.named_children():
            how = MODULE_RULES.get(type(child))
            if isinstance(how, Canonize):
                swaps.append((parent, child_name, child, how))
            else:
                todo.append(child)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = [(m, m.training) for m in model.modules()]
    try:
        for parent, child_name, child, how in swaps:
            parent._modules[child_name] = how(child, pairing, rule)
        for p, _ in flags:
            p.requires_grad_(False)
        model.eval()
        yield model
    finally:
        for parent, child_name, child, _ in swaps:
            parent._modules[child_name] = child
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in training:
            m.training = mode


# ---- operations ----------------------------------------------------------------------------
def _name(func) -> str:
    return getattr(func, "__name__", repr(func))


# Calls that are linear in the signal (or only read metadata): autograd's own backward is
# exactly the DeepLIFT backward for them.
LINEAR_OPS = {
    "__get__",
    "__getitem__",
    "__setitem__",
    "__len__",
    "__iter__",
    "__format__",
    "__repr__",
    "size",
    "dim",
    "numel",
    "stride",
    "is_contiguous",
    "is_floating_point",
    "contiguous",
    "clone",
    "detach",
    "to",
    "type",
    "float",
    "double",
    "view",
    "view_as",
    "reshape",
    "reshape_as",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "t",
    "flip",
    "expand",
    "expand_as",
    "repeat",
    "repeat_interleave",
    "narrow",
    "select",
    "index_select",
    "gather",
    "split",
    "chunk",
    "unbind",
    "cat",
    "concat",
    "concatenate",
    "stack",
    "hstack",
    "vstack",
    "movedim",
    "moveaxis",
    "roll",
    "pad",
    "add",
    "__add__",
    "__radd__",
    "__iadd__",
    "add_",
    "sub",
    "__sub__",
    "__rsub__",
    "__isub__",
    "sub_",
    "neg",
    "__neg__",
    "sum",
    "mean",
    "linear",
    "embedding",
    "conv1d",
    "avg_pool1d",
    "adaptive_avg_pool1d",
    "dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "dropout1d",
    "identity",
    "new_zeros",
    "new_ones",
    "new_full",
    "new_empty",
    "zeros_like",
    "ones_like",
    "requires_grad_",
    "cpu",
    "__contains__",
    "__hash__",
    "__eq__",
    "__ne__",
    "__bool__",
    "__float__",
    "__int__",
    "tolist",
    "item",
    "numpy",
    "get_device",
    "_has_compatible_shallow_copy_type",
}


def _signal(t) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


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
        name = _name(func)
        if name in ("sigmoid", "sigmoid_"):
            self.log.record("sigmoid", args[0], out)
        elif name in ("softmax", "_softmax"):
            self.log.record("softmax", args[0], out)
        return out


# ---- the op rule table ------------------------------------------------------------------------
# Each entry turns one torch call that touches the signal into a ruled call. A rule gets the
# mode (for the product rule and the squash log), the original function and its arguments.
class _OpRule:
    """Base: ``rule(mode, func, args, kwargs)`` -> the output, computed under the rule."""

    def __call__(self, mode: DeepLiftMode, func, args: tuple, kwargs: dict):
        raise NotImplementedError


class _Product(_OpRule):
    """``a * b``: linear when one factor is constant, else the product rule (Shapley split)."""

    def __call__(self, mode, func, args, kwargs):
        if sum(_signal(a) for a in args[:2]) < 2:
            return func(*args, **kwargs)
        return Product.apply(args[0], args[1], mode.rule)


class _MatrixProduct(_OpRule):
    """``matmul``/``bmm``/``mm``/``@``: linear while one operand is constant; for two signals the
    :class:`BilinearRule` (Shapley split inside the product)."""

    def __call__(self, mode, func, args, kwargs):
        a, b = args[0], args[1]
        if not (_signal(a) and _signal(b)):
            return func(*args, **kwargs)
        if _name(func) == "__rmatmul__":
            a, b = b, a
        return Bilinear.apply(a, b)


class _LinearInOne(_OpRule):
    """``einsum``, ``outer``: linear while at most one operand is a signal."""

    def __call__(self, mode, func, args, kwargs):
        flat, _ = tree_flatten((args, kwargs))
        if sum(_signal(t) for t in flat) < 2:
            return func(*args, **kwargs)
        raise UnsupportedLayerError(
            f"cannot explain {_name(func)} of two signals exactly; write it as a "
            f"matmul (which has a rule) or an elementwise product"
        )


class _Divide(_OpRule):
    """``a / b``: linear in ``a``; by a signal ``b`` it is ``a * (1/b)``: the reciprocal gets the
    rescale rule and the product the Shapley split."""

    def __call__(self, mode, func, args, kwargs):
        a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
        if not _signal(b):
            return func(*args, **kwargs)
        if kwargs.get("rounding_mode") is not None:
            raise UnsupportedLayerError(f"{_name(func)} with rounding_mode has no exact rule")
        inv = Rescale.apply(b, torch.reciprocal)
        if not _signal(a):
            return a * inv
        return Product.apply(a, inv, mode.rule)


class _LayerNorm(_OpRule):
    """``layer_norm`` over the last dim: :class:`LayerNorm` (an exact composition)."""

    def __call__(self, mode, func, args, kwargs):
        params = ("input", "normalized_shape", "weight", "bias", "eps")
        bound = dict(zip(params, args, strict=False), **kwargs)
        z, shape = bound["input"], tuple(bound["normalized_shape"])
        if len(shape) != 1:
            raise UnsupportedLayerError("layer_norm over more than the last dim is not supported")
        w, b = bound.get("weight"), bound.get("bias")
        if _signal(w) or _signal(b):
            raise UnsupportedLayerError("layer_norm whose weight or bias depends on the input has no rule")
        return LayerNorm.apply(z, w, b, float(bound.get("eps", 1e-5)))


def _check_same_for_pairs(name: str, mask: torch.Tensor, batch: int) -> None:
    """Refuse a mask ``[batch, ...]`` that differs between an input and its reference (the stacked
    halves): its share of the difference would be lost (a padding mask of texts of different
    lengths, say). A mask broadcast over the batch is the same for all and passes."""
    if mask.dim() and mask.shape[0] == batch and batch % 2 == 0:
        P = batch // 2
        if not torch.equal(mask[:P], mask[P:]):
            raise UnsupportedLayerError(
                f"{name}: the mask differs between an input and its reference (a padding mask of texts "
                f"of different lengths?), so its share of the difference cannot be attributed; build "
                f"attention from seqshap.models.transformer (PaddingMask, EncoderBlock), or explain "
                f"against references of the same length"
            )


class _Select(_OpRule):
    """``masked_fill``/``where`` with a constant mask: linear, as long as each input and its
    reference are masked alike (see :func:`_check_same_for_pairs`)."""

    def __call__(self, mode, func, args, kwargs):
        name = _name(func)
        mask = args[1] if name.startswith("masked_fill") else args[0]
        if _signal(mask):
            raise UnsupportedLayerError(f"{name} with a mask that depends on the input has no rule")
        signal = next(t for t in tree_flatten((args, kwargs))[0] if _signal(t))
        if isinstance(mask, torch.Tensor):
            _check_same_for_pairs(name, mask, signal.shape[0])
        return func(*args, **kwargs)


class _ScaledDotProductAttention(_OpRule):
    """``F.scaled_dot_product_attention`` in its explicit form ``softmax(q kᵀ · scale + mask) v``:
    the two matrix products of signals get :class:`Bilinear`, the softmax :class:`MaskedSoftmax`.
    A causal or given mask must be the same for an input and its reference; dropout must be off."""

    _PARAMS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")

    def __call__(self, mode, func, args, kwargs):
        name = _name(func)
        bound = dict(zip(self._PARAMS, args, strict=False), **kwargs)
        q, k, v, mask = bound["query"], bound["key"], bound["value"], bound.get("attn_mask")
        if bound.get("dropout_p", 0.0):
            raise UnsupportedLayerError(
                f"{name} with dropout_p > 0 is random; pass dropout_p=0.0 outside training "
                f"(model.eval() does not change a functional call's argument)"
            )
        if bound.get("enable_gqa"):
            raise UnsupportedLayerError(f"{name} with enable_gqa=True is not supported; repeat the keys and values")
        if _signal(mask):
            raise UnsupportedLayerError(f"{name} with an attn_mask that depends on the input has no rule")
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device)
        if bound.get("is_causal"):
            keep = keep.tril()
        bias = None
        if mask is not None:
            if mask.dim() == q.dim():  # else broadcast over the batch
                _check_same_for_pairs(f"{name}'s attn_mask", mask, q.shape[0])
            if mask.dtype == torch.bool:
                keep = keep & mask
            else:  # additive: -inf masks a key, finite values shift its score
                keep = keep & (mask > float("-inf"))
                bias = mask.masked_fill(mask == float("-inf"), 0.0)
        scale = bound.get("scale")
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        kt = k.transpose(-2, -1)
        s = Bilinear.apply(q, kt) if _signal(q) and _signal(k) else q @ kt
        s = s * scale if bias is None else s * scale + bias
        p = MaskedSoftmax.apply(s, keep.expand_as(s))
        return Bilinear.apply(p, v) if _signal(v) else p @ v


class _Elementwise(_OpRule):
    """One-input nonlinearity: the rescale rule (secant slope between input and reference)."""

    def __init__(self, fn=None):
        self.fn = fn  # the plain torch function; None: call the traced one with its extra arguments

    def __call__(self, mode, func, args, kwargs):
        fn = self.fn or (lambda z, _f=func, _a=args[1:], _k=kwargs: _f(z, *_a, **_k))
        out = Rescale.apply(args[0], fn)
        if self.fn is torch.sigmoid:
            mode.log.record("sigmoid", args[0], out)
        return out


class _Softmax(_OpRule):
    """Softmax over an explicit dim: :class:`CenteredSoftmax`."""

    def __call__(self, mode, func, args, kwargs):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dim is None:
            raise UnsupportedLayerError("softmax without an explicit dim cannot be explained")
        out = CenteredSoftmax.apply(args[0], dim)
        mode.log.record("softmax", args[0], out)
        return out


class _MaxOverDim(_OpRule):
    """``max(z, dim)`` / ``amax``: :class:`MaxOverDim`; the elementwise max of two tensors has no rule."""

    def __call__(self, mode, func, args, kwargs):
        name = _name(func)
        if len(args) + len(kwargs) < 2:
            raise UnsupportedLayerError(f"{name} over a whole tensor is not supported; give a dim")
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keep = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        if isinstance(dim, (tuple, list)):
            if len(dim) != 1:
                raise UnsupportedLayerError("max over several dims at once is not supported")
            dim = dim[0]
        if not isinstance(dim, int):
            raise UnsupportedLayerError(f"{name} between two tensors (elementwise max) is not supported")
        y = MaxOverDim.apply(args[0], dim)
        y = y.unsqueeze(dim) if keep else y
        if name == "max":
            return torch.return_types.max((y, args[0].detach().argmax(dim=dim, keepdim=keep)))
        return y


class _GlobalMaxPool(_OpRule):
    """``adaptive_max_pool1d(z, 1)``: max over the last dim."""

    def __call__(self, mode, func, args, kwargs):
        size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
        if size not in (1, (1,), [1]):
            raise UnsupportedLayerError(
                f"adaptive_max_pool1d with output_size={size} is not supported (global max pooling, output_size=1, is)"
            )
        y = MaxOverDim.apply(args[0], -1).unsqueeze(-1)
        return (y, args[0].detach().argmax(-1, keepdim=True)) if "indices" in _name(func) else y


class _MaxPool1d(_OpRule):
    """``max_pool1d`` without padding/dilation: max over each window (a strided view)."""

    PARAMS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

    def __call__(self, mode, func, args, kwargs):
        bound = dict(zip(self.PARAMS, args, strict=False), **kwargs)
        k = bound["kernel_size"]
        k = k[0] if isinstance(k, (tuple, list)) else k
        s = bound.get("stride") or k
        s = s[0] if isinstance(s, (tuple, list)) else s
        if (
            bound.get("padding", 0) not in (0, (0,))
            or bound.get("dilation", 1) not in (1, (1,))
            or bound.get("ceil_mode")
        ):
            raise UnsupportedLayerError("max_pool1d with padding, dilation or ceil_mode is not supported")
        if bound.get("return_indices") or "indices" in _name(func):
            raise UnsupportedLayerError("max_pool1d(return_indices=True) is not supported")
        return MaxOverDim.apply(bound["input"].unfold(-1, k, s), -1)


def _table(rule: _OpRule, *names: str) -> dict[str, _OpRule]:
    return dict.fromkeys(names, rule)


# The rule table: torch function name -> rule. Names in LINEAR_OPS pass through (autograd's own
# backward is the DeepLIFT backward for them); anything else touching the signal is refused.
OP_RULES: dict[str, _OpRule] = {
    **_table(_Product(), "mul", "__mul__", "__rmul__", "__imul__", "mul_"),
    **_table(_MatrixProduct(), "matmul", "__matmul__", "__rmatmul__", "mm", "bmm"),
    **_table(_LinearInOne(), "einsum", "outer"),
    **_table(_Select(), "masked_fill", "masked_fill_", "where"),
    **_table(_Divide(), "div", "__truediv__", "__itruediv__", "true_divide"),
    **_table(_Elementwise(torch.sigmoid), "sigmoid", "sigmoid_"),
    **_table(_Elementwise(torch.tanh), "tanh", "tanh_"),
    **_table(_Elementwise(torch.relu), "relu", "relu_"),
    **_table(_Elementwise(torch.exp), "exp", "exp_"),
    **_table(_Elementwise(torch.rsqrt), "rsqrt", "rsqrt_"),
    **_table(_Elementwise(torch.sqrt), "sqrt", "sqrt_"),
    **_table(_Elementwise(torch.reciprocal), "reciprocal", "reciprocal_"),
    **_table(_Elementwise(torch.square), "square", "square_"),
    **_table(_LayerNorm(), "layer_norm"),
    **_table(_Elementwise(), "leaky_relu", "elu", "gelu", "silu", "softplus", "hardsigmoid", "hardtanh", "relu6"),
    **_table(_Softmax(), "softmax", "_softmax"),
    **_table(_ScaledDotProductAttention(), "scaled_dot_product_attention"),
    **_table(_MaxOverDim(), "amax", "max"),
    **_table(_GlobalMaxPool(), "adaptive_max_pool1d", "_adaptive_max_pool1d", "adaptive_max_pool1d_with_indices"),
    **_table(_MaxPool1d(), "max_pool1d", "_max_pool1d", "max_pool1d_with_indices"),
}


def supported_ops() -> list[str]:
    """Names of the nonlinear operations with a rule (for error messages)."""
    return sorted({n.strip("_") for n, r in OP_RULES.items() if not isinstance(r, _LinearInOne)})


class DeepLiftMode(TorchFunctionMode):
    """Routes every call that touches the signal to its rule in :data:`OP_RULES`."""

    def __init__(self, rule: ProductRule):
        super().__init__()
        self.rule = rule
        self.log = SquashLog()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        if not any(_signal(t) for t in flat) or not torch.is_grad_enabled():
            return func(*args, **kwargs)
        name = _name(func)
        if name in LINEAR_OPS:
            return func(*args, **kwargs)
        rule = OP_RULES.get(name)
        if rule is None:
            raise UnsupportedLayerError(
                f"cannot explain operation {name!r} exactly with DeepSHAP; linear ops "
                f"and {', '.join(supported_ops())} are supported"
            )
        return rule(self, func, args, kwargs)


def explain_forward(
    model: nn.Module, inputs: torch.Tensor, rule: ProductRule, pairing: Pairing
) -> tuple[torch.Tensor, DeepLiftMode]:
    """Run ``model`` on the stacked pair batch under the rules; returns (output, mode)."""
    mode = DeepLiftMode(rule)
    with canonized(model, pairing, rule), mode:
        out = model(inputs)
    return out, mode
