"""Training loop: validation split from the training data, early stopping with the best
epoch restored, a checkpoint after every epoch and ``resume`` that picks up from it.

A run records what it was trained on (the data's checksum and source, the vocabulary's
checksum, every option that shapes the model) in its checkpoint and ``metrics.json``; a
resume with anything else is refused, naming the difference. A directory holding a model or
a checkpoint is never overwritten unless asked (``overwrite``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import atomic
from .background import save_training_background
from .data.imdb import Split
from .data.labels import DEFAULT_CLASSES
from .data.vocab import Vocab
from .errors import OutputExistsError, TrainingDivergedError
from .models import build_model
from .models.classifiers import TextClassifier
from .store import CONFIG, WEIGHTS, SeqshapModel, save_model

CKPT = "checkpoint"
# what "accuracy" means in a multi-label run's metrics.json and epoch lines
MULTI_LABEL_ACCURACY = "mean per-label accuracy: each label right at probability 0.5, averaged over texts and labels"
STATE = "state.json"  # the checkpoint's commit point


@dataclass
class TrainConfig:
    """The seed notebook's hyperparameters by default."""

    arch: str = "lstm"
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    maxlen: int = 80
    num_words: int = 20000
    val_fraction: float = 0.1
    patience: int = 3
    seed: int = 0
    lr_decay: float = 1.0  # <1: multiply the learning rate by this after an epoch without a better val acc
    multi_label: bool = False  # a sigmoid per label, for multi-hot labels (read_labeled(multi_label=True))
    model: dict = field(default_factory=dict)  # extra constructor kwargs (hidden, ...)


def _versions() -> dict:
    import safetensors

    from . import __version__

    return {
        "seqshap": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val); the validation rows are a seeded random ``fraction`` of ``n``."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    order = np.random.RandomState(seed).permutation(n)
    n_val = max(1, round(n * fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def data_record(split: Split, source: str | None = None, path: str | Path | None = None) -> dict:
    """What a run was trained on: ``source`` (where it came from), ``n`` rows and ``sha256`` of the
    texts and labels in order (the data as read, whatever the file layout), and of the class names
    when they are not the two sentiment classes; ``file_sha256`` of ``path``."""
    h = hashlib.sha256()
    for text, label in zip(split.texts, np.asarray(split.labels).tolist(), strict=True):
        b = text.encode("utf-8")
        # multi-label rows are multi-hot: every label's 0/1 in order
        bits = b"".join(int(v).to_bytes(8, "little", signed=True) for v in label) if isinstance(label, list) else b""
        h.update(len(b).to_bytes(8, "little") + b + (bits or int(label).to_bytes(8, "little", signed=True)))
    if split.classes is not None and tuple(split.classes) != DEFAULT_CLASSES:
        h.update(json.dumps(list(split.classes), ensure_ascii=False).encode("utf-8"))
    record = {"source": source or "texts given in Python", "n": len(split), "sha256": h.hexdigest()}
    if path is not None:
        from .data.imdb import sha256_file

        record["file_sha256"] = sha256_file(Path(path))
    return record


def vocab_sha256(vocab: Vocab) -> str:
    """Checksum of a vocabulary (its JSON form, keys sorted)."""
    return hashlib.sha256(json.dumps(vocab.to_json(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def existing_run(out: str | Path) -> str | None:
    """What in ``out`` a new run would overwrite: a trained model, an interrupted run's checkpoint, or nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a directory")
    if (out / CONFIG).exists() or (out / WEIGHTS).exists():
        return "a trained model"
    if (out / CKPT / STATE).exists():
        return "the checkpoint of an interrupted run"
    return None


def check_output_dir(
    out: str | Path, resume: bool, overwrite: bool, flags: tuple[str, str, str] = ("resume=True", "overwrite=True", "")
) -> None:
    """Refuse to train into ``out`` when that would overwrite a model or checkpoint by accident.
    ``flags``: how the message names resume, overwrite and the output (the CLI passes its options)."""
    resume_flag, overwrite_flag, out_flag = flags
    if resume and overwrite:
        raise ValueError(f"{resume_flag} continues the run in {out} and {overwrite_flag} replaces it; choose one")
    what = existing_run(out)
    if what and not resume and not overwrite:
        raise OutputExistsError(
            f"{out} already holds {what}; {resume_flag} continues its training, {overwrite_flag} replaces it, "
            f"or choose another {out_flag or 'output directory'}"
        )


def model_outputs(classes: tuple[str, ...], head: str = "auto") -> int:
    """How many outputs a trained model has: 1 (a sigmoid) for two classes, one per class (a
    softmax) for more, or for two with ``head="softmax"``."""
    if head not in ("auto", "sigmoid", "softmax"):
        raise ValueError(f"unknown head {head!r}; choose auto, sigmoid or softmax")
    if len(classes) < 2:
        raise ValueError(f"a classifier needs at least two classes, got {len(classes)}")
    if head == "sigmoid" and len(classes) > 2:
        raise ValueError(f"a sigmoid head has two classes; this data has {len(classes)}: use a softmax head")
    return 1 if len(classes) == 2 and head != "softmax" else len(classes)


@torch.no_grad()
def evaluate_ids(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``net`` on ids ``[n, T]``, class indices ``[n]``: binary
    cross-entropy on the positive class of a two-class model, else over all classes (argmax).
    Multi-hot labels ``[n, labels]`` (a multi-label model): binary cross-entropy averaged over the
    labels, and the accuracy is the mean per-label accuracy (each label right at 0.5)."""
    if y.dim() == 2:
        return _evaluate_multi_label(net, x, y, batch_size)
    net.eval()
    device = next(net.parameters()).device
    loss = correct = 0.0
    for i in range(0, len(x), batch_size):
        out = net(x[i : i + batch_size].to(device)).double().cpu()
        # the positive class: a sigmoid model's one output, class 1 of a two-class softmax
        p = out[:, -1] if out.shape[1] <= 2 else out
        if not torch.isfinite(p).all():
            row = i + int((~torch.isfinite(p)).reshape(len(p), -1).any(1).nonzero()[0])
            shown = float(p[row - i]) if p.dim() == 1 else p[row - i].tolist()
            raise TrainingDivergedError(f"the model's output for review {row} is {shown}: its weights are broken")
        t = y[i : i + batch_size]
        if out.shape[1] <= 2:
            p = p.clamp(1e-7, 1 - 1e-7)
            loss += float(nn.functional.binary_cross_entropy(p, t.double(), reduction="sum"))
            correct += float(((p > 0.5).long() == t).sum())
        else:
            loss += float(nn.functional.nll_loss(p.clamp_min(1e-12).log(), t, reduction="sum"))
            correct += float((p.argmax(1) == t).sum())
    return loss / max(1, len(x)), correct / max(1, len(x))


def _evaluate_multi_label(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    net.eval()
    device = next(net.parameters()).device
    loss = correct = 0.0
    for i in range(0, len(x), batch_size):
        p = net(x[i : i + batch_size].to(device)).double().cpu()
        if not torch.isfinite(p).all():
            row = i + int((~torch.isfinite(p)).any(1).nonzero()[0])
            raise TrainingDivergedError(
                f"the model's output for review {row} is {p[row - i].tolist()}: its weights are broken"
            )
        t = y[i : i + batch_size].double()
        p = p.clamp(1e-7, 1 - 1e-7)
        loss += float(nn.functional.binary_cross_entropy(p, t, reduction="none").mean(1).sum())
        correct += float(((p > 0.5).double() == t).double().mean(1).sum())
    return loss / max(1, len(x)), correct / max(1, len(x))


def multi_label_metrics(labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Scores of a multi-label model: multi-hot ``labels`` ``[n, L]`` against every label's
    probability ``probs`` ``[n, L]``, a label on where its probability is above 0.5. The mean
    per-label accuracy (``label_accuracy``), ``subset_accuracy`` (every label of a text right),
    and, with scikit-learn (the ``metrics`` extra), per-label precision/recall/F1/support and
    micro and macro F1."""
    labels = np.asarray(labels).astype(np.int64)
    pred = (np.asarray(probs) > 0.5).astype(np.int64)
    out: dict = {
        "multi_label": True,
        "classes": list(classes),
        "label_accuracy": float(np.mean(pred == labels)) if labels.size else 0.0,
        "subset_accuracy": float(np.mean((pred == labels).all(1))) if len(labels) else 0.0,
    }
    try:
        from sklearn.metrics import precision_recall_fscore_support
    except ImportError:
        return out
    precision, recall, f1, support = precision_recall_fscore_support(labels, pred, average=None, zero_division=0)
    micro = precision_recall_fscore_support(labels, pred, average="micro", zero_division=0)
    out["per_label"] = [
        {"label": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for c, p, r, f, n in zip(classes, precision, recall, f1, support, strict=True)
    ]
    out.update(micro_f1=float(micro[2]), macro_f1=float(np.mean(f1)))
    return out


def _opt_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {
        f"opt.{idx}.{k}": torch.as_tensor(v).detach().cpu().clone()
        for idx, st in sd["state"].items()
        for k, v in st.items()
    }
    return tensors, {
        "param_groups": sd["param_groups"],
        "state_keys": {str(idx): sorted(st) for idx, st in sd["state"].items()},
    }


def _load_opt(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state = {int(idx): {k: tensors[f"opt.{idx}.{k}"] for k in keys} for idx, keys in meta["state_keys"].items()}
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _best_file(state: dict) -> str:
    """The file holding the best epoch's weights (checkpoints before best-EPOCH files used one name)."""
    return state.get("best_file", "best.safetensors")


def _save_checkpoint(ckpt: Path, net, opt, state: dict, best_state: dict) -> None:
    """One checkpoint per epoch. Weights go to files named by epoch (``epoch-E``, ``best-B``)
    first; ``state.json``, which names them, is written last and is the commit point: a kill at
    any moment leaves the previous checkpoint whole, its best weights included."""
    from safetensors.torch import save

    epoch, best_epoch = state["epoch"], state["best"]["epoch"]
    opt_t, opt_meta = _opt_tensors(opt)
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    tensors.update(opt_t)
    tensors["rng.torch"] = torch.get_rng_state()
    keep = {f"epoch-{epoch}.safetensors", f"best-{best_epoch}.safetensors"}
    atomic.write_bytes(ckpt / f"epoch-{epoch}.safetensors", save(tensors))
    # The best file changes only with a new best (a file left by a killed attempt at this epoch
    # is not committed, so it is rewritten) or when an older checkpoint named it best.safetensors.
    best = ckpt / f"best-{best_epoch}.safetensors"
    if best_epoch == epoch or not best.exists():
        atomic.write_bytes(best, save({k: v.contiguous() for k, v in best_state.items()}))
    atomic.write_json(ckpt / STATE, {**state, "best_file": best.name, "optimizer": opt_meta})
    for old in ckpt.glob("*.safetensors"):
        if old.name not in keep:
            old.unlink(missing_ok=True)


def _clear_checkpoint(ckpt: Path) -> None:
    """Forget a checkpoint: its commit point first, so a kill midway leaves nothing to resume."""
    (ckpt / STATE).unlink(missing_ok=True)
    for old in ckpt.glob("*.safetensors"):
        old.unlink(missing_ok=True)


@dataclass
class _Data:
    """The encoded training rows, split into training and validation."""

    x_tr: torch.Tensor  # [n_train, T] ids
    y_tr: torch.Tensor  # [n_train] labels
    x_va: torch.Tensor
    y_va: torch.Tensor


@dataclass
class _Run:
    """What a checkpoint carries over besides the weights: the epochs so far and the best one."""

    history: list[dict]
    best: dict
    best_state: dict[str, torch.Tensor]
    start_epoch: int = 1


def train(
    train_split: Split,
    out: str | Path,
    cfg: TrainConfig | None = None,
    test_split: Split | None = None,
    resume: bool = False,
    progress: bool = True,
    vocab: Vocab | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    data_records: dict[str, dict] | None = None,
    task: str | None = None,
) -> SeqshapModel:
    """Train ``cfg.arch`` on ``train_split`` and write a model directory to ``out``.

    The classes are ``train_split.classes`` (the two sentiment classes when ``None``), saved in
    the model's ``config.json``; two classes make a sigmoid model, more a softmax over them
    (``cfg.model["outputs"]`` = the number of classes asks for a softmax over two). ``task``
    (e.g. ``"imdb-rating"``) is recorded in the config so that other commands read the same labels.

    ``resume`` continues the run checkpointed in ``out`` (same data, vocabulary and options,
    more epochs allowed); ``overwrite`` replaces a model or checkpoint already there (without
    either, one there is an :class:`OutputExistsError`). ``data_records``: :func:`data_record`
    of the ``"train"`` (and ``"test"``) data, from a caller who knows where they came from.
    ``device`` ("cpu", "cuda") only changes where the arithmetic runs; the model directory
    is the same (weights are saved from CPU copies)."""
    out = Path(out)
    ckpt = out / CKPT
    cfg = cfg or TrainConfig()
    check_output_dir(out, resume, overwrite)
    torch.manual_seed(cfg.seed)
    classes = _classes(train_split, test_split)
    _check_multi_label(cfg, train_split, test_split)
    if cfg.multi_label:
        outputs = int(cfg.model.get("outputs", len(classes)))
        if outputs != len(classes):
            raise ValueError(
                f"model outputs {outputs} do not fit {len(classes)} labels (a multi-label model has one each)"
            )
    else:
        outputs = int(cfg.model.get("outputs", model_outputs(classes)))
    if outputs not in (1 if len(classes) == 2 else len(classes), len(classes)):
        raise ValueError(f"model outputs {outputs} do not fit {len(classes)} classes (1 for a sigmoid, else one each)")
    vocab = vocab or Vocab.build(train_split.texts, cfg.num_words)
    records = data_records or {}
    trained_on = {"train": records.get("train") or data_record(train_split), "vocab_sha256": vocab_sha256(vocab)}
    data = _prepare_data(train_split, vocab, cfg)
    settings = {**cfg.model, **({"outputs": outputs} if outputs > 1 else {})}
    if cfg.multi_label:
        settings["multi_label"] = True
    net = build_model(cfg.arch, vocab_size=vocab.num_words, **settings).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, fused=True)
    run = _Run([], {"epoch": 0, "val_accuracy": -1.0}, _cpu_copy(net))
    if resume:
        run = _resume(ckpt, cfg, trained_on, net, opt, device)
        if progress:
            print(
                f"resuming {out} after epoch {run.start_epoch - 1} (best so far: epoch {run.best['epoch']}, "
                f"val acc {run.best['val_accuracy']:.4f})",
                flush=True,
            )
    elif overwrite:
        _clear_checkpoint(ckpt)
    stale = run.start_epoch - 1 - run.best["epoch"]
    for epoch in range(run.start_epoch, cfg.epochs + 1):
        if stale >= cfg.patience:
            break
        train_loss, train_acc, seconds = _train_epoch(net, opt, data, cfg, epoch, device, progress)
        val_loss, val_acc = evaluate_ids(net, data.x_va, data.y_va)
        run.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": seconds,
                "lr": opt.param_groups[0]["lr"],
            }
        )
        if val_acc > run.best["val_accuracy"]:
            run.best = {"epoch": epoch, "val_accuracy": val_acc}
            run.best_state = _cpu_copy(net)
            stale = 0
        else:
            stale += 1
            for group in opt.param_groups:
                group["lr"] *= cfg.lr_decay
        if progress:
            acc = "label acc" if cfg.multi_label else "acc"  # multi-label: the mean per-label accuracy
            print(
                f"epoch {epoch}: train loss {train_loss:.4f} {acc} {train_acc:.4f} | "
                f"val loss {val_loss:.4f} {acc} {val_acc:.4f} | {seconds:.1f}s",
                flush=True,
            )
        _save_checkpoint(
            ckpt,
            net,
            opt,
            {"epoch": epoch, "history": run.history, "best": run.best, "config": asdict(cfg), "trained_on": trained_on},
            run.best_state,
        )
    if test_split is not None:  # recorded in metrics.json: it scores the model, it does not shape it
        trained_on = {**trained_on, "test": records.get("test") or data_record(test_split)}
    save_training_background(out, train_split, trained_on)  # background.json: the default for explain and serve
    label_config = {
        "classes": list(classes),
        **({"task": task} if task else {}),
        **({"multi_label": True} if cfg.multi_label else {}),
    }
    return _finish(out, net, vocab, cfg, settings, label_config, run, data, test_split, device, progress, trained_on)


def _classes(train_split: Split, test_split: Split | None) -> tuple[str, ...]:
    """The training data's classes; test data must have the same ones, in the same order."""
    classes = tuple(train_split.classes or DEFAULT_CLASSES)
    if test_split is not None and tuple(test_split.classes or DEFAULT_CLASSES) != classes:
        raise ValueError(
            f"the test data's classes ({', '.join(test_split.classes or DEFAULT_CLASSES)}) are not the training "
            f"data's ({', '.join(classes)}); read it with the training classes"
        )
    return classes


def _check_multi_label(cfg: TrainConfig, train_split: Split, test_split: Split | None) -> None:
    """Multi-hot labels go with ``cfg.multi_label`` and class indices without it, in both splits."""
    if "multi_label" in cfg.model and bool(cfg.model["multi_label"]) != cfg.multi_label:
        raise ValueError("set TrainConfig(multi_label=...), not model['multi_label']: the two would disagree")
    for name, split in (("training", train_split), ("test", test_split)):
        if split is None:
            continue
        multi_hot = np.asarray(split.labels).ndim == 2
        if multi_hot and not cfg.multi_label:
            raise ValueError(
                f"the {name} data has several labels per text (multi-hot): train with TrainConfig(multi_label=True) "
                "(seqshap train --multi-label)"
            )
        if cfg.multi_label and not multi_hot:
            raise ValueError(
                f"multi_label=True needs multi-hot labels, but the {name} data has one class per text: read it with "
                "read_labeled(..., multi_label=True)"
            )


def _cpu_copy(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _prepare_data(train_split: Split, vocab: Vocab, cfg: TrainConfig) -> _Data:
    x_all = torch.from_numpy(vocab.encode(train_split.texts, cfg.maxlen))
    y_all = torch.from_numpy(train_split.labels)
    tr, va = split_validation(len(x_all), cfg.val_fraction, cfg.seed)
    return _Data(x_all[tr], y_all[tr], x_all[va], y_all[va])


def _differences(old: dict, new: dict) -> list[str]:
    """``--option: A in the checkpoint, B now`` for every option that differs (epochs may grow).
    An option a checkpoint predates (``multi_label``) counts as its default there."""
    defaults = asdict(TrainConfig())
    out = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
        if key != "epochs" and was != now:
            out.append(f"--{key.replace('_', '-')}: {was!r} in the checkpoint, {now!r} now")
    return out


def _resume(
    ckpt: Path, cfg: TrainConfig, trained_on: dict, net: nn.Module, opt: torch.optim.Optimizer, device: str
) -> _Run:
    """Load the last checkpoint into ``net`` and ``opt`` (and torch's RNG); the run so far.
    Refused, naming the difference, when the data, vocabulary or options differ from the checkpoint's."""
    from safetensors.torch import load_file

    if not (ckpt / STATE).exists():
        raise FileNotFoundError(f"{ckpt / STATE}: nothing to resume")
    state = json.loads((ckpt / STATE).read_text())
    # More epochs than first planned is fine; anything else would silently mix two runs.
    diff = _differences(state["config"], asdict(cfg))
    if diff:
        raise ValueError(
            f"{ckpt}: the checkpoint was made with a different configuration ({'; '.join(diff)}); "
            "pass the same options, or train into a new output directory"
        )
    before = state.get("trained_on")
    if before is None:  # a checkpoint written before runs recorded their data
        print(f"note: {ckpt} does not record its training data; resuming without checking it", file=sys.stderr)
    elif before["train"]["sha256"] != trained_on["train"]["sha256"]:
        old, new = before["train"], trained_on["train"]
        raise ValueError(
            f"{ckpt}: the checkpoint was trained on other data: {old['source']} ({old['n']} rows, sha256 "
            f"{old['sha256'][:12]}…), this run has {new['source']} ({new['n']} rows, sha256 {new['sha256'][:12]}…); "
            "resume with the same data, or train into a new output directory"
        )
    elif before["vocab_sha256"] != trained_on["vocab_sha256"]:
        raise ValueError(
            f"{ckpt}: the checkpoint was trained with another vocabulary (sha256 {before['vocab_sha256'][:12]}…, "
            f"this run's is {trained_on['vocab_sha256'][:12]}…); resume with the same vocabulary"
        )
    tensors = load_file(str(ckpt / f"epoch-{state['epoch']}.safetensors"))
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    tensors = {k: (v.to(device) if k.startswith("opt.") and v.dim() else v) for k, v in tensors.items()}
    _load_opt(opt, tensors, state["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    best_state = load_file(str(ckpt / _best_file(state)))
    for old in ckpt.glob("*.safetensors"):  # written by an attempt killed before its commit point
        if old.name not in (f"epoch-{state['epoch']}.safetensors", _best_file(state)):
            old.unlink(missing_ok=True)
    return _Run(state["history"], state["best"], best_state, state["epoch"] + 1)


def _diverged(epoch: int, opt: torch.optim.Optimizer) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged in epoch {epoch}: the model's outputs became NaN or infinite "
        f"(learning rate {opt.param_groups[0]['lr']:g} too high?)"
        + ("; the checkpoint keeps the epochs before it" if epoch > 1 else "")
    )


def _train_epoch(
    net: nn.Module, opt: torch.optim.Optimizer, data: _Data, cfg: TrainConfig, epoch: int, device: str, progress: bool
) -> tuple[float, float, float]:
    """One pass over the training rows: (mean loss, accuracy, seconds). Binary cross-entropy on a
    sigmoid model's one output; cross-entropy on the logits of a softmax head; for multi-hot
    labels, binary cross-entropy on each label's logit (the mean over labels) and the mean
    per-label accuracy."""
    from tqdm import tqdm

    loss_fn = nn.BCELoss()
    multi = data.y_tr.dim() == 2  # multi-hot labels: binary cross-entropy on each label's logit
    softmax = net if isinstance(net, TextClassifier) and (net.outputs > 1 or multi) else None
    net.train()
    # The shuffle depends on (seed, epoch) only, so a resumed run sees the same order.
    order = torch.randperm(len(data.x_tr), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
    t0 = time.time()
    run_loss = run_correct = seen = 0.0
    bar = tqdm(
        range(0, len(order), cfg.batch_size),
        desc=f"epoch {epoch}/{cfg.epochs}",
        disable=not progress,
        unit="batch",
        leave=True,
    )
    for i in bar:
        idx = order[i : i + cfg.batch_size]
        xb, yb = data.x_tr[idx].to(device), data.y_tr[idx].float().to(device)
        opt.zero_grad(set_to_none=True)
        if softmax is not None and multi:
            z = softmax.logits(xb)
            loss = nn.functional.binary_cross_entropy_with_logits(z, yb)
            if not bool(torch.isfinite(loss)):
                raise _diverged(epoch, opt)
            hits = ((z > 0).float() == yb).float().mean(1).sum()  # the mean per-label accuracy, summed over texts
        elif softmax is not None:
            z = softmax.logits(xb)
            loss = nn.functional.cross_entropy(z, yb.long())
            if not bool(torch.isfinite(loss)):  # cross-entropy passes NaN on silently
                raise _diverged(epoch, opt)
            hits = (z.argmax(1) == yb.long()).sum()
        else:
            p = net(xb)[:, 0]
            # On CUDA, BCELoss meets NaN with a device-side assert that kills the process: look first there.
            # On the CPU it raises, which costs nothing until it happens.
            if p.is_cuda and not bool(torch.isfinite(p).all()):
                raise _diverged(epoch, opt)
            try:
                loss = loss_fn(p, yb)
            except RuntimeError:
                if torch.isfinite(p).all():
                    raise
                raise _diverged(epoch, opt) from None
            hits = ((p > 0.5).float() == yb).sum()
        loss.backward()
        opt.step()
        run_loss += float(loss.detach()) * len(idx)
        run_correct += float(hits)
        seen += len(idx)
        if (i // cfg.batch_size) % 20 == 0:
            bar.set_postfix(loss=f"{run_loss / seen:.4f}", acc=f"{run_correct / seen:.4f}")
    return run_loss / seen, run_correct / seen, time.time() - t0


def _finish(
    out: Path,
    net: nn.Module,
    vocab: Vocab,
    cfg: TrainConfig,
    settings: dict,
    label_config: dict,
    run: _Run,
    data: _Data,
    test_split: Split | None,
    device: str,
    progress: bool,
    trained_on: dict,
) -> SeqshapModel:
    """Restore the best epoch, score it on ``test_split`` and write the model directory."""
    net.load_state_dict(run.best_state)
    net.cpu().eval()
    history = run.history
    metrics = {
        "arch": cfg.arch,
        "history": history,
        "best_epoch": run.best["epoch"],
        "val_accuracy": run.best["val_accuracy"],
        "n_train": len(data.x_tr),
        "n_val": len(data.x_va),
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else None,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "config": asdict(cfg),
        "trained_on": dict(trained_on),
        "versions": _versions(),
    }
    if cfg.multi_label:
        metrics.update(multi_label=True, accuracy=MULTI_LABEL_ACCURACY)
    if test_split is not None:
        x_te = torch.from_numpy(vocab.encode(test_split.texts, cfg.maxlen))
        test_loss, test_acc = evaluate_ids(net, x_te, torch.from_numpy(test_split.labels))
        metrics.update(test_accuracy=test_acc, test_loss=test_loss, n_test=len(x_te))
        if cfg.multi_label:
            with torch.no_grad():
                probs = torch.cat([net(x_te[i : i + 1024]) for i in range(0, len(x_te), 1024)]).double().numpy()
            scores = multi_label_metrics(test_split.labels, probs, tuple(label_config["classes"]))
            metrics["test"] = {k: v for k, v in scores.items() if k not in ("multi_label", "classes")}
        if progress:
            what = "mean per-label accuracy" if cfg.multi_label else "test accuracy"
            print(
                f"best epoch {run.best['epoch']} restored: {what} {test_acc:.4f} on {len(x_te)} reviews",
                flush=True,
            )
    config = {
        "name": out.name,
        "arch": cfg.arch,
        "maxlen": cfg.maxlen,
        "model": {"vocab_size": vocab.num_words, **settings},
        **label_config,
    }
    save_model(out, net, vocab, config, metrics)
    return SeqshapModel(net, vocab, config, metrics, out)
