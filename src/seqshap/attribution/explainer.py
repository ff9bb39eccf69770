"""DeepExplainer: exact DeepSHAP for text models, with shap's interface and more.

For an input ``x`` and background rows ``r_1..r_k`` (weights ``w_j``, uniform by default)

    phi_t(x) = sum_j w_j * DeepLIFT_t(x; r_j),       sum_t phi_t = f(x) - sum_j w_j f(r_j)

where DeepLIFT multipliers come from the rules in :mod:`.rules` and :mod:`.recurrent`
and attributions are summed over the embedding dimension, one value per token.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Sequence
from contextvars import ContextVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import POSITIVE
from ..data.layout import NATIVE, TokenLayout
from ..errors import AdditivityError, NonFiniteError
from .base import Attribution, check_finite, layout_of, model_lock, select_space, token_embedding
from .canonizers import DEFAULT, Composite, check_modules
from .pairs import Pairing, TokenSink
from .rules import ProductRule
from .tracer import explain_forward

__all__ = ["AdditivityError", "DeepExplainer", "DeepLift", "NonFiniteError", "summarize_background"]

# Activation memory one chunk of (input, reference) pairs may use when ``batch_pairs`` is not given.
MEMORY_BUDGET = 1 << 30
# Module outputs seen in the forward pass, times this, estimate a pair's memory: the backward
# pass holds gradients of the same size, and the rules' temporaries come on top.
ACTIVATION_FACTOR = 4


class DeepExplainer(Attribution):
    """Exact DeepSHAP for models that take token ids ``[n, T]`` (or embeddings ``[n, T, E]``).

    Parameters
    ----------
    model: an ``nn.Module`` (ids -> ``[n, outputs]``) or a loaded :class:`seqshap.SeqshapModel`.
    background: ids ``[k, T]``, embeddings ``[k, T, E]``, or a list of texts (needs a SeqshapModel).
    output: ``"probability"`` (the model's sigmoid/softmax output), ``"logit"`` (its input) or
        ``"raw"`` (whatever the model returns).
    product_rule: ``"shapley"`` (default) or ``"signal"``; see :class:`ProductRule`.
    dtype: ``torch.float64`` explains a float64 copy of the model (the user's model is untouched).
    summarize: explain against ``summarize`` weighted k-means representatives of the background
        instead of all of it (faster, approximate; see :func:`summarize_background`).
    batch_pairs: how many (input, background) pairs go through the model at once. By default as
        many as fit :data:`MEMORY_BUDGET` (1 GiB) of activations, measured on the dry run: a
        DistilBERT-size model gets a few dozen, a small LSTM thousands. When the background has
        more rows than that, each input is explained against it in slices (exact: the sum over
        references is linear).
    composite: the rules, as a value (:class:`~seqshap.attribution.canonizers.Composite`); by
        default :data:`~seqshap.attribution.canonizers.DEFAULT`, which covers ``torch.nn``'s layers
        and any module with a ``seqshap_encoder_layer()`` method.
    """

    name, additive, accepts_embeddings = "deepshap", True, True

    def __init__(
        self,
        model,
        background,
        output: str = "probability",
        product_rule: str = "shapley",
        dtype: torch.dtype | None = None,
        summarize: int | None = None,
        weights: Sequence[float] | None = None,
        batch_pairs: int | None = None,
        composite: Composite | None = None,
    ):
        super().__init__(model, output, batch_size=1024)
        self.composite = DEFAULT if composite is None else composite
        check_modules(self.net, self.composite)
        if batch_pairs is not None and int(batch_pairs) < 1:
            raise ValueError(f"batch_pairs must be >= 1, got {batch_pairs}")
        self.rule = ProductRule(product_rule)
        self.batch_pairs = None if batch_pairs is None else int(batch_pairs)
        self.dtype = dtype
        if dtype is not None:
            self.net = copy.deepcopy(self.net).to(dtype)
            self._lock = model_lock(self.net)
        self._set_background(background, weights, summarize)

    def _set_background(self, background, weights, summarize) -> None:
        bg = self._prepare(background, "background")
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float64)
            if w.shape != (len(bg),) or (w < 0).any() or float(w.sum()) <= 0:
                raise ValueError(f"weights must be {len(bg)} non-negative numbers with a positive sum")
            self.weights = w / w.sum()
        else:
            self.weights = torch.full((len(bg),), 1.0 / len(bg), dtype=torch.float64)
        if summarize is not None and summarize < len(bg):
            bg, self.weights = summarize_background(self.net, bg, summarize, weights=self.weights)
        self.background = bg
        self.bg_outputs = self._outputs(bg)  # [k, C] float64
        given = list(background) if summarize is None and isinstance(background, (list, tuple)) else []
        texts = given if given and all(isinstance(t, str) for t in given) else None
        check_finite(None, self.bg_outputs.numpy(), name="background row", texts=texts)
        self.expected_value = (self.weights[:, None] * self.bg_outputs).sum(0).numpy()
        self.n_outputs = self.bg_outputs.shape[1]
        # Dry run of one input: an unsupported operation fails here, before any real work; it
        # also measures how much memory a pair takes.
        self.pair_bytes_ = self._measure(bg[:1])

    @property
    def method_name(self) -> str:
        return "deepshap" if len(self.background) > 1 else "deeplift"

    # -- inputs ---------------------------------------------------------------------------
    def _prepare(self, x, name: str) -> torch.Tensor:
        x = super()._prepare(x, name)
        if x.is_floating_point() and self.dtype is not None:
            x = x.to(self.dtype)
        if name != "background":
            bg = self._background_for(x)
            if x.shape[1:] != bg.shape[1:]:
                raise ValueError(f"{name} has shape {tuple(x.shape)} but the background rows are {tuple(bg.shape[1:])}")
        return x

    def _background_for(self, x: torch.Tensor) -> torch.Tensor:
        """The background rows that ``x`` will be explained against."""
        return self.background

    # -- the work ---------------------------------------------------------------------------
    def _measure(self, x: torch.Tensor, refs: int = 16) -> int:
        """Explain ``x`` ``[1, T]`` against the first ``refs`` background rows, counting the bytes
        of every module output over the stacked rows; returns the estimated bytes per pair."""
        bg = self.background[:refs]
        rows, me, seen = 2 * len(bg), threading.get_ident(), [0]

        def count(_m, _inp, out):
            if threading.get_ident() != me:
                return
            with torch._C.DisableTorchFunction():  # sizes, not operations for the op checker
                for t in torch.utils._pytree.tree_leaves(out):
                    if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == rows:
                        seen[0] += t.numel() * t.element_size()

        # A global hook: the explained modules are swapped for explicit ones during the pass.
        handle = nn.modules.module.register_module_forward_hook(count)
        try:
            self._attribute_chunk(x, bg, self.weights[: len(bg)], check=False)
        finally:
            handle.remove()
        return max(1, ACTIVATION_FACTOR * seen[0] // len(bg))

    def _pairs_per_chunk(self) -> int:
        if self.batch_pairs is not None:
            return self.batch_pairs
        return max(1, MEMORY_BUDGET // self.pair_bytes_)

    def _attribute(self, x: torch.Tensor) -> np.ndarray:
        """DeepSHAP values ``[n, T, C]`` (float64) for prepared inputs ``x``: chunks of whole
        inputs when the background fits a chunk, else one input at a time against slices of it."""
        bg, w = self.background, self.weights
        k, pairs = len(bg), self._pairs_per_chunk()
        if k <= pairs:
            step = pairs // k
            return np.concatenate([self._attribute_chunk(x[i : i + step], bg, w) for i in range(0, len(x), step)])
        out = []
        for i in range(len(x)):
            out.append(
                sum(
                    self._attribute_chunk(x[i : i + 1], bg[j : j + pairs], w[j : j + pairs]) for j in range(0, k, pairs)
                )
            )
        return np.concatenate(out)

    def _attribute_chunk(
        self, x: torch.Tensor, bg: torch.Tensor, weights: torch.Tensor, check: bool = True
    ) -> np.ndarray:
        """``sum_j weights[j] * DeepLIFT(x_i; bg[j])`` ``[n, T, C]`` for inputs ``x`` ``[n, ...]``;
        ``check``: every pair's values must add up (off for the dry run, which only measures)."""
        n, k = len(x), len(bg)
        P = n * k
        stacked = torch.cat([x.repeat_interleave(k, 0), bg.repeat(n, *[1] * (bg.dim() - 1))], 0)
        with self._lock, torch.enable_grad():
            sink = TokenSink([])
            y, mode, ledger = explain_forward(self.net, stacked, self.rule, Pairing(n, k, sink), self.composite)
            leaves = [leaf for leaf in ledger.leaves if leaf.tensor.requires_grad]
            sink.leaves = [leaf.tensor for leaf in leaves]
            y = select_space(y, mode.log.logit_of, self.output)
            if not leaves or not y.requires_grad:
                raise RuntimeError("the model output does not depend on its input embeddings")
            dtype = leaves[0].tensor.dtype
            w = weights.to(dtype).view(1, k, 1)
            T = stacked.shape[1]
            phis = []
            wanted = _COLUMNS.get() or range(y.shape[1])  # one backward pass per explained output
            for j, c in enumerate(wanted):
                grads = torch.autograd.grad(
                    y[:P, c].sum(),
                    [leaf.tensor for leaf in leaves],
                    retain_graph=j < len(wanted) - 1,
                    allow_unused=True,
                    materialize_grads=False,
                )
                phi = torch.zeros(P, T, dtype=dtype)
                for g, leaf in zip(grads, leaves, strict=True):
                    if g is not None:
                        phi = phi + _credit(g, leaf, P, T)
                    direct = sink.take(leaf.tensor)  # from a recurrent layer fed by the leaf itself
                    if direct is not None:
                        phi = phi + direct
                if check:
                    _check_pairs(phi, y[:P, c].detach() - y[P:, c].detach(), self.net)
                phis.append((phi.view(n, k, -1) * w).sum(1).double())
        return torch.stack(phis, -1).detach().numpy()

    # -- public API -------------------------------------------------------------------------
    def shap_values(self, X, check_additivity: bool = True) -> np.ndarray:
        """Per-token attributions, ``np.ndarray [n, T, outputs]`` (shap 0.51's layout for one
        input: outputs last, also when there is one output). ``check_additivity`` raises
        :class:`AdditivityError` with the size of the miss when they do not add up; NaN or
        infinity in f(x) or the attributions raises :class:`NonFiniteError` either way."""
        x = self._prepare(X, "X")
        phi = self._attribute(x)
        fx, self.last_errors_ = self._outputs_and_errors(x, phi)
        check_finite(phi, fx, self.expected_value)
        if check_additivity:
            tol = 1e-5 if (self.dtype == torch.float64 or x.dtype == torch.float64) else 1e-4
            worst = float(self.last_errors_.max())
            if worst > tol:
                row = int(self.last_errors_.max(1).argmax())
                raise AdditivityError(
                    f"attributions miss f(x) - E[f(background)] by {worst:.3g} (row {row}; tolerance {tol:g})"
                )
        return phi

    def completeness_errors(self, x: torch.Tensor, phi: np.ndarray) -> np.ndarray:
        """``|sum_t phi - (f(x) - expected_value)|`` per row and output, ``[n, C]``."""
        return self._outputs_and_errors(x, phi)[1]

    def _outputs_and_errors(self, x: torch.Tensor, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f(x) ``[n, C]`` from the unrewritten model, completeness errors ``[n, C]``)."""
        fx = self._outputs(x).numpy()
        return fx, np.abs(phi.sum(1) - (fx - self.expected_value[None, :]))

    def _values(self, x: torch.Tensor, output_index: int) -> tuple[np.ndarray, np.ndarray]:
        token = _COLUMNS.set((output_index,))  # only the explained class's backward pass
        try:
            phi = self._attribute(x)[:, :, 0]
        finally:
            _COLUMNS.reset(token)
        return phi, np.full(len(x), float(self.expected_value[output_index]))


def _credit(g: torch.Tensor, leaf, P: int, T: int) -> torch.Tensor:
    """``m * Δ`` of one input feature, summed to its token positions ``[P, T]``."""
    e = leaf.tensor.detach()
    if leaf.bdim:
        g, e = g.movedim(leaf.bdim, 0), e.movedim(leaf.bdim, 0)
    d = (g[:P] * (e[:P] - e[P:])).movedim(leaf.pos_dim, 1)
    return d.reshape(P, T, -1).sum(-1)


def _check_pairs(phi: torch.Tensor, delta: torch.Tensor, net: nn.Module) -> None:
    """Every (input, reference) pair's values must add up to its output difference: the exact
    rules guarantee it up to rounding, so a larger miss means an operation the tracer paired
    wrongly, or arithmetic that overflows. Refuse rather than show numbers that do not add up
    (non-finite numbers are left to :func:`check_finite`, which names them)."""
    if not (bool(torch.isfinite(phi).all()) and bool(torch.isfinite(delta).all())):
        return
    miss = (phi.sum(1) - delta).abs()
    tol = (1e-6 if phi.dtype == torch.float64 else 1e-3) * delta.abs().clamp_min(1.0)
    if bool((miss > tol).any()):
        raise AdditivityError(
            f"the DeepLIFT rules did not add up on {type(net).__name__}: an input-reference pair misses its "
            f"output difference by {float(miss.max()):.3g}. Either the arithmetic loses precision (weights that "
            "saturate every unit: try dtype=torch.float64), or an operation mixes inputs and references in a way "
            "the tracer did not recognize (an in-place update whose result is not used, a reshape of the batch "
            "dim); nothing is shown"
        )


# The outputs `_attribute` differentiates, in this thread/context: all (None) for shap_values, one
# for an explanation of one class. A context variable, not an argument, keeps the chunking code as is.
_COLUMNS: ContextVar[tuple[int, ...] | None] = ContextVar("seqshap_explained_columns", default=None)


class DeepLift(DeepExplainer):
    """Single-reference DeepLIFT: one reference row, by default the empty text as the model's
    tokenizer writes it (its :class:`~seqshap.data.layout.TokenLayout`'s empty row: natively the
    start token alone, else ``[CLS] [SEP]`` or ``<s> </s>``; then padding).

    Without ``reference`` the row has the model's ``maxlen`` (or ``maxlen``); a bare ``nn.Module``
    without either gets the empty row of the first input's length. ``layout``: which positions are
    words (default: the model's tokenizer's; the native one for a bare ``nn.Module``).
    ``reference_`` says which row was used.
    """

    name = "deeplift"

    def __init__(self, model, reference=None, maxlen: int | None = None, layout: TokenLayout | None = None, **kwargs):
        own = layout_of(model, layout)
        T = maxlen or getattr(model, "maxlen", None)
        self.reference_ = "given" if reference is not None else "the empty text"
        self._own_layout = own
        self._deferred: tuple | None = None
        if reference is None and T is not None:
            reference = torch.from_numpy(own.empty_row(int(T)))[None]
        super().__init__(model, reference, **kwargs)
        self.layout = own

    def _set_background(self, background, weights, summarize) -> None:
        if background is None:  # no length known yet: set on first use
            self._deferred = (weights, summarize)
            return
        try:
            super()._set_background(background, weights, summarize)
        except NonFiniteError as e:
            if self.reference_ == "given":
                raise
            raise NonFiniteError(
                f"DeepLIFT's default reference, the empty text as the tokenizer writes it (ids "
                f"{_row_summary(background[0])}), gives this model no number ({e.reason}). Give "
                "DeepLift(reference=...) a neutral text, or explain against real texts with DeepExplainer",
                row=e.row,
                reason=e.reason,
            ) from None

    def _background_for(self, x: torch.Tensor) -> torch.Tensor:
        if self._deferred is not None:
            with self._lock:
                if self._deferred is not None:
                    empty = torch.from_numpy(self._own_layout.empty_row(x.shape[1]))[None]
                    self._set_background(empty, *self._deferred)
                    self._deferred = None
        return self.background


def _row_summary(row: torch.Tensor) -> str:
    """One row of ids, runs collapsed: ``[0 x79, 1]``."""
    runs = [(k, len(list(g))) for k, g in itertools.groupby(row.tolist())]
    return "[" + ", ".join(f"{k} x{n}" if n > 1 else str(k) for k, n in runs) + "]"


@torch.no_grad()
def summarize_background(
    net: nn.Module,
    background: torch.Tensor,
    k: int,
    weights: torch.Tensor | None = None,
    iters: int = 25,
    seed: int = 0,
    layout: TokenLayout | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted k-means over the background's mean token embeddings (padding left out: ``layout``'s
    pad id, by default the model's own ``pad_id`` or else the native tokenizer's); returns the ``k``
    real rows nearest the centroids and their cluster weights (so the expected value is kept close)."""
    POSITIVE.check("summarize", k)
    n = len(background)
    w = weights if weights is not None else torch.full((n,), 1.0 / n, dtype=torch.float64)
    if background.is_floating_point():
        feats = background.mean(1).double()
    else:
        emb = token_embedding(net)
        if emb is None:
            raise TypeError("summarizing a background of token ids needs a model with an nn.Embedding")
        pad = layout.pad_id if layout is not None else getattr(net, "pad_id", NATIVE.pad_id)
        mask = (background != pad).unsqueeze(-1).double()
        feats = (F.embedding(background, emb.weight).double() * mask).sum(1) / mask.sum(1).clamp(min=1)
    g = torch.Generator().manual_seed(seed)
    centers = feats[torch.randperm(n, generator=g)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(feats, centers).argmin(1)
        for c in range(k):
            members = assign == c
            if members.any():
                centers[c] = (feats[members] * w[members, None]).sum(0) / w[members].sum()
    assign = torch.cdist(feats, centers).argmin(1)
    rows, cw = [], []
    for c in range(k):
        members = (assign == c).nonzero().flatten()
        if len(members) == 0:
            continue
        best = members[torch.cdist(feats[members], centers[c : c + 1]).flatten().argmin()]
        rows.append(int(best))
        cw.append(float(w[members].sum()))
    cw_t = torch.tensor(cw, dtype=torch.float64)
    return background[rows], cw_t / cw_t.sum()
