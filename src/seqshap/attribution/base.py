"""The one interface every attribution method implements, and what they all share.

A method takes a :class:`seqshap.SeqshapModel` or an ``nn.Module`` (ids ``[n, T]`` ->
``[n, outputs]``) and gives one value per token position: ``attribute(x) -> [n, T]``,
``explain(texts_or_ids) -> [Explanation]``. Subclasses implement only :meth:`Attribution._values`;
unwrapping the model, the output space, input checks, the plain forward and building
:class:`Explanation` objects live here, once.

Which positions are words is the tokenizer's answer, :class:`~seqshap.data.layout.TokenLayout`:
a method reads ``model.vocab.layout`` (native or Hugging Face), or the ``layout`` it is given; a
bare ``nn.Module`` without one gets the native tokenizer's (padding 0 in front, start token 1).
The *players* of the perturbation and Shapley methods are those words; "a word is absent" means
it is replaced by padding in place, special tokens kept (:meth:`TokenLayout.blank_words`).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
import zlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .._validation import POSITIVE
from ..data.layout import NATIVE, POSITIONS, TokenLayout
from ..data.pairs import pair
from ..data.tokenize import Encoding
from ..data.vocab import check_ids
from ..errors import NonFiniteError, NoWordsError
from .explanation import Explanation
from .tracer import SquashRecorder

# "probability": the model's sigmoid/softmax output; "logit": that squash's input; "raw": whatever it returns.
OUTPUT_SPACES = ("probability", "logit", "raw")
# Inputs named so are references (a background, a baseline): a text of no words is a fine one.
REFERENCE_INPUTS = ("background", "reference")


def _snippet(texts: Sequence[str] | None, i: int) -> str:
    """`` ("the start of text i…")`` to name an input in a message; empty without texts."""
    if not texts:
        return ""
    t = " ".join(texts[i].split())
    return f" ({t[:40]!r}{'…' if len(t) > 40 else ''})"


def check_finite(
    values: np.ndarray | None,
    outputs: np.ndarray | None = None,
    base: np.ndarray | float | None = None,
    name: str = "input",
    texts: Sequence[str] | None = None,
    base_name: str = "the mean output over the background",
) -> None:
    """Raise :class:`NonFiniteError` naming the first NaN or infinity: the model's output
    ``outputs`` ``[n]``/``[n, C]`` first (when the model itself breaks, that is the cause),
    then the base value ``base`` (scalar, ``[n]`` or ``[C]``; ``base_name`` says what it is), then
    the attributions ``values`` ``[n, T]``/``[n, T, C]``. Rows are called ``{name} i`` (with the
    start of ``texts[i]``)."""
    if outputs is not None:
        out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
        bad = np.argwhere(~np.isfinite(out))
        if len(bad):
            i, c = (int(v) for v in bad[0])
            col = f" (output {c})" if out.shape[1] > 1 else ""
            raise NonFiniteError(
                f"the model's output for {name} {i}{_snippet(texts, i)}{col} is {out[i, c]}: the model itself "
                "produces NaN or infinity here (NaN weights, weights so large the arithmetic overflows, or "
                "an input it cannot handle); nothing to explain",
                row=i,
                reason=f"its output{col} is {out[i, c]}",
            )
    if base is not None:
        b = np.atleast_1d(np.asarray(base, dtype=np.float64))
        if not np.isfinite(b).all():
            raise NonFiniteError(
                f"the base value ({base_name}) is {b[~np.isfinite(b)][0]}: the model produces NaN or infinity "
                "for that reference"
            )
    if values is not None:
        v = np.asarray(values, dtype=np.float64)
        bad = np.argwhere(~np.isfinite(v))
        if len(bad):
            i, t = int(bad[0][0]), int(bad[0][1])
            col = f", output {int(bad[0][2])}" if v.ndim > 2 and v.shape[2] > 1 else ""
            why = (
                "although the model's output is: the arithmetic overflows (weights too large for this dtype?)"
                if outputs is not None
                else "(the model's output is NaN or infinite, or the arithmetic overflows)"
            )
            raise NonFiniteError(
                f"the attributions of {name} {i}{_snippet(texts, i)} are not finite ({v[tuple(bad[0])]} at "
                f"position {t}{col}) {why}; nothing trustworthy to show",
                row=i,
                reason=f"its attributions are not finite ({v[tuple(bad[0])]} at position {t}{col})",
            )


# Explaining rewrites the model's module tree for the duration of a call, so every explainer
# of the same nn.Module (the web server may hold several) must take turns on it.
_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(net: nn.Module) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(net, threading.RLock())


def unwrap_model(model):
    """``(SeqshapModel or None, nn.Module)`` for a SeqshapModel or a bare ``nn.Module``.

    A SeqshapModel is recognised by what it has (``.net``, an ``nn.Module``, and ``.encodings``),
    not by its class: the engine does not import the model store."""
    if isinstance(model, nn.Module):
        return None, model
    net = getattr(model, "net", None)
    if not isinstance(net, nn.Module) or not callable(getattr(model, "encodings", None)):
        raise TypeError(f"model must be an nn.Module or a SeqshapModel, got {type(model).__name__}")
    return model, net


def layout_of(model, layout: TokenLayout | None = None) -> TokenLayout:
    """Which positions of ``model``'s rows are words: ``layout`` if given, else its tokenizer's
    (``model.vocab.layout``), else the native tokenizer's (a bare ``nn.Module``)."""
    if layout is not None:
        if not isinstance(layout, TokenLayout):
            raise TypeError(f"layout must be a TokenLayout, got {type(layout).__name__}")
        return layout
    own = getattr(getattr(model, "vocab", None), "layout", None)
    return own if isinstance(own, TokenLayout) else NATIVE


def check_output(output: str) -> str:
    if output not in OUTPUT_SPACES:
        raise ValueError(f"unknown output {output!r}; choose one of {OUTPUT_SPACES}")
    return output


def select_space(out: torch.Tensor, lookup, space: str) -> torch.Tensor:
    """The explained quantity ``[batch, outputs]`` from the model output (``lookup``: the squash log)."""
    hit = lookup(out)
    if space == "logit":
        if hit is None:
            raise ValueError(
                "output='logit' needs a model whose output comes straight from a sigmoid or "
                "softmax; this model's output does not (use output='raw')"
            )
        out = hit[1]
    elif space == "probability" and hit is None:
        raise ValueError(
            "output='probability' needs a model whose output comes straight from a sigmoid or "
            "softmax; this model's output does not (use output='raw' to explain it as it is)"
        )
    return out.unsqueeze(1) if out.dim() == 1 else out


def resolve_target(target: int | str, classes: Sequence[str] | None, n_outputs: int) -> int:
    """The output column that explains class ``target``: the one place a target is read.

    ``target`` is a class name (``"9"``, ``"positive"``), else a class index (an ``int``, or a
    string of digits where no class is named by a number), for a model whose outputs are
    ``classes`` (:meth:`Attribution.output_classes`); without classes it is an output column. A
    one-output (sigmoid) model's output is the probability of its last class, so only that class
    can be explained: the other's attributions are the same values with the opposite sign.
    """
    names = list(classes) if classes else None
    listed = f" (classes: {', '.join(names)})" if names else ""
    if isinstance(target, str) and names and target in names:
        index = names.index(target)
    elif isinstance(target, str) and target.strip().isdigit() and not any(n.strip().isdigit() for n in names or ()):
        index = int(target)  # "2" is a class index only where no class is named by a number
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        index = int(target)
    elif isinstance(target, str):
        hint = f"the classes are {', '.join(names)}" if names else "this model's outputs have no class names"
        raise ValueError(f"unknown target {target!r}: {hint}" + ("" if names else f" (outputs 0-{n_outputs - 1})"))
    else:
        raise TypeError(f"target must be a class name or index, got {type(target).__name__}")
    count = len(names) if names else n_outputs
    if not 0 <= index < count:
        raise ValueError(
            f"target {target!r} is out of range: the model has {count} {'classes' if names else 'outputs'}{listed}"
        )
    if names and n_outputs == 1:
        if index != len(names) - 1:
            raise ValueError(
                f"this model has one output, the probability of {names[-1]!r}; {names[index]!r} is explained by "
                f"the same attributions with the opposite sign (explain {names[-1]!r}, or train with --head softmax)"
            )
        return 0
    return index


def token_embedding(net: nn.Module) -> nn.Embedding | nn.EmbeddingBag | None:
    """The embedding that token ids index: ``net.embedding``, a Hugging Face model's input
    embeddings, else the first ``nn.Embedding`` or ``nn.EmbeddingBag`` (position and type
    embeddings are not indexed by token ids)."""
    tables = (nn.Embedding, nn.EmbeddingBag)
    emb = getattr(net, "embedding", None)
    if isinstance(emb, tables):
        return emb
    get = getattr(net, "get_input_embeddings", None)
    if callable(get) and isinstance(emb := get(), tables):
        return emb
    return next((m for m in net.modules() if isinstance(m, tables)), None)


def as_inputs(x, name: str = "ids", embeddings: bool = False) -> torch.Tensor:
    """Token ids ``[n, T]`` as a LongTensor (or, with ``embeddings``, float ``[n, T, E]``), checked."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    kinds = "token ids [n, T] (LongTensor/ndarray), " + ("float embeddings [n, T, E], " if embeddings else "")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be {kinds}or a list of texts; got {type(x).__name__}")
    if x.is_floating_point():
        if not embeddings or x.dim() == 2:
            raise TypeError(
                f"{name}: got {str(x.dtype).replace('torch.', '')} numbers of shape {tuple(x.shape)}; token ids "
                "must be integers [n, T] (convert them with .long() / .astype('int64'))"
                + ("; float inputs must be embeddings [n, T, E]" if embeddings else "")
            )
        if x.dim() != 3:
            raise ValueError(f"{name}: float embeddings must be [n, T, E], got shape {tuple(x.shape)}")
        if x.numel() and not torch.isfinite(x).all():
            row = int((~torch.isfinite(x)).flatten(1).any(1).nonzero()[0])
            raise ValueError(f"{name}: the embeddings of row {row} hold NaN or infinity")
    else:
        if x.dim() != 2:
            raise ValueError(f"{name}: token ids must be [n, T], got shape {tuple(x.shape)}")
        x = x.long()
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x


def model_dtype(net: nn.Module) -> torch.dtype:
    """The floating dtype ``net`` computes in (its token embedding's, else its first float parameter's)."""
    emb = token_embedding(net)
    if emb is not None:
        return emb.weight.dtype
    p = next((p for p in net.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.get_default_dtype()


def visible_mask(ids: np.ndarray | torch.Tensor, layout: TokenLayout = NATIVE) -> np.ndarray:
    """Boolean ``[..., T]``: positions holding a word under ``layout`` (default: the native tokenizer's)."""
    return layout.visible(ids)


def row_rng(seed: int, row: torch.Tensor) -> np.random.Generator:
    """A generator seeded by ``seed`` and the row's ids: a review gets the same draws in any batch."""
    return np.random.default_rng([seed, zlib.crc32(row.numpy().astype(np.int64).tobytes())])


class Attribution:
    """One attribution method. Subclasses set ``name`` and implement :meth:`_values`.

    ``model``: a :class:`seqshap.SeqshapModel` or an ``nn.Module`` mapping ids ``[n, T]`` (and,
    for gradient methods, float embeddings ``[n, T, E]``) to ``[n, outputs]``.
    ``output``: one of :data:`OUTPUT_SPACES`. ``batch_size``: rows per plain forward pass.
    ``layout``: which positions are words (:func:`layout_of`: by default the model's tokenizer's,
    the native one for a bare ``nn.Module``).
    """

    name: ClassVar[str] = "method"
    additive: ClassVar[bool] = False  # do values sum to f(x) - base?
    base_name: ClassVar[str] = "the mean output over the background"  # what the base value is, in messages
    stochastic: ClassVar[bool] = False
    accepts_embeddings: ClassVar[bool] = False  # float inputs [n, T, E] as well as ids

    def __init__(self, model, output: str = "probability", batch_size: int = 512, layout: TokenLayout | None = None):
        self.model, self.net = unwrap_model(model)
        self.layout = layout_of(model, layout)
        self.output = check_output(output)
        self.batch_size = POSITIVE.check("batch_size", batch_size)
        self._lock = model_lock(self.net)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- the interface --------------------------------------------------------------------
    def _values(self, x: torch.Tensor, output_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[n, T]`` (float64) and base values ``[n]`` (NaN where the method has none)
        for prepared inputs ``x``, explaining output column ``output_index``."""
        raise NotImplementedError

    def attribute_with_base(self, inputs, output_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(values [n, T], base values [n])`` for ids, embeddings (where accepted) or texts;
        :class:`NonFiniteError` if any is NaN or infinite (base values only for additive methods)."""
        values, base = self._values(self._prepare(inputs, "inputs"), output_index)
        check_finite(values, base=base if self.additive else None, base_name=self.base_name)
        return values, base

    def attribute(self, inputs, output_index: int = 0) -> np.ndarray:
        """Per-token attributions ``[n, T]`` (float64)."""
        return self.attribute_with_base(inputs, output_index)[0]

    @property
    def method_name(self) -> str:
        """What :attr:`Explanation.method` says."""
        return self.name

    def explain(
        self,
        texts_or_ids,
        labels: Sequence[int] | None = None,
        output_index: int | None = None,
        target: int | str | None = None,
        pairs: Sequence[str] | None = None,
    ) -> list[Explanation]:
        """One :class:`Explanation` per input (texts need a SeqshapModel).

        ``pairs``: for a model trained on sentence pairs, the second text of each input (as
        transformers' ``text_pair``); each explanation's text is then the pair
        (:func:`seqshap.data.pairs.pair`), its words those of both texts.

        ``target``: the class explained, by name (``"9"``, ``"positive"``) or class index (see
        :func:`resolve_target`). By default a one-output model's output, class 1 of a two-class
        model (the positive class, as for a sigmoid model), and for more classes each input's
        predicted class. ``output_index`` names the output column instead (the same thing for a
        model with one output per class).
        """
        if pairs is not None:
            if not (isinstance(texts_or_ids, (list, tuple)) and all(isinstance(t, str) for t in texts_or_ids)):
                raise TypeError("pairs go with texts: explain(list_of_texts, pairs=list_of_second_texts)")
            if isinstance(pairs, str) or len(pairs) != len(texts_or_ids):
                raise ValueError(f"pairs: give one second text per text ({len(texts_or_ids)}), as a list")
            texts_or_ids = [pair(a, b) for a, b in zip(texts_or_ids, pairs, strict=True)]
        x, texts, encodings = self._explain_inputs(texts_or_ids)
        if labels is not None and len(labels) != len(x):
            raise ValueError(f"labels: got {len(labels)} for {len(x)} inputs")
        outputs = self._outputs(x)
        if target is not None and output_index is not None:
            raise ValueError("give target (a class) or output_index (an output column), not both")
        if target is not None:
            output_index = resolve_target(target, self.output_classes(outputs.shape[1]), outputs.shape[1])
        which = self._explained_outputs(outputs, output_index, self.multi_label)
        # the model's own output first: where it breaks, that is the cause, not a reference made from it
        check_finite(None, outputs.numpy()[np.arange(len(x)), which], texts=texts)
        values, base = np.zeros(tuple(x.shape[:2])), np.zeros(len(x))
        for c in np.unique(which).tolist():  # one pass per explained class (usually one)
            rows = np.flatnonzero(which == c)
            values[rows], base[rows] = self._values(x[torch.from_numpy(rows)], c)
        return self._explanations(x, values, base, which, texts, encodings, labels, outputs)

    def output_classes(self, n_outputs: int) -> tuple[str, ...] | None:
        """The model's class names when its outputs are classes: one output (a sigmoid: the last
        class's probability) or one per class, in probability or logit space; else ``None``."""
        classes = self.model.classes if self.model is not None else None
        if not classes or self.output == "raw" or n_outputs not in (1, len(classes)):
            return None
        return tuple(classes)

    @property
    def multi_label(self) -> bool:
        """Are the model's classes labels of their own (a sigmoid each, not one softmax)?"""
        return bool(getattr(self.model, "multi_label", False))

    @staticmethod
    def _explained_outputs(outputs: torch.Tensor, output_index: int | None, multi_label: bool = False) -> np.ndarray:
        """The explained output column per input ``[n]`` (see :meth:`explain`): by default the
        positive class of a two-class model, else (and for a multi-label model) the most likely."""
        n, C = outputs.shape
        if output_index is not None:
            if not 0 <= output_index < C:
                raise ValueError(f"output_index {output_index} is out of range: the model has {C} outputs")
            return np.full(n, int(output_index))
        if C <= 2 and not multi_label:
            return np.full(n, C - 1)
        return outputs.argmax(1).numpy()

    def _explain_inputs(self, texts_or_ids):
        """(inputs, texts or None, one Encoding per text or None): texts keep where each token came from."""
        texts = (
            list(texts_or_ids)
            if isinstance(texts_or_ids, (list, tuple)) and texts_or_ids and isinstance(texts_or_ids[0], str)
            else None
        )
        if texts is None or self.model is None:
            return self._prepare(texts_or_ids, "texts_or_ids"), texts, None
        ids, encodings = self._encode_texts(texts, "texts_or_ids")
        return self._prepare(ids, "texts_or_ids"), texts, encodings

    def _explanations(
        self,
        x: torch.Tensor,
        values: np.ndarray,
        base: np.ndarray,
        which: np.ndarray,
        texts,
        encodings,
        labels,
        outputs: torch.Tensor,
    ) -> list[Explanation]:
        """Explanations from values ``[n, T]`` and base values ``[n]`` of inputs ``x``, explaining
        output column ``which[i]`` of ``outputs`` ``[n, C]`` for input ``i``."""
        fx = outputs.numpy()[np.arange(len(x)), which]
        # The one place every method's explanations pass: no NaN or infinity gets out as data.
        check_finite(values, fx, base if self.additive else None, texts=texts, base_name=self.base_name)
        err = np.abs(values.sum(1) - (fx - base)) if self.additive else np.full(len(x), np.nan)
        C = outputs.shape[1]
        # A one-output model in probability/logit space explains its positive (last) class; a
        # model with one output per class explains the class of its column.
        classes = self.output_classes(C)
        named = classes is not None
        multi = self.multi_label and named
        out = []
        layout = self.layout if not x.is_floating_point() else POSITIONS  # embeddings: no ids, every position
        for i in range(len(x)):
            ids = x[i].tolist() if not x.is_floating_point() else list(range(x.shape[1]))
            enc = encodings[i] if encodings is not None else None
            if enc is not None:
                tokens = list(enc.tokens)
            elif self.model is not None and not x.is_floating_point():
                tokens = self.model.tokens(ids)
            else:
                tokens = [f"#{t}" for t in ids]
            out.append(
                Explanation(
                    tokens=tuple(tokens),
                    ids=tuple(ids),
                    values=values[i],
                    base_value=float(base[i]),
                    output_value=float(fx[i]),
                    completeness_error=float(err[i]),
                    output_space=self.output,
                    model_name=self.model.name if self.model is not None else type(self.net).__name__,
                    method=self.method_name,
                    output_index=int(which[i]),
                    text=texts[i] if texts else None,
                    label=None if labels is None else int(labels[i]),
                    spans=enc.spans if enc is not None else None,
                    word_ids=enc.word_ids if enc is not None else None,
                    classes=classes if named else None,
                    output_name=None if not named or classes is None else classes[-1 if C == 1 else int(which[i])],
                    predicted=self._predicted(outputs[i], classes, multi) if named and classes and C > 1 else None,
                    layout=layout,
                    multi_label=multi,
                )
            )
        return out

    def _predicted(self, row: torch.Tensor, classes: Sequence[str], multi: bool) -> str:
        """The predicted class of one output row ``[C]``; for a multi-label model every label above
        one half (logit above 0), comma-separated."""
        if not multi:
            return classes[int(row.argmax())]
        on = row > (0.0 if self.output == "logit" else 0.5)
        return ", ".join(c for c, o in zip(classes, on.tolist(), strict=True) if o)

    # -- inputs ---------------------------------------------------------------------------
    def _encode_texts(self, texts: list[str], name: str) -> tuple[torch.Tensor, list[Encoding]]:
        """Texts -> (ids ``[n, T]``, one Encoding each). The one check of texts for every method,
        the CLI and the web API: none empty, and (except references) each with a word the model reads."""
        if self.model is None:
            raise TypeError(
                f"{name} given as texts needs a seqshap model (seqshap.load(...)), "
                f"not a bare nn.Module; pass token ids instead"
            )
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise ValueError(f"{name}: text {empty[0]} is empty")
        encodings = self.model.encodings(texts)
        if name not in REFERENCE_INPUTS:
            blank = [i for i, e in enumerate(encodings) if all(s is None for s in e.spans)]
            if blank:
                raise NoWordsError(blank[0], len(texts))
        return torch.tensor([e.ids for e in encodings], dtype=torch.long), encodings

    def _prepare(self, x, name: str) -> torch.Tensor:
        """Texts, ids or (where accepted) embeddings -> the checked input tensor."""
        if isinstance(x, str):
            raise TypeError(f"{name}: pass a list of texts, not a single str")
        if isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x):
            x = self._encode_texts(list(x), name)[0]
        x = as_inputs(x, name, embeddings=self.accepts_embeddings)
        if x.is_floating_point():
            x = self._match_dtype(x, name)
        else:
            emb = token_embedding(self.net)
            if emb is None:
                raise TypeError(
                    f"{name}: token ids need a model with an nn.Embedding"
                    + ("; pass float embeddings [n, T, E] instead" if self.accepts_embeddings else "")
                )
            check_ids(x, emb.num_embeddings, name, "the model's embedding")
        return x

    def _match_dtype(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """Float embeddings in the model's dtype: widened (float16 -> float32) without loss, never narrowed."""
        want = model_dtype(self.net)
        if x.dtype == want:
            return x
        if torch.finfo(x.dtype).bits < torch.finfo(want).bits:
            return x.to(want)
        have, model = str(x.dtype).replace("torch.", ""), str(want).replace("torch.", "")
        raise TypeError(
            f"{name}: the embeddings are {have} but the model computes in {model}, and narrowing them would "
            f"lose precision: convert them (.to(torch.{model}))"
            + (
                ", or explain a float64 copy of the model (DeepExplainer(..., dtype=torch.float64))"
                if have == "float64"
                else ""
            )
        )

    # -- the model --------------------------------------------------------------------------
    @property
    def embedding(self) -> nn.Embedding | nn.EmbeddingBag:
        """The model's token embedding, where token ids become vectors."""
        emb = token_embedding(self.net)
        if emb is None:
            raise TypeError(f"{self.name} needs a model with an nn.Embedding")
        return emb

    @contextlib.contextmanager
    def _plain(self):
        """The unrewritten model, to ourselves, dropout off; every module's train/eval flag comes back
        after, as it was (``net.train(was)`` would put a wrapper's eval-mode parts in training)."""
        with self._lock:
            flags = [(m, m.training) for m in self.net.modules()]
            self.net.eval()
            try:
                yield self.net
            finally:
                for m, mode in flags:
                    m.training = mode

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The explained quantity ``[m, outputs]`` for ``x`` (inside :meth:`_plain`; keeps autograd)."""
        with SquashRecorder() as rec:
            out = self.net(x)
        return select_space(out, rec.log.logit_of, self.output)

    @torch.no_grad()
    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Plain forward in the explained space -> float64 ``[n, outputs]`` (batched)."""
        outs = []
        with self._plain():
            for i in range(0, len(x), self.batch_size):
                outs.append(self._forward(x[i : i + self.batch_size]).double())
        return torch.cat(outs)

    def predict_inputs(self, ids, output_index: int) -> np.ndarray:
        """:meth:`predict` for the inputs themselves, checked first: where the model's own output is NaN,
        that is the cause, named as such, before any reference made from the input is."""
        out = self.predict(ids, output_index)
        check_finite(None, out)
        return out

    def predict_reference(self, ids, output_index: int, what: str, inputs=None) -> np.ndarray:
        """:meth:`predict` for reference rows ``[m, T]`` a method compares inputs with, checked:
        :class:`NonFiniteError` naming ``what`` they are (IG's baseline, an occluded text, the empty
        coalition) and the input each was made from (``inputs[j]``, ints ``[m]``; default ``j``)."""
        out = self.predict(ids, output_index)
        bad = np.flatnonzero(~np.isfinite(out))
        if len(bad):
            self.check_reference(out, what, int(inputs[bad[0]]) if inputs is not None else int(bad[0]), bad[0])
        return out

    def check_reference(self, outputs: np.ndarray, what: str, row: int, at: int | None = None) -> None:
        """Raise :class:`NonFiniteError` if ``outputs`` (the model's outputs for ``what``, made from
        input ``row``) hold NaN or infinity."""
        outputs = np.atleast_1d(np.asarray(outputs, dtype=np.float64))
        bad = np.flatnonzero(~np.isfinite(outputs)) if at is None else [at]
        if len(bad):
            v = outputs[int(bad[0])]
            raise NonFiniteError(
                f"the model's output for {what}, made from input {row}, is {v}: {self.name} compares the input "
                "with that row, and the model gives no number for it",
                row=row,
                reason=f"its output for {what} is {v}",
            )

    def predict(self, ids, output_index: int = 0) -> np.ndarray:
        """Output column ``output_index`` in the explained space for ids ``[m, T]`` -> float64 ``[m]``."""
        x = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
        if len(x) == 0:
            return np.zeros(0)
        return self._outputs(x if x.is_floating_point() else x.long())[:, output_index].numpy()
