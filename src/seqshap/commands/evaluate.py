"""``seqshap evaluate``: accuracy, per-class precision/recall/F1, the confusion matrix (and ROC AUC
for two classes, the mean absolute error for classes named by numbers), with scikit-learn; for a
multi-label model per-label precision/recall/F1, micro and macro F1 and the subset accuracy."""

from __future__ import annotations

import json

import numpy as np

from .common import add_command, add_data_options, add_model_option, add_task_option, load_model, model_data


def class_probabilities(model, texts: list[str]) -> np.ndarray:
    """Every class's probability ``[n, classes]`` (a sigmoid model's ``[1 - p, p]``); an error
    naming the first text the model gives NaN or infinity for."""
    p = model.predict(texts)
    probs = np.stack([1 - p, p], 1) if p.ndim == 1 else p
    bad = np.flatnonzero(~np.isfinite(probs).all(1))
    if len(bad):
        raise ValueError(
            f"the model's output for review {int(bad[0])} is {probs[bad[0]].tolist()}: its weights are broken"
        )
    return probs


def metrics(labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, the confusion matrix (rows: true class,
    columns: predicted), ROC AUC for two classes and, for classes named by numbers (star ratings),
    the mean absolute error between the predicted and true numbers. Without scikit-learn (the
    ``metrics`` extra) only the accuracy."""
    pred = probs.argmax(1) if len(classes) > 2 else (probs[:, 1] > 0.5).astype(np.int64)
    try:
        from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score
    except ImportError:
        return {"test_accuracy": float(np.mean(pred == labels)), "classes": list(classes)}
    every = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, pred, labels=every, zero_division=0)
    out: dict = {
        "test_accuracy": float(accuracy_score(labels, pred)),
        "classes": list(classes),
        "per_class": [
            {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        ],
        "macro_f1": float(np.mean(f1)),
        "confusion_matrix": confusion_matrix(labels, pred, labels=every).tolist(),
    }
    if len(classes) == 2 and len(np.unique(labels)) == 2:  # AUC needs both classes among the labels
        out["roc_auc"] = float(roc_auc_score(labels, probs[:, 1]))
    try:
        values = np.array([float(c) for c in classes])
    except ValueError:
        values = None
    if values is not None and len(classes) > 2:
        from sklearn.metrics import mean_absolute_error

        out["mean_absolute_error"] = float(mean_absolute_error(values[labels], values[pred]))
    return out


def format_metrics(m: dict) -> str:
    """The per-class table and the confusion matrix as text."""
    classes = m["classes"]
    if "per_class" not in m:
        return "(per-class metrics need scikit-learn: pip install 'seqshap[metrics]')"
    w = max(8, *(len(c) for c in classes))
    lines = []
    if "roc_auc" in m:
        lines.append(f"ROC AUC {m['roc_auc']:.4f}")
    if "mean_absolute_error" in m:
        lines.append(f"mean absolute error {m['mean_absolute_error']:.3f} (in the classes' own units)")
    lines += ["", f"{'class':<{w}}  precision  recall      f1  support"]
    for r in m["per_class"]:
        lines.append(f"{r['class']:<{w}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}")
    lines.append(f"{'macro F1':<{w}}  {'':9}  {'':6}  {m['macro_f1']:6.4f}")
    cw = max(6, *(len(c) for c in classes), *(len(str(v)) for row in m["confusion_matrix"] for v in row))
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(f"{'':<{w}}  " + " ".join(f"{c:>{cw}}" for c in classes))
    for c, row in zip(classes, m["confusion_matrix"], strict=True):
        lines.append(f"{c:<{w}}  " + " ".join(f"{v:>{cw}}" for v in row))
    return "\n".join(lines)


def format_multi_label(m: dict) -> str:
    """A multi-label model's per-label table, micro/macro F1 and subset accuracy as text."""
    lines = [f"subset accuracy {m['subset_accuracy']:.4f} (every label of a text right)"]
    if "per_label" not in m:
        return "\n".join([*lines, "(per-label metrics need scikit-learn: pip install 'seqshap[metrics]')"])
    w = max(8, *(len(c) for c in m["classes"]))
    lines += ["", f"{'label':<{w}}  precision  recall      f1  support"]
    for r in m["per_label"]:
        lines.append(f"{r['label']:<{w}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}")
    lines.append(f"{'micro F1':<{w}}  {'':9}  {'':6}  {m['micro_f1']:6.4f}")
    lines.append(f"{'macro F1':<{w}}  {'':9}  {'':6}  {m['macro_f1']:6.4f}")
    return "\n".join(lines)


def run(args) -> int:

    model = load_model(args)
    split = model_data(args, model)
    if model.multi_label:
        from ..train import multi_label_metrics

        probs = class_probabilities(model, split.texts)
        m = multi_label_metrics(np.asarray(split.labels), probs, model.classes)
        if args.json:
            print(json.dumps({**m, "n": len(split), "model": str(model.path)}, allow_nan=False))
        else:
            print(
                f"mean per-label accuracy {m['label_accuracy']:.4f} on {len(split)} texts, "
                f"{len(model.classes)} labels ({model.path})"
            )
            print(format_multi_label(m))
        return 0
    probs = class_probabilities(model, split.texts)
    m = metrics(np.asarray(split.labels), probs, model.classes)
    if args.json:
        print(json.dumps({**m, "n": len(split), "model": str(model.path)}, allow_nan=False))
    else:
        print(f"test accuracy {m['test_accuracy']:.4f} on {len(split)} reviews ({model.path})")
        print(format_metrics(m))
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "evaluate",
        "accuracy, per-class precision/recall/F1 and the confusion matrix of a model on the 25,000 IMDB "
        "test reviews (or --data); ROC AUC for two classes",
        "seqshap evaluate --json\n  seqshap evaluate --model runs/lstm\n"
        "  seqshap evaluate --model runs/rating      # an imdb-rating model: also the mean absolute error in stars",
        run,
    )
    add_model_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"test_accuracy", "n", "classes", "per_class", "confusion_matrix", "roc_auc", ...}; for a '
        'multi-label model {"label_accuracy", "subset_accuracy", "per_label", "micro_f1", "macro_f1", ...}',
    )
    add_data_options(p)
    add_task_option(p)
