"""What the explainer knows about each tensor of a traced forward pass.

The model runs on the stacked batch ``[x-rows; reference-rows]`` (2P rows). Two kinds of
tensors carry the difference between an input and its reference:

- **signals**: float tensors that require grad (the embeddings and everything computed from
  them); DeepLIFT multipliers flow back through them;
- **derived values**: tensors computed from the token ids without a gradient (``ids == pad``,
  lengths, position ids, the index of the last real token). Their difference between an input
  and its reference must be credited too. A comparison whose result has one value per token
  position (``[batch, T]``) becomes an input feature of its own, a *position leaf* whose share
  goes to the position it came from (as an embedding's does); linear steps on it (sums, casts,
  reshapes, ``~``, ``&``) are replayed on a float *shadow*, so a length ``mask.sum(1)`` is the
  sum of its positions' indicators and ``h.sum(1) / length`` is a quotient of two signals.

Every tracked tensor has a batch dim (``bdim``): where its 2P rows are. Rules read the input
and reference halves along it, so a model that works in ``[T, batch, ...]`` layout (PyTorch's
``batch_first=False``) is paired correctly.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UnsupportedLayerError

_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_ENGINE_DIR = str(Path(__file__).resolve().parent)
_SEQSHAP_DIR = str(Path(__file__).resolve().parent.parent)


def user_frame() -> str:
    """``" (at FILE:LINE: code)"`` for the innermost caller outside torch and seqshap's engine:
    the user's line that called a refused operation (empty when there is none)."""
    for frame in reversed(traceback.extract_stack()):
        f = str(Path(frame.filename).resolve()) if frame.filename and not frame.filename.startswith("<") else ""
        if not f or f.startswith((_TORCH_DIR, _ENGINE_DIR)) or "/contextlib.py" in f or "/functools.py" in f:
            continue
        if f.startswith(_SEQSHAP_DIR) and "/models/" not in f:
            continue
        code = f": {frame.line.strip()}" if frame.line else ""
        return f" (at {frame.filename}:{frame.lineno}{code})"
    return ""


class Refusal(Exception):
    """Carries an :class:`UnsupportedLayerError` out of the traced forward pass. Not a
    ``TypeError`` itself: torch turns a ``TypeError`` raised inside ``a * b`` into
    ``NotImplemented`` (and Python then into an unrelated message); the tracer re-raises
    the error it carries."""

    def __init__(self, error: UnsupportedLayerError):
        super().__init__(str(error))
        self.error = error


def refuse(message: str) -> Refusal:
    """The refusal of an operation without an exact rule, naming the user's line."""
    return Refusal(UnsupportedLayerError(message + user_frame()))


# A fill at or below this before a softmax/max masks a key out (exp(-1e4) is 0 in float64 too).
LARGE_NEGATIVE = -1e4


def op_name(func) -> str:
    """The name a call is ruled by: ``Tensor.T.__get__`` is ``"T"``, ``torch.add`` is ``"add"``."""
    name = getattr(func, "__name__", None)
    if name == "__get__":
        owner = getattr(func, "__self__", None)
        return getattr(owner, "__name__", "__get__")
    return name if isinstance(name, str) else repr(func)


def _signal(t) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def _bind(params: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    return dict(zip(params, args, strict=False), **kwargs)


def _is_large_negative(v) -> bool:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            return False
        v = float(v)
    return isinstance(v, (int, float)) and ((math.isinf(v) and v < 0) or v <= LARGE_NEGATIVE)


@dataclass
class Info:
    """One tracked tensor (``tensor`` keeps it alive, so its ``id`` is not reused)."""

    tensor: torch.Tensor
    bdim: int | None
    derived: bool = False  # computed from the input without a gradient
    shadow: torch.Tensor | None = None  # float signal with the same values (derived only)
    masked: MaskedScores | None = None  # scores with a large negative fill (see MaskedScores)


@dataclass
class MaskedScores:
    """A tensor that is ``scores`` where ``keep`` and a large negative number (or -inf)
    elsewhere, as written before a softmax or a max. ``keep`` is the float 0/1 mask (a signal
    when it differs between an input and its reference: its share goes to positions)."""

    scores: torch.Tensor
    keep: torch.Tensor
    fill: float = float("-inf")


@dataclass
class Leaf:
    """An input feature: ``tensor`` (requires grad) with one value per token position along
    ``pos_dim`` after its batch dim is moved to the front. Its share is ``m * Δ``, summed over
    its other dims, credited to each position."""

    tensor: torch.Tensor
    bdim: int
    pos_dim: int = 1
    name: str = "feature"


@dataclass
class Ledger:
    """The bookkeeping of one traced forward pass over 2P = ``batch`` rows of ``positions`` tokens."""

    batch: int
    positions: int
    n: int | None = None  # unique inputs (each repeated k times in the first half)
    k: int | None = None  # unique references (tiled n times in the second half)
    dtype: torch.dtype = torch.float32  # of the shadows and masks made here
    infos: dict[int, Info] = field(default_factory=dict)
    leaves: list[Leaf] = field(default_factory=list)

    # -- lookups -----------------------------------------------------------------------------
    def info(self, t) -> Info | None:
        if not isinstance(t, torch.Tensor):
            return None
        hit = self.infos.get(id(t))
        return hit if hit is not None and hit.tensor is t else None

    def tracked(self, t) -> bool:
        return isinstance(t, torch.Tensor) and (t.requires_grad or self.info(t) is not None)

    def bdim(self, t: torch.Tensor) -> int | None:
        """The batch dim of a tracked tensor. A signal made where the tracer could not see it
        (inside a canonized layer) has its batch first, as every explicit layer returns it."""
        hit = self.info(t)
        if hit is not None:
            return hit.bdim
        return 0 if t.dim() and t.shape[0] == self.batch else None

    def derived(self, t) -> bool:
        hit = self.info(t)
        return hit is not None and hit.derived

    def shadow(self, t: torch.Tensor) -> torch.Tensor | None:
        hit = self.info(t)
        return hit.shadow if hit is not None else None

    # -- records -----------------------------------------------------------------------------
    def record(self, t: torch.Tensor, bdim: int | None, derived: bool = False, shadow=None, masked=None) -> None:
        self.infos[id(t)] = Info(t, bdim, derived, shadow, masked)

    def add_leaf(self, t: torch.Tensor, bdim: int, pos_dim: int = 1, name: str = "feature") -> torch.Tensor:
        """Make ``t`` an input feature (a fresh leaf that requires grad) and record it."""
        leaf = t.detach().requires_grad_(True)
        self.leaves.append(Leaf(leaf, bdim, pos_dim, name))
        self.record(leaf, bdim)
        return leaf

    # -- layout ------------------------------------------------------------------------------
    def front(self, t: torch.Tensor, bdim: int | None = None) -> torch.Tensor:
        """``t`` with its batch dim first (a view)."""
        b = self.bdim(t) if bdim is None else bdim
        if b is None:
            raise refuse(
                "an operation mixes the rows of the batch (a reduction or index over the batch dim, "
                "or a reshape that merges it as a minor dim), so an input cannot be paired with its reference"
            )
        return t if b == 0 else t.movedim(b, 0)

    def position_dim(self, t: torch.Tensor, bdim: int | None) -> int | None:
        """The dim holding the token positions of a derived ``[batch, ..., T, ...]`` tensor
        (after its batch dim is moved first): the last dim of size T with every other dim 1."""
        if bdim is None or t.dim() < 2:
            return None
        shape = list(t.movedim(bdim, 0).shape) if bdim else list(t.shape)
        if shape[0] != self.batch:
            return None
        big = [i for i, s in enumerate(shape[1:], 1) if s != 1]
        if len(big) == 1 and shape[big[0]] == self.positions:
            return big[0]
        return None

    def halves_equal(self, t: torch.Tensor, bdim: int | None) -> bool:
        """Is a derived tensor the same for every input as for its reference (so a constant)?"""
        if bdim is None:
            return False
        f = t.movedim(bdim, 0) if bdim else t
        if f.shape[0] != self.batch:
            return True  # broadcast over the batch: the same for all rows
        P = self.batch // 2
        with torch._C.DisableTorchFunction():
            return bool(torch.equal(f[:P], f[P:]))

    # -- pair structure (for the deduplicated linear maps) ------------------------------------
    def unique_rows(self, t: torch.Tensor) -> torch.Tensor | None:
        """``[2P, ...]`` (batch first) -> the ``n + k`` unique rows, or None when the pairing is
        not the explainer's grid (then nothing is deduplicated)."""
        n, k = self.n, self.k
        if n is None or k is None or n * k * 2 != t.shape[0]:
            return None
        P = n * k
        return torch.cat([t[:P:k], t[P : P + k]], 0)

    def expand_rows(self, u: torch.Tensor) -> torch.Tensor:
        """The ``n + k`` unique rows -> the stacked ``[2P, ...]`` layout."""
        n, k = self.n, self.k
        assert n is not None
        assert k is not None
        ux, ur = u[:n], u[n:]
        return torch.cat([ux.repeat_interleave(k, 0), ur.repeat(n, *[1] * (u.dim() - 1))], 0)


# ---- batch dims through shape operations --------------------------------------------------------
def _norm(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _reshape_bdim(in_shape: tuple[int, ...], bdim: int, out_shape: tuple[int, ...], batch: int) -> int | None:
    """Where the batch dim goes through a reshape: the output dim that starts at the same
    element offset and holds the batch as its major factor (None when it becomes a minor one)."""
    before = math.prod(in_shape[:bdim])
    acc = 1
    for j, s in enumerate(out_shape):
        if acc == before and s % batch == 0 and s > 0:
            return j
        acc *= s
        if acc > before:
            break
    return None


REDUCTIONS = {
    "sum",
    "mean",
    "amax",
    "amin",
    "max",
    "min",
    "logsumexp",
    "prod",
    "std",
    "var",
    "norm",
    "nansum",
    "argmax",
    "argmin",
    "all",
    "any",
    "count_nonzero",
    "median",
    "linalg_vector_norm",
    "vector_norm",
}


def _reduced(b: int, nd: int, dims, keepdim: bool) -> int | None:
    if dims is None:
        return None  # over everything, the batch included
    dims = [dims] if isinstance(dims, int) else list(dims)
    dims = [_norm(int(d), nd) for d in dims]
    if b in dims:
        return None
    return b if keepdim else b - sum(d < b for d in dims)


def _getitem(b: int, nd: int, index, batch: int, out: torch.Tensor) -> int | None:
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, torch.Tensor) and i.dim() > 0 for i in items) or any(isinstance(i, list) for i in items):
        return _advanced(b, items, batch, out)
    used = sum(1 for i in items if i is not None and i is not Ellipsis and not isinstance(i, bool))
    expanded: list = []
    for i in items:
        if i is Ellipsis:
            expanded.extend([slice(None)] * (nd - used))
        else:
            expanded.append(i)
    expanded.extend([slice(None)] * (nd - sum(1 for i in expanded if i is not None)))
    src_dim, out_dim = 0, 0
    for i in expanded:
        if i is None:
            out_dim += 1
            continue
        if src_dim == b:
            if not isinstance(i, slice) or out.shape[out_dim] != batch:
                return None  # the batch rows are picked or narrowed
            return out_dim
        if isinstance(i, slice):
            out_dim += 1
        src_dim += 1
    return None


def _advanced(b: int, items: tuple, batch: int, out: torch.Tensor) -> int | None:
    """Advanced indexing keeps the batch when the batch dim is indexed by ``arange(batch)`` (in
    order, as ``mask[torch.arange(B)[:, None, None, None], kv]`` does). Where it lands follows
    indexing's own rule: the index tensors broadcast together, and their dims stand where the
    first of them stood when they are adjacent, else first (so a batch of as many rows as there
    are positions is not mistaken for the positions)."""
    real = [i for i in items if i is not None]
    if Ellipsis in real or b >= len(real):
        return None
    at = real[b]
    if not (isinstance(at, torch.Tensor) and not at.is_floating_point() and at.numel() == batch):
        return None
    with torch._C.DisableTorchFunction():
        if not bool((at.reshape(-1) == torch.arange(batch, device=at.device)).all()):
            return None
    sizes = [i for i, s in enumerate(out.shape) if s == batch]
    plain = all(isinstance(i, (slice, torch.Tensor, list)) for i in items)  # no None, int or bool
    if not plain or batch == 1:
        return sizes[0] if len(sizes) == 1 else None
    adv = [k for k, i in enumerate(items) if not isinstance(i, slice)]
    with torch._C.DisableTorchFunction():
        shapes = [tuple(torch.as_tensor(items[k]).shape) for k in adv]
    try:
        joint = torch.broadcast_shapes(*shapes)
    except RuntimeError:
        return None
    where = [d for d, s in enumerate(at.shape) if s == batch]
    if len(where) != 1:
        return None
    adjacent = adv == list(range(adv[0], adv[-1] + 1))
    dim = (adv[0] if adjacent else 0) + len(joint) - at.dim() + where[0]
    return dim if dim < out.dim() and out.shape[dim] == batch else None


def infer_bdim(
    name: str, args: tuple, kwargs: dict, out: torch.Tensor, ledger: Ledger, src: torch.Tensor
) -> int | None:
    """The batch dim of ``out`` = ``name(*args)``, given a tracked argument ``src`` among the args."""
    b = ledger.bdim(src)
    if b is None or not isinstance(out, torch.Tensor):
        return None
    nd_in, nd_out = src.dim(), out.dim()
    batch = ledger.batch
    if name in ("transpose", "swapaxes", "swapdims", "transpose_"):
        d0, d1 = (_norm(int(d), nd_in) for d in (args[1], args[2]))
        return d1 if b == d0 else d0 if b == d1 else b
    if name in ("t", "T") and nd_in == 2:
        return 1 - b
    if name == "mT":
        return nd_in - 1 if b == nd_in - 2 else nd_in - 2 if b == nd_in - 1 else b
    if name == "permute":
        dims = kwargs.get("dims") or (args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:])
        return [_norm(int(d), nd_in) for d in dims].index(b)
    if name in ("movedim", "moveaxis"):
        srcs, dsts = args[1], args[2]
        srcs = [_norm(srcs, nd_in)] if isinstance(srcs, int) else [_norm(d, nd_in) for d in srcs]
        dsts = [_norm(dsts, nd_in)] if isinstance(dsts, int) else [_norm(d, nd_in) for d in dsts]
        order: list[int | None] = [None] * nd_in
        for s_, d_ in zip(srcs, dsts, strict=True):
            order[d_] = s_
        rest = iter(i for i in range(nd_in) if i not in srcs)
        return [o if o is not None else next(rest) for o in order].index(b)
    if name in REDUCTIONS and (len(args) > 1 or "dim" in kwargs or nd_out < nd_in):
        dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if isinstance(dims, torch.Tensor) or (dims is not None and not isinstance(dims, (int, tuple, list))):
            dims = None
        keep = bool(kwargs.get("keepdim", args[2] if len(args) > 2 and isinstance(args[2], bool) else False))
        return _reduced(b, nd_in, dims, keep)
    if name == "__getitem__" and args[0] is src:
        return _getitem(b, nd_in, args[1], batch, out)
    if name in ("select", "narrow", "index_select", "unbind"):
        d = _norm(int(kwargs.get("dim", args[1] if len(args) > 1 else 0)), nd_in)
        if d == b:
            return None
        return b - 1 if name in ("select", "unbind") and d < b else b
    if name in ("cat", "concat", "concatenate"):
        d = _norm(int(kwargs.get("dim", args[1] if len(args) > 1 else 0)), nd_in)
        return None if d == b else b
    if name in ("stack",):
        d = _norm(int(kwargs.get("dim", args[1] if len(args) > 1 else 0)), nd_out)
        return b + 1 if d <= b else b
    if name in ("linear", "conv1d", "conv2d", "embedding", "layer_norm", "group_norm", "batch_norm", "rms_norm"):
        return b if b < nd_in - 1 or name == "embedding" else None
    if name in ("matmul", "__matmul__", "__rmatmul__", "bmm", "mm", "baddbmm", "addmm"):
        left = args[1] if name in ("addmm", "baddbmm") else args[0]
        return b + (nd_out - nd_in) if b < nd_in - 2 or (nd_in == 2 and b == 0 and left is src) else None
    if nd_out == nd_in and tuple(out.shape) == tuple(src.shape):
        return b  # elementwise, casts, in-place ops, softmax, cumsum, flips, rolls ...
    if name in ("unsqueeze", "unsqueeze_"):
        d = _norm(int(args[1] if len(args) > 1 else kwargs["dim"]), nd_out)
        return b + 1 if d <= b else b
    if name in ("view", "reshape", "flatten", "unflatten", "view_as", "reshape_as", "squeeze", "squeeze_"):
        return _reshape_bdim(tuple(src.shape), b, tuple(out.shape), batch)
    if nd_out >= nd_in and out.shape[nd_out - nd_in + b] == batch:
        return b + (nd_out - nd_in)  # broadcast / expand / repeat: new dims lead
    sizes = [i for i, s in enumerate(out.shape) if s == batch]
    return sizes[0] if len(sizes) == 1 else None
