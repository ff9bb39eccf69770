"""DeepExplainer: exact DeepSHAP for text models, with shap's interface and more.

For an input ``x`` and background rows ``r_1..r_k`` (weights ``w_j``, uniform by default)

    phi_t(x) = sum_j w_j * DeepLIFT_t(x; r_j),       sum_t phi_t = f(x) - sum_j w_j f(r_j)

where DeepLIFT multipliers come from the rules in :mod:`.rules` and :mod:`.recurrent`
and attributions are summed over the embedding dimension, one value per token.
"""
from __future__ import annotations

import copy
import threading
import weakref
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .explanation import Explanation
from .pairs import Pairing, TokenSink
from .rules import ProductRule
from .tracer import SquashRecorder, check_modules, explain_forward, feature_modules

OUTPUT_SPACES = ("probability", "logit", "raw")

# Explaining rewrites the model's module tree for the duration of a call, so every explainer
# of the same nn.Module (the web server may hold several) must take turns on it.
_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(net: nn.Module) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(net, threading.RLock())


class AdditivityError(AssertionError):
    """The attributions do not add up to f(x) - E[f(background)]."""


def _select_space(out: torch.Tensor, lookup, space: str) -> torch.Tensor:
    """The explained quantity ``[batch, outputs]`` from the model output."""
    hit = lookup(out)
    if space == "logit":
        if hit is None:
            raise ValueError("output='logit' needs a model whose output comes straight from a sigmoid or "
                             "softmax; this model's output does not (use output='raw')")
        out = hit[1]
    elif space == "probability" and hit is None:
        raise ValueError("output='probability' needs a model whose output comes straight from a sigmoid or "
                         "softmax; this model's output does not (use output='raw' to explain it as it is)")
    return out.unsqueeze(1) if out.dim() == 1 else out


def _as_ids_or_embeddings(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be token ids [n, T] (LongTensor/ndarray), float embeddings "
                        f"[n, T, E], or a list of texts; got {type(x).__name__}")
    if x.is_floating_point():
        if x.dim() != 3:
            raise ValueError(f"{name}: float embeddings must be [n, T, E], got shape {tuple(x.shape)}")
    else:
        if x.dim() != 2:
            raise ValueError(f"{name}: token ids must be [n, T], got shape {tuple(x.shape)}")
        x = x.long()
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x


class DeepExplainer:
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
    batch_pairs: how many (input, background) pairs go through the model at once (bounds memory).
    """

    def __init__(self, model, background, output: str = "probability", product_rule: str = "shapley",
                 dtype: torch.dtype | None = None, summarize: int | None = None,
                 weights: Sequence[float] | None = None, batch_pairs: int = 2000):
        from ..store import SeqshapModel
        self.model = model if isinstance(model, SeqshapModel) else None
        net = model.net if self.model is not None else model
        if not isinstance(net, nn.Module):
            raise TypeError(f"model must be an nn.Module or a SeqshapModel, got {type(model).__name__}")
        if output not in OUTPUT_SPACES:
            raise ValueError(f"unknown output {output!r}; choose one of {OUTPUT_SPACES}")
        check_modules(net)
        self.output, self.rule, self.batch_pairs = output, ProductRule(product_rule), int(batch_pairs)
        self.dtype = dtype
        self.net = copy.deepcopy(net).to(dtype) if dtype is not None else net
        self._lock = model_lock(self.net)
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
        self.bg_outputs = self._outputs(bg)                               # [k, C] float64
        self.expected_value = (self.weights[:, None] * self.bg_outputs).sum(0).numpy()
        self.n_outputs = self.bg_outputs.shape[1]
        # Dry run on one pair: an unsupported operation fails here, before any real work.
        self._attribute(bg[:1])

    # -- inputs ---------------------------------------------------------------------------
    def _prepare(self, x, name: str) -> torch.Tensor:
        if isinstance(x, str):
            raise TypeError(f"{name}: pass a list of texts, not a single str")
        if isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x):
            if self.model is None:
                raise TypeError(f"{name} given as texts needs a seqshap model (seqshap.load(...)), "
                                f"not a bare nn.Module; pass token ids instead")
            empty = [i for i, t in enumerate(x) if not t.strip()]
            if empty:
                raise ValueError(f"{name}: text {empty[0]} is empty")
            x = self.model.encode(list(x))
        x = _as_ids_or_embeddings(x, name)
        if not x.is_floating_point():
            for emb in self._embeddings():
                if x.numel() and (x.min() < 0 or x.max() >= emb.num_embeddings):
                    bad = x[(x < 0) | (x >= emb.num_embeddings)].unique()[:5].tolist()
                    raise ValueError(f"{name}: unknown word ids {bad}; the model's embedding has ids "
                                     f"0..{emb.num_embeddings - 1}")
            if not self._embeddings():
                raise TypeError(f"{name}: token ids need a model with an nn.Embedding; pass float "
                                f"embeddings [n, T, E] instead")
        elif self.dtype is not None:
            x = x.to(self.dtype)
        if hasattr(self, "background") and x.shape[1:] != self.background.shape[1:]:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but the background rows are "
                             f"{tuple(self.background.shape[1:])}")
        return x

    def _embeddings(self) -> list[nn.Embedding]:
        # The token embedding (the first one): position or type embeddings are not indexed by ids.
        return [m for m in self.net.modules() if isinstance(m, nn.Embedding)][:1]

    @torch.no_grad()
    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Plain forward of the (unrewritten) model in the explained space -> float64 ``[n, C]``."""
        outs = []
        with self._lock:
            was = self.net.training
            self.net.eval()
            try:
                for i in range(0, len(x), 1024):
                    with SquashRecorder() as rec:
                        out = self.net(x[i:i + 1024])
                    outs.append(_select_space(out, rec.log.logit_of, self.output).double())
            finally:
                self.net.train(was)
        return torch.cat(outs)

    # -- the work ---------------------------------------------------------------------------
    def _attribute(self, x: torch.Tensor) -> np.ndarray:
        """DeepSHAP values ``[n, T, C]`` (float64) for prepared inputs ``x``."""
        k = len(self.background)
        chunk = max(1, self.batch_pairs // k)
        out = []
        for i in range(0, len(x), chunk):
            out.append(self._attribute_chunk(x[i:i + chunk]))
        return np.concatenate(out)

    def _attribute_chunk(self, x: torch.Tensor) -> np.ndarray:
        n, k, bg = len(x), len(self.background), self.background
        P = n * k
        stacked = torch.cat([x.repeat_interleave(k, 0), bg.repeat(n, *[1] * (bg.dim() - 1))], 0)
        captured: list[torch.Tensor] = []
        if stacked.is_floating_point():
            stacked = stacked.detach().requires_grad_(True)
            captured.append(stacked)

        def grab(_m, inp, out):
            # Only per-row features are inputs to attribute (an embedding of ids, the padding
            # mask); a position embedding is the same for every row: a constant.
            if not (inp and isinstance(inp[0], torch.Tensor) and inp[0].dim() >= 2
                    and inp[0].shape[0] == stacked.shape[0] and out.dim() >= 2):
                return None
            out = out.detach().requires_grad_(True)
            captured.append(out)
            return out
        handles = [m.register_forward_hook(grab) for m in feature_modules(self.net)]
        try:
            with self._lock, torch.enable_grad():
                sink = TokenSink(captured)
                y, mode = explain_forward(self.net, stacked, self.rule, Pairing(n, k, sink))
                y = _select_space(y, mode.log.logit_of, self.output)
                if not captured or not y.requires_grad:
                    raise RuntimeError("the model output does not depend on its input embeddings")
                w = self.weights.to(captured[0].dtype).view(1, k, 1)
                phis = []
                for c in range(y.shape[1]):
                    grads = torch.autograd.grad(y[:P, c].sum(), captured, retain_graph=c < y.shape[1] - 1,
                                                allow_unused=True, materialize_grads=False)
                    phi = 0
                    for g, e in zip(grads, captured):
                        if g is not None:
                            phi = phi + (g[:P] * (e[:P] - e[P:])).reshape(P, e.shape[1], -1).sum(-1)
                        direct = sink.take(e)       # from a recurrent layer fed by e itself
                        if direct is not None:
                            phi = phi + direct
                    phis.append((phi.view(n, k, -1) * w).sum(1).double())
        finally:
            for h in handles:
                h.remove()
        return torch.stack(phis, -1).detach().numpy()

    # -- public API -------------------------------------------------------------------------
    def shap_values(self, X, check_additivity: bool = True) -> np.ndarray:
        """Per-token attributions, ``np.ndarray [n, T, outputs]`` (shap 0.51's layout for one
        input: outputs last, also when there is one output). ``check_additivity`` raises
        :class:`AdditivityError` with the size of the miss when they do not add up."""
        x = self._prepare(X, "X")
        phi = self._attribute(x)
        self.last_errors_ = self.completeness_errors(x, phi)
        if check_additivity:
            tol = 1e-5 if (self.dtype == torch.float64 or x.dtype == torch.float64) else 1e-4
            worst = float(self.last_errors_.max())
            if worst > tol:
                row = int(self.last_errors_.max(1).argmax())
                raise AdditivityError(f"attributions miss f(x) - E[f(background)] by {worst:.3g} "
                                      f"(row {row}; tolerance {tol:g})")
        return phi

    def completeness_errors(self, x: torch.Tensor, phi: np.ndarray) -> np.ndarray:
        """``|sum_t phi - (f(x) - expected_value)|`` per row and output, ``[n, C]``."""
        return self._outputs_and_errors(x, phi)[1]

    def _outputs_and_errors(self, x: torch.Tensor, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f(x) ``[n, C]`` from the unrewritten model, completeness errors ``[n, C]``)."""
        fx = self._outputs(x).numpy()
        return fx, np.abs(phi.sum(1) - (fx - self.expected_value[None, :]))

    def explain(self, texts_or_ids, labels: Sequence[int] | None = None,
                output_index: int = 0) -> list[Explanation]:
        """One :class:`Explanation` per input (texts need a SeqshapModel)."""
        texts = list(texts_or_ids) if isinstance(texts_or_ids, (list, tuple)) and texts_or_ids \
            and isinstance(texts_or_ids[0], str) else None
        encodings = None
        if texts is not None and self.model is not None:
            self._prepare(texts, "texts_or_ids")   # the checks and messages for texts
            encodings = self.model.encodings(texts)
            x = _as_ids_or_embeddings(torch.tensor([e.ids for e in encodings]), "texts_or_ids")
        else:
            x = self._prepare(texts_or_ids, "texts_or_ids")
        phi = self._attribute(x)
        fx, err = self._outputs_and_errors(x, phi)
        classes = self.model.classes if self.model is not None else None
        # A one-output model in probability/logit space explains its positive (last) class.
        name = classes[-1] if classes and self.n_outputs == 1 and self.output != "raw" else None
        out = []
        for i in range(len(x)):
            ids = x[i].tolist() if not x.is_floating_point() else list(range(x.shape[1]))
            enc = encodings[i] if encodings is not None else None
            if enc is not None:
                tokens = list(enc.tokens)
            elif self.model is not None and not x.is_floating_point():
                tokens = self.model.tokens(ids)
            else:
                tokens = [f"#{t}" for t in ids]
            out.append(Explanation(
                tokens=tokens, ids=ids, values=phi[i, :, output_index],
                base_value=float(self.expected_value[output_index]), output_value=float(fx[i, output_index]),
                completeness_error=float(err[i, output_index]), output_space=self.output,
                model_name=self.model.name if self.model is not None else type(self.net).__name__,
                method="deepshap" if len(self.background) > 1 else "deeplift", output_index=output_index,
                text=texts[i] if texts else None, label=None if labels is None else int(labels[i]),
                spans=enc.spans if enc is not None else None, word_ids=enc.word_ids if enc is not None else None,
                classes=classes if name is not None else None, output_name=name))
        return out


class DeepLift(DeepExplainer):
    """Single-reference DeepLIFT: one reference row (default: all padding, id 0)."""

    def __init__(self, model, reference=None, maxlen: int | None = None, **kwargs):
        if reference is None:
            T = maxlen or getattr(model, "maxlen", None)
            if T is None:
                raise ValueError("DeepLift needs a reference row or maxlen for the all-padding reference")
            reference = torch.zeros(1, T, dtype=torch.long)
        super().__init__(model, reference, **kwargs)


@torch.no_grad()
def summarize_background(net: nn.Module, background: torch.Tensor, k: int, weights: torch.Tensor | None = None,
                         iters: int = 25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted k-means over the background's mean word embeddings; returns the ``k`` real rows
    nearest the centroids and their cluster weights (so the expected value is kept close)."""
    if k < 1:
        raise ValueError(f"summarize must be >= 1, got {k}")
    n = len(background)
    w = weights if weights is not None else torch.full((n,), 1.0 / n, dtype=torch.float64)
    if background.is_floating_point():
        feats = background.mean(1).double()
    else:
        emb = next((m for m in net.modules() if isinstance(m, nn.Embedding)), None)
        mask = (background != 0).unsqueeze(-1).double()
        feats = (emb(background).double() * mask).sum(1) / mask.sum(1).clamp(min=1)
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
        best = members[torch.cdist(feats[members], centers[c:c + 1]).flatten().argmin()]
        rows.append(int(best))
        cw.append(float(w[members].sum()))
    cw_t = torch.tensor(cw, dtype=torch.float64)
    return background[rows], cw_t / cw_t.sum()
