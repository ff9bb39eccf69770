"""Every activation Keras serializes by name, as plain torch functions of one tensor.

Keras 3 writes an activation into a saved config by its function's name (``"relu"``,
``"gelu"``, ...); Keras 2's ``hard_sigmoid`` was ``clip(0.2 x + 0.5, 0, 1)``, stored here as
``hard_sigmoid_keras2``. Each function computes what the Keras function of that name computes
(Keras 3's torch backend calls the same ``torch.nn.functional`` functions).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _sparse_plus(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x < 1, 0.25 * (x + 1) ** 2, x))


def _sparse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, torch.ones_like(x), 0.5 * (x + 1)))


def _squareplus(x: torch.Tensor) -> torch.Tensor:
    return (x + torch.sqrt(x**2 + 4.0)) / 2


def _glu(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return a * torch.sigmoid(b)


def _sparsemax(x: torch.Tensor) -> torch.Tensor:
    """Sparsemax over the last axis as Keras 3 computes it: its threshold sums the running sums over
    the support (not the textbook's one running sum), and seqshap must give Keras' numbers."""
    z, _ = torch.sort(x, dim=-1, descending=True)
    r = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    cum = torch.cumsum(z, dim=-1)
    support = z - (cum - 1) / r > 0
    k = support.sum(dim=-1, keepdim=True)
    tau = (torch.where(support, cum, 0.0).sum(dim=-1, keepdim=True) - 1) / k
    return torch.clamp(x - tau, min=0.0)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.2),
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "mish": lambda x: x * torch.tanh(F.softplus(x)),
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": F.hardsigmoid,  # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid_keras2": lambda x: F.hardsigmoid(1.2 * x),  # Keras 2: clip(0.2 x + 0.5, 0, 1)
    "hard_silu": F.hardswish,
    "hard_swish": F.hardswish,
    "sparse_sigmoid": _sparse_sigmoid,
    "log_sigmoid": F.logsigmoid,
    "tanh": torch.tanh,
    "hard_tanh": F.hardtanh,
    "tanh_shrink": F.tanhshrink,
    "soft_shrink": lambda x: F.softshrink(x, 0.5),
    "hard_shrink": lambda x: F.hardshrink(x, 0.5),
    "softplus": F.softplus,
    "softsign": F.softsign,
    "sparse_plus": _sparse_plus,
    "squareplus": _squareplus,
    "exponential": torch.exp,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "sparsemax": _sparsemax,
    "glu": _glu,
}

# Activations a recurrent gate may use (Keras allows any; these keep a gate's meaning).
SQUASHES = frozenset(ACTIVATIONS) - {"softmax", "log_softmax", "sparsemax", "glu"}


def activate(name: str, x: torch.Tensor) -> torch.Tensor:
    """Keras activation ``name`` applied to ``x``."""
    fn = ACTIVATIONS.get(name)
    if fn is None:
        raise ValueError(f"unknown activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}")
    return fn(x)


def check_activation(name: str, where: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"{where}: unsupported activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}")
    return name
