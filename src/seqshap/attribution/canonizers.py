"""What happens to each module of a model while it is explained: the module rule table.

Most layers need nothing: their torch calls are checked and ruled one by one (``"ops"``, see
:mod:`.op_rules`). A few run a fused kernel whose steps the tracer cannot see, or are faster
written out: a :class:`Canonize` rule swaps them for an explicit layer sharing their parameters
for the duration of one call, and puts them back afterwards (zennit's canonizers). A module
type marked :class:`Unsupported` is refused before anything runs; so is any other ``torch.nn``
module the table does not list. A user's own module classes are looked into, never refused.

A model family adds its own canonizer without editing the engine by giving its layer a method
``seqshap_encoder_layer()`` that returns the fields of
:class:`~.attention.EncoderLayerParams` (weights by reference, heads, activation, order): any
module with it is explained by the exact explicit encoder layer.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from .attention import EncoderLayerParams, ExplicitEncoderLayer, _EncoderLayerFn
from .pairs import Pairing
from .recurrent import _ExplicitRNN
from .rules import ProductRule


class Canonize:
    """Rewrite a layer into explicit steps with known rules while it is explained
    (``factory(module, pairing, rule) -> nn.Module`` sharing the module's parameters)."""

    def __init__(self, factory: Callable[..., nn.Module], doc: str = ""):
        self.factory, self.doc = factory, doc

    def __call__(self, module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
        return self.factory(module, pairing, rule)


class Unsupported:
    """A layer without an exact rule, and what to do instead."""

    def __init__(self, hint: str = ""):
        self.hint = hint


OPS = "ops"  # its torch calls are ruled one by one


def _recurrent(module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
    assert isinstance(module, nn.RNNBase)
    return _ExplicitRNN(module, pairing, rule)


def _encoder_protocol(module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
    spec = module.seqshap_encoder_layer()  # type: ignore[operator]
    return ExplicitEncoderLayer(module, EncoderLayerParams(**spec), pairing)


ENCODER_PROTOCOL = Canonize(_encoder_protocol, "explicit encoder layer (seqshap_encoder_layer())")


class _TorchEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` as the explicit encoder layer (its forward on the unique rows,
    multipliers per pair in blocks) when it runs with a key padding mask only; with an attention
    mask or ``is_causal`` it runs its own code, each step ruled."""

    def __init__(self, layer: nn.TransformerEncoderLayer, pairing: Pairing):
        super().__init__()
        self.layer, self.pairing = layer, pairing
        a = layer.self_attn
        act = {1: "relu", 2: "gelu"}.get(getattr(layer, "activation_relu_or_gelu", 0))
        self.params: EncoderLayerParams | None = None
        if act is not None and a._qkv_same_embed_dim and a.bias_k is None and not a.add_zero_attn:
            wq, wk, wv = a.in_proj_weight.chunk(3)
            bq, bk, bv = a.in_proj_bias.chunk(3) if a.in_proj_bias is not None else (None, None, None)
            n1, n2 = layer.norm1, layer.norm2
            self.params = EncoderLayerParams(
                wq, bq, wk, bk, wv, bv, a.out_proj.weight, a.out_proj.bias,
                layer.linear1.weight, layer.linear1.bias, layer.linear2.weight, layer.linear2.bias,
                (n1.weight, n1.bias, float(n1.eps)), (n2.weight, n2.bias, float(n2.eps)),
                heads=int(a.num_heads), activation=act, norm_first=bool(layer.norm_first),
            )  # fmt: skip

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["layer"], name)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        mode = self.pairing.mode
        if self.params is None or src_mask is not None or is_causal or src.dim() != 3 or mode is None:
            return nn.TransformerEncoderLayer.forward(self.layer, src, src_mask, src_key_padding_mask, is_causal)
        batch_first = self.layer.self_attn.batch_first
        h = src if batch_first else src.transpose(0, 1)
        kpm = src_key_padding_mask
        if kpm is None:
            keep = h.new_ones(h.shape[:2]).detach()
        elif kpm.dtype == torch.bool:
            pad = mode.mask_signal(kpm, "src_key_padding_mask")
            keep = mode.run(lambda: 1 - pad) if pad is not None else (~kpm).to(h.dtype)
        else:
            keep, bias = mode.additive_keep(kpm)
            if bias is not None:
                return nn.TransformerEncoderLayer.forward(self.layer, src, src_mask, src_key_padding_mask, is_causal)
        out = _EncoderLayerFn.apply(h, keep, self.params, self.pairing)
        mode.record_signal(out, 0)
        return out if batch_first else out.transpose(0, 1)


def _torch_encoder_layer(module: nn.Module, pairing: Pairing, rule: ProductRule) -> nn.Module:
    assert isinstance(module, nn.TransformerEncoderLayer)
    return _TorchEncoderLayer(module, pairing)


_NORM_OPS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm1d)
_ACTIVATIONS = (
    nn.Sigmoid, nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus,
    nn.Softsign, nn.Hardsigmoid, nn.Hardtanh, nn.Hardswish, nn.ReLU6, nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink,
    nn.Hardshrink, nn.Threshold, nn.PReLU, nn.GLU, nn.Softmax, nn.LogSoftmax,
)  # fmt: skip
_SHAPES = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
    nn.FeatureAlphaDropout, nn.ConstantPad1d, nn.ZeroPad1d, nn.ReflectionPad1d, nn.ReplicationPad1d,
)  # fmt: skip
_POOLS = (nn.MaxPool1d, nn.AdaptiveMaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
_ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoder)
_CELLS = (nn.RNNCell, nn.LSTMCell, nn.GRUCell)


@dataclass
class Composite:
    """The rules the explainer uses, as values (zennit's composites): module type -> rule
    (:class:`Canonize`, :data:`OPS` or :class:`Unsupported`). Copy and extend it to add a
    canonizer for your own layer: ``Composite({**DEFAULT.modules, MyLayer: Canonize(f)})``."""

    modules: dict[type, object] = field(default_factory=dict)

    def rule_for(self, module: nn.Module):
        how = self.modules.get(type(module))
        if how is None and callable(getattr(module, "seqshap_encoder_layer", None)):
            return ENCODER_PROTOCOL
        return how

    def supported_layers(self) -> list[str]:
        return sorted(t.__name__ for t, how in self.modules.items() if not isinstance(how, Unsupported))


DEFAULT = Composite(
    {
        nn.LSTM: Canonize(_recurrent, "explicit LSTM cells, forward on the unique rows"),
        nn.GRU: Canonize(_recurrent, "explicit GRU cells, forward on the unique rows"),
        nn.RNN: Canonize(_recurrent, "explicit Elman cells (tanh or relu), forward on the unique rows"),
        nn.TransformerEncoderLayer: Canonize(
            _torch_encoder_layer, "explicit encoder layer with a key padding mask; its own steps otherwise"
        ),
        nn.Embedding: OPS,
        nn.EmbeddingBag: OPS,
        nn.Linear: OPS,
        nn.modules.linear.NonDynamicallyQuantizableLinear: OPS,
        nn.Bilinear: Unsupported("write it as a matmul of the two inputs (matmul of two signals has a rule)"),
        nn.Conv1d: OPS,
        nn.RMSNorm: OPS,
        **dict.fromkeys(_NORM_OPS, OPS),
        **dict.fromkeys(_ACTIVATIONS, OPS),
        **dict.fromkeys(_SHAPES, OPS),
        **dict.fromkeys(_POOLS, OPS),
        **dict.fromkeys(_CONTAINERS, OPS),
        **dict.fromkeys(_ATTENTION, OPS),
        **dict.fromkeys(_CELLS, OPS),
    }
)


def _where(module: nn.Module) -> str:
    try:
        return f" (class defined at {inspect.getsourcefile(type(module))}:{inspect.getsourcelines(type(module))[1]})"
    except (OSError, TypeError):
        return ""


def check_modules(model: nn.Module, composite: Composite = DEFAULT) -> None:
    """Raise before any number is computed if a module has no exact rule."""
    todo: list[tuple[str, nn.Module]] = [("", model)]
    while todo:
        name, module = todo.pop()
        how = composite.rule_for(module)
        if isinstance(how, Unsupported) or (how is None and type(module).__module__.startswith("torch.nn")):
            hint = f"; {how.hint}" if isinstance(how, Unsupported) and how.hint else ""
            raise UnsupportedLayerError(
                f"cannot explain module {name or '<root>'!r} ({type(module).__name__}) exactly with DeepSHAP{hint}; "
                f"supported layers: {', '.join(composite.supported_layers())} (and your own modules built from them)"
            )
        if isinstance(module, nn.RNNBase) and getattr(module, "proj_size", None):
            raise UnsupportedLayerError(f"module {name!r}: {type(module).__name__} with proj_size is not supported")
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and not module.track_running_stats:
            raise UnsupportedLayerError(
                f"module {name!r}: {type(module).__name__}(track_running_stats=False) normalizes over the batch, "
                f"which mixes inputs and references{_where(module)}"
            )
        if not isinstance(how, Canonize):  # a rewritten layer's insides never run
            todo.extend((f"{name}.{c}" if name else c, m) for c, m in reversed(list(module.named_children())))


@contextlib.contextmanager
def canonized(model: nn.Module, pairing: Pairing, rule: ProductRule, composite: Composite = DEFAULT) -> Iterator:
    """Swap every layer with a :class:`Canonize` rule for its explicit form (same parameter
    objects), freeze all parameters, eval mode, PyTorch's fused attention fast path off; put
    everything back afterwards, whatever happens."""
    swaps = []
    todo = [model]
    while todo:
        parent = todo.pop()
        for child_name, child in parent.named_children():
            how = composite.rule_for(child)
            if isinstance(how, Canonize):
                swaps.append((parent, child_name, child, how))
            else:
                todo.append(child)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = [(m, m.training) for m in model.modules()]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        for parent, child_name, child, how in swaps:
            parent._modules[child_name] = how(child, pairing, rule)
        for p, _ in flags:
            p.requires_grad_(False)
        model.eval()
        torch.backends.mha.set_fastpath_enabled(False)
        yield model
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for parent, child_name, child, _ in swaps:
            parent._modules[child_name] = child
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in training:
            m.training = mode
