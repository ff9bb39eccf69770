"""Other libraries' attribution methods as extra columns of the faithfulness table (benchmark only).

- ``shap-partition``: shap 0.51.0's ``PartitionExplainer`` with ``shap.maskers.Text`` (Owen values
  over shap's token hierarchy, ``max_evals`` model calls per text).
- ``captum-deepliftshap``: Captum 0.9.0's ``DeepLiftShap`` on the token embeddings (what
  ``LayerDeepLiftShap`` at the embedding computes; that one needs float inputs), against the same
  background as seqshap's DeepSHAP.
- ``captum-lig``: Captum 0.9.0's ``LayerIntegratedGradients`` at the token embedding, baseline:
  the padding token's embedding at every position (``[CLS]``/``[SEP]``/start included), Gauss-Legendre.

Each sits behind seqshap's :class:`~seqshap.attribution.Attribution` interface (``_values(ids,
output_index) -> (values [n, T], base [n])``), so :func:`seqshap.faithfulness.evaluate` scores it
on the same rows with the same metrics as seqshap's own methods. Values are per position of the
model's row: Captum's are summed over the embedding dimensions; shap's tokens are the model's
positions one to one (the native model's words through seqshap's own ``tokenize``, a Hugging Face
model's subwords), so nothing needs to be spread. seqshap itself never imports shap or Captum.

Every peer records, per explained row, its total and its own base value, and the base value of
the seqshap method that plays the same game where there is one (:attr:`Peer.seqshap_base`), for
the completeness table: ``|sum phi - (f(x) - base)|``.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
import torch

from seqshap.attribution import Attribution
from seqshap.data.layout import TokenLayout
from seqshap.data.tokenize import OOV, tokenize
from seqshap.faithfulness.evaluate import layout_of

PEERS = ("shap-partition", "captum-deepliftshap", "captum-lig")


def _key(row: torch.Tensor) -> bytes:
    return row.numpy().astype(np.int64).tobytes()


class Peer(Attribution):
    """A method from another library. ``log`` maps a row's ids to ``(sum of values, own base,
    base of seqshap's method with the same reference or NaN)`` for every row it explained."""

    additive = True
    reference: ClassVar[str] = ""  # what the base value is, in words
    seqshap_base: ClassVar[str] = ""  # which seqshap base it is also compared with

    def __init__(self, model, **kw):
        super().__init__(model, **kw)
        if self.model is None:
            raise TypeError(f"{self.name} needs a seqshap model (seqshap.load(...)): it reads the model's tokenizer")
        self.layout: TokenLayout = layout_of(self.model)
        self.log: dict[bytes, tuple[float, float, float]] = {}

    def _record(self, ids: torch.Tensor, values: np.ndarray, base: np.ndarray, seqshap_base: np.ndarray) -> None:
        for row, v, b, s in zip(ids, values, base, seqshap_base, strict=True):
            self.log[_key(row)] = (float(v.sum()), float(b), float(s))

    def completeness(self, ids: torch.Tensor, output_index: int = 0) -> dict[str, float]:
        """Median and max ``|sum phi - (f(x) - base)|`` over ``ids`` (rows it explained), against its
        own base and against :attr:`seqshap_base` (NaN where none)."""
        rows = [self.log[_key(r)] for r in ids]
        s, own, ref = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
        fx = self.predict(ids, output_index)
        miss, miss_ref = np.abs(s - (fx - own)), np.abs(s - (fx - ref))
        finite = np.isfinite(miss_ref)
        return {
            "median": float(np.median(miss)),
            "max": float(miss.max()),
            "median_vs_seqshap": float(np.median(miss_ref[finite])) if finite.any() else float("nan"),
            "max_vs_seqshap": float(miss_ref[finite].max()) if finite.any() else float("nan"),
            "n": len(rows),
        }

    def _without_words(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` with every word padded in place (markers kept): the reference of seqshap's
        occlusion / Shapley game."""
        vis = torch.from_numpy(self.layout.visible(ids.numpy()))
        return torch.where(vis, torch.full_like(ids, self.layout.pad_id), ids)


# ---- shap ---------------------------------------------------------------------------------------------
class NativeTokenizer:
    """shap's Text masker tokenizer for a native seqshap model: seqshap's own ``tokenize`` (Keras
    rules, character spans), ids from the model's vocabulary. A row of ids is rendered as its
    words joined by spaces, which this splits back into exactly those words, so shap's tokens are
    the model's word positions one to one."""

    def __init__(self, vocab):
        self.vocab = vocab

    def __call__(self, s: str, return_offsets_mapping: bool = True, **_) -> dict:
        toks = tokenize(s)
        out: dict = {"input_ids": [self.vocab.word_to_id.get(t.text, OOV) for t in toks]}
        if return_offsets_mapping:
            out["offset_mapping"] = [(t.start, t.end) for t in toks]
        return out


class RowTokenizer:
    """shap's Text masker tokenizer for a Hugging Face model: its own tokenizer, except that a text
    this adapter rendered from a row gets exactly that row's ids (``[CLS]`` subwords ``[SEP]``) and
    each subword's span, so shap's tokens are the model's positions one to one even where re-tokenizing
    the rendering would split differently (a planted word inside a word, the cut at ``maxlen``)."""

    def __init__(self, hf_tokenizer):
        self.tok = hf_tokenizer
        self.sep_token, self.sep_token_id = hf_tokenizer.sep_token, hf_tokenizer.sep_token_id
        self.rows: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}

    def __getattr__(self, name: str):
        """Everything else shap reads (``special_tokens_map``, ``decode``, ...) is the tokenizer's own."""
        if name == "tok":
            raise AttributeError(name)
        return getattr(self.tok, name)

    def render(self, ids: list[int], special: set[int]) -> str:
        """The text of a row's non-padding ids, remembered with their spans."""
        text, spans = "", []
        for i, token in zip(ids, self.tok.convert_ids_to_tokens(ids), strict=True):
            if i in special:
                spans.append((0, 0))  # where the fast tokenizer puts special tokens
                continue
            piece = token[2:] if token.startswith("##") and text else (" " if text else "") + token
            spans.append((len(text) + (piece[0] == " "), len(text) + len(piece)))
            text += piece
        self.rows[text] = (list(ids), spans)
        return text

    def __call__(self, s: str, return_offsets_mapping: bool = True, **kw) -> dict:
        if s in self.rows:
            ids, spans = self.rows[s]
            out: dict = {"input_ids": list(ids)}
            if return_offsets_mapping:
                out["offset_mapping"] = list(spans)
            return out
        return dict(self.tok(s, return_offsets_mapping=return_offsets_mapping, **kw))


class ShapPartition(Peer):
    """shap's ``PartitionExplainer`` with a ``shap.maskers.Text`` masker on the model's tokenizer.

    A masked token becomes padding in place (``mask_token`` = the pad id, ``output_type="token_ids"``):
    the same "absent word" as seqshap's occlusion and Shapley methods and the deletion metric (shap's
    default for a BERT tokenizer would be ``[MASK]``, which a model trained from scratch never saw).
    So its base value is ``f(x with every word padded)``, the reference of seqshap's Shapley game.
    """

    name = "shap-partition"
    reference = "f(x with its words padded)"
    seqshap_base = "the same, computed by seqshap"

    def __init__(self, model, max_evals: int = 500, seed: int = 0, **kw):
        super().__init__(model, **kw)
        import shap

        self.max_evals, self.seed = int(max_evals), int(seed)
        if self.layout.padding_side == "right":
            self.tokenizer: NativeTokenizer | RowTokenizer = RowTokenizer(self.model.vocab.tokenizer)
        else:
            self.tokenizer = NativeTokenizer(self.model.vocab)
        masker = shap.maskers.Text(self.tokenizer, mask_token=self.layout.pad_id, output_type="token_ids")
        self._row: tuple[torch.Tensor, np.ndarray, int] | None = None
        self.explainer = shap.PartitionExplainer(self._f, masker)

    def _f(self, masked: np.ndarray) -> np.ndarray:
        """shap's masked token ids ``[B, M]`` -> the explained output ``[B]`` of the current row with
        the masked positions padded."""
        assert self._row is not None
        row, at, out = self._row
        rows = row.repeat(len(masked), 1)
        masked = torch.as_tensor(np.asarray(masked, dtype=np.int64))
        rows[:, at] = torch.where(masked == self.layout.pad_id, torch.full_like(masked, self.layout.pad_id), row[at])
        return self.predict(rows, out)

    def _shap_tokens(self, row: torch.Tensor) -> tuple[str, np.ndarray]:
        """(the text shap explains, the row positions of its tokens in order)."""
        ids = row.numpy()
        if self.layout.padding_side == "right":
            at = np.flatnonzero(ids != self.layout.pad_id)
            text = self.tokenizer.render(ids[at].tolist(), set(self.layout.special_ids))  # type: ignore[union-attr]
        else:
            at = np.flatnonzero(self.layout.visible(ids))
            text = " ".join(self.model.tokens(ids[at]))
        n = len(self.tokenizer(text)["input_ids"])
        if n != len(at):
            raise AssertionError(f"shap's tokens ({n}) do not line up with the row's {len(at)} positions: {text!r}")
        return text, at

    def _values(self, ids, output_index):
        import shap  # noqa: F401  (the explainer was built in __init__; keep the dependency visible)

        phi = np.zeros(tuple(ids.shape), dtype=np.float64)
        base = np.zeros(len(ids))
        state = np.random.get_state()  # noqa: NPY002  (shap draws from the legacy global generator)
        try:
            for i, row in enumerate(ids):
                text, at = self._shap_tokens(row)
                self._row = (row, at, output_index)
                # shap breaks ties in its priority queue with np.random: seeded per row
                np.random.seed((self.seed * 1_000_003 + zlib.crc32(_key(row))) % 2**32)  # noqa: NPY002
                ex = self.explainer([text], max_evals=self.max_evals, batch_size=self.max_evals, silent=True)
                v = np.asarray(ex.values[0], dtype=np.float64)
                phi[i, at] = v
                base[i] = float(np.asarray(ex.base_values).reshape(-1)[0])
        finally:
            np.random.set_state(state)  # noqa: NPY002
            self._row = None
        self._record(ids, phi, base, self.predict(self._without_words(ids), output_index))
        return phi, base


# ---- Captum -------------------------------------------------------------------------------------------
class CaptumDeepLiftShap(Peer):
    """Captum's ``DeepLiftShap`` on the token embeddings against ``background`` (the same rows as
    seqshap's DeepSHAP). Captum's DeepLIFT rescales only its listed ``nn.Module`` nonlinearities
    (Sigmoid, Tanh, Softmax modules, ...): GELU, LayerNorm and the attention's functional softmax and
    products get plain gradients, so its totals need not add up."""

    name = "captum-deepliftshap"
    reference = "E f(background)"
    seqshap_base = "DeepSHAP's E f(background)"

    def __init__(self, model, background, pairs_per_batch: int = 500, **kw):
        super().__init__(model, **kw)
        self.background = self._prepare(background, "background")
        self.pairs_per_batch = int(pairs_per_batch)
        self._base: dict[int, float] = {}

    def base_value(self, output_index: int) -> float:
        if output_index not in self._base:
            self._base[output_index] = float(self.predict(self.background, output_index).mean())
        return self._base[output_index]

    def _values(self, ids, output_index):
        from captum.attr import DeepLiftShap

        rows = max(1, self.pairs_per_batch // len(self.background))
        out = []
        with self._plain(), torch.no_grad():
            # Captum's layer variant needs float inputs: feed the token embeddings themselves (the
            # models take embeddings [n, T, E]; padding is recognised as the padding row).
            bg = self.embedding(self.background)
        with self._plain():
            dls = DeepLiftShap(self.net, multiply_by_inputs=True)
            for i in range(0, len(ids), rows):
                with torch.no_grad():
                    x = self.embedding(ids[i : i + rows])
                a = dls.attribute(x, baselines=bg, target=output_index)
                out.append(a.sum(-1).double().detach())
        phi = torch.cat(out).numpy()
        base = np.full(len(ids), self.base_value(output_index))
        self._record(ids, phi, base, base)
        return phi, base


class CaptumLIG(Peer):
    """Captum's ``LayerIntegratedGradients`` at the token embedding (Gauss-Legendre, ``steps`` points).

    Baseline: the padding token's embedding at every position (start token, ``[CLS]``/``[SEP]``
    included); the rest of the network still reads the input's ids (its padding mask, its
    position and segment embeddings), as LIG patches only the layer's output. That baseline is
    no input seqshap can feed the model, so its base is compared with its own only: ``f(baseline)``
    recovered from Captum's convergence delta, ``f(x) - sum phi + delta``. Captum computes that
    delta against the forward pass of the all-padding ids, which is not the path's start whenever
    the mask matters; the table reports the miss against the path's true start, measured here.
    """

    name = "captum-lig"
    reference = "f(padding embedding everywhere, input's mask)"
    seqshap_base = ""

    def __init__(self, model, steps: int = 32, rows_per_batch: int = 512, **kw):
        super().__init__(model, **kw)
        self.steps, self.rows_per_batch = int(steps), int(rows_per_batch)
        self.captum_delta: dict[bytes, float] = {}  # Captum's own convergence delta per row

    def captum_deltas(self, ids: torch.Tensor) -> np.ndarray:
        """|Captum's convergence delta| for rows it explained (NaN where Captum's was not finite)."""
        return np.abs(np.array([self.captum_delta[_key(r)] for r in ids], dtype=np.float64))

    def _baseline_output(self, ids: torch.Tensor, output_index: int) -> np.ndarray:
        """The model at the LIG baseline: the embedding layer's output replaced by the padding row."""
        emb = self.embedding
        pad_row = emb.weight[self.layout.pad_id].detach()

        def patch(_module, _inputs, output):
            return pad_row.expand_as(output).clone()

        handle = emb.register_forward_hook(patch)
        try:
            return self.predict(ids, output_index)
        finally:
            handle.remove()

    def _values(self, ids, output_index):
        from captum.attr import LayerIntegratedGradients

        rows = max(1, self.rows_per_batch // self.steps)
        out = []
        with self._plain():
            lig = LayerIntegratedGradients(self.net, self.embedding, multiply_by_inputs=True)
            for i in range(0, len(ids), rows):
                x = ids[i : i + rows]
                a, delta = lig.attribute(
                    x,
                    baselines=torch.full_like(x, self.layout.pad_id),
                    target=output_index,
                    n_steps=self.steps,
                    method="gausslegendre",
                    internal_batch_size=self.rows_per_batch,
                    return_convergence_delta=True,
                )
                out.append(a.sum(-1).double().detach())
                for row, d in zip(x, delta.double().tolist(), strict=True):
                    self.captum_delta[_key(row)] = d
        phi = torch.cat(out).numpy()
        base = self._baseline_output(ids, output_index)
        self._record(ids, phi, base, np.full(len(ids), np.nan))
        return phi, base


def make_peers(names, model, background, *, seed: int = 0, ig_steps: int = 32, max_evals: int = 500) -> dict:
    """The named peers for ``model`` (``background``: texts or ids, for DeepLiftShap)."""
    made: dict[str, Peer] = {}
    for name in names:
        if name == "shap-partition":
            made[name] = ShapPartition(model, max_evals=max_evals, seed=seed)
        elif name == "captum-deepliftshap":
            made[name] = CaptumDeepLiftShap(model, background)
        elif name == "captum-lig":
            made[name] = CaptumLIG(model, steps=ig_steps)
        else:
            raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
    return made
