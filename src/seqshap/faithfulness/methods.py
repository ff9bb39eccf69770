"""Attribution methods behind one interface, each giving the same :class:`Explanation`.

Every method explains the model's output column 0 (the positive-class probability for
seqshap models) for token ids ``[n, T]`` and returns one value per position ``[n, T]``.

The *players* are the visible words (ids other than padding 0 and start 1). "A word is
absent" means it is replaced by padding in place, which is what occlusion, Shapley (exact
and sampled) and IG's baseline use, so their totals all equal ``f(x) - f(x without its
words)``. DeepSHAP is relative to its background, DeepLIFT to the all-padding row.

=================  =========  ==========================================================
name               additive   what it is
=================  =========  ==========================================================
deepshap           yes        :class:`DeepExplainer` over a background (ours)
deeplift           yes        single-reference DeepLIFT (all padding)
gradxinput         no         gradient x embedding, summed over the embedding dim
ig                 yes*       Integrated Gradients over the embeddings (Gauss-Legendre),
                              ``completeness_error`` is its convergence delta
occlusion          no         leave-one-out: ``f(x) - f(x with word t padded)``
exact-shapley      yes        all ``2^p`` coalitions of the ``p <= 14`` visible words
sampling-shapley   yes        permutation sampling (antithetic pairs), seeded
random             no         seeded N(0, 1) on visible words: the floor to beat
=================  =========  ==========================================================
"""
from __future__ import annotations

import contextlib
import math
import zlib
from typing import ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from ..attribution.explanation import Explanation
from ..data.tokenize import PAD, START

OUTPUT_SPACES = ("probability", "raw")


class TooManyPlayersError(ValueError):
    """An input has more visible words than exact enumeration allows."""


def visible_mask(ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """Boolean ``[..., T]``: positions holding a word (not padding, not the start token)."""
    ids = np.asarray(ids)
    return (ids != PAD) & (ids != START)


def _as_ids(x, name: str = "ids") -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.dim() != 2:
        raise TypeError(f"{name} must be integer token ids [n, T]; got "
                        f"{type(x).__name__}{tuple(x.shape) if hasattr(x, 'shape') else ''}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x.long()


@contextlib.contextmanager
def _eval_mode(net: nn.Module):
    """Dropout off while explaining; the caller's train/eval flag comes back afterwards."""
    was = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was)


class Method:
    """Common interface. Subclasses implement :meth:`_attribute`.

    ``model`` is a :class:`seqshap.SeqshapModel` or an ``nn.Module`` mapping ids ``[n, T]``
    (and, for gradient methods, float embeddings ``[n, T, E]``) to ``[n, outputs]``.
    """
    name: ClassVar[str] = "method"
    additive: ClassVar[bool] = False   # do values sum to f(x) - base?
    stochastic: ClassVar[bool] = False

    def __init__(self, model, output: str = "probability", batch_size: int = 512):
        from ..store import SeqshapModel
        self.model = model if isinstance(model, SeqshapModel) else None
        self.net = model.net if self.model is not None else model
        if not isinstance(self.net, nn.Module):
            raise TypeError(f"model must be an nn.Module or a SeqshapModel, got {type(model).__name__}")
        if output not in OUTPUT_SPACES:
            raise ValueError(f"unknown output {output!r}; choose one of {OUTPUT_SPACES}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.output, self.batch_size = output, int(batch_size)

    # -- model access -----------------------------------------------------------------------
    @property
    def embedding(self) -> nn.Embedding:
        emb = next((m for m in self.net.modules() if isinstance(m, nn.Embedding)), None)
        if emb is None:
            raise TypeError(f"{self.name} needs a model with an nn.Embedding")
        return emb

    @torch.no_grad()
    def predict(self, ids: torch.Tensor) -> np.ndarray:
        """Output column 0 for ids ``[m, T]`` -> float64 ``[m]`` (batched)."""
        ids = torch.as_tensor(ids).long()
        outs = []
        with _eval_mode(self.net):
            for i in range(0, len(ids), self.batch_size):
                y = self.net(ids[i:i + self.batch_size])
                outs.append((y if y.dim() == 1 else y[:, 0]).double())
        return torch.cat(outs).numpy() if outs else np.zeros(0)

    def _forward_embeddings(self, e: torch.Tensor) -> torch.Tensor:
        """Output column 0 ``[m]`` for embeddings ``[m, T, E]`` (with autograd)."""
        y = self.net(e)
        return y if y.dim() == 1 else y[:, 0]

    # -- the interface ----------------------------------------------------------------------
    def _attribute(self, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[n, T]`` and base values ``[n]`` (NaN where the method has none)."""
        raise NotImplementedError

    def attribute(self, ids) -> np.ndarray:
        """Per-token attributions ``[n, T]`` (float64)."""
        return self._attribute(_as_ids(ids))[0]

    def explain(self, texts_or_ids, labels: Sequence[int] | None = None) -> list[Explanation]:
        """One :class:`Explanation` per input (texts need a SeqshapModel)."""
        texts = None
        if isinstance(texts_or_ids, (list, tuple)) and texts_or_ids and isinstance(texts_or_ids[0], str):
            if self.model is None:
                raise TypeError("texts need a seqshap model (seqshap.load(...)); pass token ids instead")
            texts = list(texts_or_ids)
            texts_or_ids = self.model.encode(texts)
        ids = _as_ids(texts_or_ids)
        values, base = self._attribute(ids)
        fx = self.predict(ids)
        out = []
        for i in range(len(ids)):
            row = ids[i].tolist()
            tokens = self.model.tokens(row) if self.model is not None else [f"#{t}" for t in row]
            err = abs(values[i].sum() - (fx[i] - base[i])) if self.additive and np.isfinite(base[i]) \
                else float("nan")
            out.append(Explanation(
                tokens=tokens, ids=row, values=values[i], base_value=float(base[i]), output_value=float(fx[i]),
                completeness_error=float(err), output_space=self.output,
                model_name=self.model.name if self.model is not None else type(self.net).__name__,
                method=self.name, text=texts[i] if texts else None,
                label=None if labels is None else int(labels[i])))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ---- DeepSHAP / DeepLIFT ---------------------------------------------------------------------
class DeepShapMethod(Method):
    """:class:`~seqshap.attribution.DeepExplainer` over ``background`` (ids ``[k, T]`` or texts)."""
    name, additive = "deepshap", True

    def __init__(self, model, background, output: str = "probability", summarize: int | None = None, **kw):
        super().__init__(model, output, **kw)
        from ..attribution import DeepExplainer
        self.explainer = DeepExplainer(model, background, output=output, summarize=summarize)

    def _attribute(self, ids):
        phi = self.explainer.shap_values(ids, check_additivity=False)[:, :, 0]
        return phi, np.full(len(ids), float(self.explainer.expected_value[0]))


class DeepLiftMethod(Method):
    """Single-reference DeepLIFT; the reference defaults to the all-padding row."""
    name, additive = "deeplift", True

    def __init__(self, model, reference=None, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        self.reference = reference
        self._by_len: dict[int, object] = {}

    def _explainer(self, T: int):
        # The default reference is built per sequence length, so nn.Modules without maxlen work.
        if T not in self._by_len:
            from ..attribution import DeepLift
            src = self.model if self.model is not None else self.net
            ref = self.reference if self.reference is not None else torch.zeros(1, T, dtype=torch.long)
            self._by_len[T] = DeepLift(src, reference=ref, output=self.output)
        return self._by_len[T]

    def _attribute(self, ids):
        ex = self._explainer(ids.shape[1])
        phi = ex.shap_values(ids, check_additivity=False)[:, :, 0]
        return phi, np.full(len(ids), float(ex.expected_value[0]))


# ---- gradients ---------------------------------------------------------------------------------
class GradXInput(Method):
    """``sum_E grad_e f(x) * e`` at every position (embedding-level gradient x input)."""
    name = "gradxinput"

    def _attribute(self, ids):
        out = []
        with _eval_mode(self.net), torch.enable_grad():
            for i in range(0, len(ids), self.batch_size):
                e = self.embedding(ids[i:i + self.batch_size]).detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self._forward_embeddings(e).sum(), e)
                out.append((g * e).sum(-1).double().detach())
        return torch.cat(out).numpy(), np.full(len(ids), np.nan)


class IntegratedGradients(Method):
    """IG over the embeddings from the baseline "every word replaced by padding".

    The path integral uses ``steps``-point Gauss-Legendre quadrature (exact for polynomial
    paths of degree ``2*steps - 1``, so it converges much faster than a Riemann sum).
    ``completeness_error`` = convergence delta ``|sum_t phi_t - (f(x) - f(baseline))|``.
    """
    name, additive = "ig", True

    def __init__(self, model, steps: int = 32, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        nodes, weights = np.polynomial.legendre.leggauss(int(steps))
        self.alphas = torch.tensor((nodes + 1) / 2)      # [S] in (0, 1)
        self.weights = torch.tensor(weights / 2)         # [S], sum 1
        self.steps = int(steps)
        self.last_deltas_: np.ndarray | None = None

    @staticmethod
    def baseline_ids(ids: torch.Tensor) -> torch.Tensor:
        """``ids`` with every visible word replaced by padding (start token kept)."""
        return torch.where(torch.from_numpy(visible_mask(ids)), torch.full_like(ids, PAD), ids)

    def _attribute(self, ids):
        base_ids = self.baseline_ids(ids)
        S, rows = self.steps, max(1, self.batch_size // self.steps)
        phis = []
        with _eval_mode(self.net), torch.enable_grad():
            for i in range(0, len(ids), rows):
                x, x0 = self.embedding(ids[i:i + rows]).detach(), self.embedding(base_ids[i:i + rows]).detach()
                a = self.alphas.to(x.dtype).view(1, S, 1, 1)
                path = (x0[:, None] + a * (x - x0)[:, None]).reshape(-1, *x.shape[1:]).requires_grad_(True)
                (g,) = torch.autograd.grad(self._forward_embeddings(path).sum(), path)
                avg = (g.view(len(x), S, *x.shape[1:]) * self.weights.to(x.dtype).view(1, S, 1, 1)).sum(1)
                phis.append((avg * (x - x0)).sum(-1).double().detach())
        phi = torch.cat(phis).numpy()
        base = self.predict(base_ids)
        self.last_deltas_ = np.abs(phi.sum(1) - (self.predict(ids) - base))
        return phi, base


# ---- perturbation ------------------------------------------------------------------------------
class Occlusion(Method):
    """Leave-one-out: ``phi_t = f(x) - f(x with word t replaced by padding)``; 0 off words."""
    name = "occlusion"

    def _attribute(self, ids):
        vis = visible_mask(ids)
        rows, cols = np.nonzero(vis)
        occluded = ids[rows].clone()
        occluded[np.arange(len(rows)), cols] = PAD
        fx, fo = self.predict(ids), self.predict(occluded)
        phi = np.zeros(ids.shape, dtype=np.float64)
        phi[rows, cols] = fx[rows] - fo
        return phi, np.full(len(ids), np.nan)


def _shapley_weights(p: int) -> np.ndarray:
    """``w[s] = s! (p-s-1)! / p!`` for coalition sizes ``s = 0..p-1``."""
    return np.array([math.factorial(s) * math.factorial(p - s - 1) / math.factorial(p) for s in range(p)])


class ExactShapley(Method):
    """Shapley values of the game ``v(S) = mean_j f(x_S, r_j)`` by enumerating all coalitions.

    Players are the visible words (at most ``max_players``); an absent word takes the
    reference row's id at its position (default: padding). ``reference`` ``[k, T]`` with
    ``k > 1`` gives the interventional (background) game that DeepSHAP approximates.
    Cost: ``k * 2^p`` forward passes per input.
    """
    name, additive = "exact-shapley", True

    def __init__(self, model, reference=None, max_players: int = 14, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        self.reference = None if reference is None else _as_ids(reference, "reference")
        self.max_players = int(max_players)

    def n_players(self, ids) -> np.ndarray:
        return visible_mask(ids).sum(-1)

    def supports(self, ids) -> bool:
        return bool((self.n_players(ids) <= self.max_players).all())

    def _attribute(self, ids):
        phi = np.zeros(ids.shape, dtype=np.float64)
        base = np.zeros(len(ids))
        ref = self.reference if self.reference is not None else torch.zeros(1, ids.shape[1], dtype=torch.long)
        if ref.shape[1] != ids.shape[1]:
            raise ValueError(f"reference rows have length {ref.shape[1]} but the inputs have {ids.shape[1]}")
        for i in range(len(ids)):
            pos = np.flatnonzero(visible_mask(ids[i]))
            p = len(pos)
            if p > self.max_players:
                raise TooManyPlayersError(f"exact Shapley enumerates 2^p coalitions; input {i} has {p} words "
                                          f"(limit {self.max_players}); use sampling-shapley for longer inputs")
            if p == 0:
                base[i] = float(self.predict(ids[i:i + 1])[0])
                continue
            masks = np.arange(2 ** p)
            present = ((masks[:, None] >> np.arange(p)[None, :]) & 1).astype(bool)   # [2^p, p]
            # [k, 2^p, T]: row i where present, reference j where absent
            x = ids[i].expand(len(ref), 2 ** p, -1).clone()
            absent_m, absent_p = np.nonzero(~present)
            x[:, absent_m, pos[absent_p]] = ref[:, pos[absent_p]]
            v = self.predict(x.reshape(-1, x.shape[-1])).reshape(len(ref), 2 ** p).mean(0)   # [2^p]
            size = present.sum(1)
            w = _shapley_weights(p)
            for j in range(p):
                without = masks[~present[:, j]]
                phi[i, pos[j]] = float((w[size[without]] * (v[without | (1 << j)] - v[without])).sum())
            base[i] = v[0]
        return phi, base


class SamplingShapley(Method):
    """Permutation-sampling Shapley (Castro et al. 2009) with antithetic pairs.

    Each permutation adds the words one by one to the all-padding input and credits each
    word with the change it causes; a permutation and its reverse form a pair (lower
    variance). Per-permutation sums telescope, so the values add up exactly. Seeded per
    input row (a review gets the same estimate whatever batch it is in).
    Cost: ``n_permutations * (p + 1)`` forward passes per input.
    """
    name, additive, stochastic = "sampling-shapley", True, True

    def __init__(self, model, n_permutations: int = 16, seed: int = 0, output: str = "probability", **kw):
        super().__init__(model, output, **kw)
        if n_permutations < 2 or n_permutations % 2:
            raise ValueError(f"n_permutations must be an even number >= 2 (antithetic pairs), got {n_permutations}")
        self.n_permutations, self.seed = int(n_permutations), int(seed)

    def _attribute(self, ids):
        phi = np.zeros(ids.shape, dtype=np.float64)
        base = np.zeros(len(ids))
        for i in range(len(ids)):
            pos = np.flatnonzero(visible_mask(ids[i]))
            p = len(pos)
            empty = ids[i].clone()
            empty[pos] = PAD
            if p == 0:
                base[i] = float(self.predict(empty[None])[0])
                continue
            rng = np.random.default_rng(_row_seed(self.seed, ids[i]))
            half = [rng.permutation(p) for _ in range(self.n_permutations // 2)]
            perms = np.stack(half + [h[::-1] for h in half])                     # [m, p]
            m = len(perms)
            # steps[m, s, T]: after adding the first s words of permutation m (s = 0..p)
            order_rank = np.empty_like(perms)
            order_rank[np.arange(m)[:, None], perms] = np.arange(p)[None, :]     # step at which word joins
            present = order_rank[:, None, :] < np.arange(p + 1)[None, :, None]   # [m, p+1, p]
            x = empty.expand(m, p + 1, -1).clone()
            mm, ss, jj = np.nonzero(present)
            x[mm, ss, pos[jj]] = ids[i, pos[jj]]
            v = self.predict(x.reshape(-1, x.shape[-1])).reshape(m, p + 1)
            gains = np.diff(v, axis=1)                                           # [m, p], by step
            credit = np.take_along_axis(gains, order_rank, axis=1)               # [m, p], by word
            phi[i, pos] = credit.mean(0)
            base[i] = v[0, 0]
        return phi, base


class RandomBaseline(Method):
    """Seeded N(0, 1) values on the visible words, 0 elsewhere: what "no signal" scores.

    Seeded per input row from ``seed`` and the row's ids: the same seed gives the same
    values for the same review, a different seed different ones.
    """
    name, stochastic = "random", True

    def __init__(self, model, seed: int = 0, **kw):
        super().__init__(model, **kw)
        self.seed = int(seed)

    def _attribute(self, ids):
        vis = visible_mask(ids)
        phi = np.zeros(ids.shape, dtype=np.float64)
        for i in range(len(ids)):
            rng = np.random.default_rng(_row_seed(self.seed, ids[i]))
            phi[i, vis[i]] = rng.standard_normal(int(vis[i].sum()))
        return phi, np.full(len(ids), np.nan)


def _row_seed(seed: int, row: torch.Tensor) -> list[int]:
    return [seed, zlib.crc32(row.numpy().astype(np.int64).tobytes())]


# ---- registry -------------------------------------------------------------------------------------
METHODS: dict[str, type[Method]] = {m.name: m for m in (
    DeepShapMethod, DeepLiftMethod, GradXInput, IntegratedGradients, Occlusion, ExactShapley,
    SamplingShapley, RandomBaseline)}


def make_method(name: str, model, background=None, seed: int = 0, output: str = "probability",
                ig_steps: int = 32, n_permutations: int = 16, summarize: int | None = None) -> Method:
    """Build a method by name (``background`` is needed for ``deepshap``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    if name == "deepshap":
        if background is None:
            raise ValueError("deepshap needs a background (ids [k, T] or texts)")
        return DeepShapMethod(model, background, output=output, summarize=summarize)
    if name == "ig":
        return IntegratedGradients(model, steps=ig_steps, output=output)
    if name == "sampling-shapley":
        return SamplingShapley(model, n_permutations=n_permutations, seed=seed, output=output)
    if name == "random":
        return RandomBaseline(model, seed=seed, output=output)
    return METHODS[name](model, output=output)


def parse_methods(spec: str) -> list[str]:
    """``"deepshap,ig"`` -> ``["deepshap", "ig"]``, checking every name."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError("no methods given")
    bad = [n for n in names if n not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a method is listed twice in {spec!r}")
    return names
