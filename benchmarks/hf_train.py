"""Train a small BERT-style IMDB classifier with ``transformers`` on this CPU (minutes), so
there is a trained Hugging Face model to explain and to measure faithfulness on. ``--arch
electra`` trains an ELECTRA of the same size instead, ``--arch llama`` a Llama decoder (byte-level
BPE, 2 key/value heads, SwiGLU 4x hidden, classified at the last real token): both are explained
through the op-level route.

A WordPiece tokenizer is trained on the training reviews (``tokenizers``), a
``BertForSequenceClassification`` (hidden 128, 2 layers, 2 heads, ff 512, 128 tokens) is trained
from scratch with AdamW on the first ``--train`` IMDB training reviews, the epoch with the best
accuracy on the next ``--val`` training reviews is kept, and its accuracy on ``--test`` test
reviews is recorded. ``--out`` is a ``save_pretrained`` directory (``seqshap.load`` reads it) with
seqshap's ``metrics.json`` beside it (the report shows its curves and test accuracy).

    python benchmarks/hf_train.py --out runs/hf-bert-imdb
    python benchmarks/hf_train.py --arch llama --out runs/hf-llama-imdb
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_build import byte_bpe, classifier, decoder, save, wordpiece


def batches(enc: dict, labels: np.ndarray, size: int, shuffle: np.random.Generator | None = None):
    order = shuffle.permutation(len(labels)) if shuffle is not None else np.arange(len(labels))
    for i in range(0, len(order), size):
        rows = torch.from_numpy(order[i : i + size])
        yield enc["input_ids"][rows], enc["attention_mask"][rows], torch.from_numpy(labels[order[i : i + size]])


@torch.no_grad()
def evaluate(model, enc: dict, labels: np.ndarray, size: int = 256) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for ids, mask, y in batches(enc, labels, size):
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
    return loss / len(labels), correct / len(labels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/hf-bert-imdb")
    ap.add_argument("--arch", choices=("bert", "electra", "llama"), default="bert")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--test", type=int, default=25000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--maxlen", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from seqshap.data import load_imdb

    torch.manual_seed(args.seed)
    data = load_imdb()
    train, test = data["train"], data["test"]
    t0 = time.perf_counter()
    make_tok = byte_bpe if args.arch == "llama" else wordpiece
    tok = make_tok(train.texts[: args.train], args.vocab, args.maxlen)
    print(f"tokenizer: {len(tok)} tokens in {time.perf_counter() - t0:.0f} s")

    def encode(texts):
        return tok(list(texts), padding="max_length", truncation=True, max_length=args.maxlen, return_tensors="pt")

    n, v = args.train, args.val
    enc_tr, y_tr = encode(train.texts[:n]), train.labels[:n].astype(np.int64)
    enc_va, y_va = encode(train.texts[n : n + v]), train.labels[n : n + v].astype(np.int64)
    if args.arch == "llama":
        model = decoder(tok, args.hidden, args.layers, args.heads, 2, 4 * args.hidden, positions=args.maxlen)
    else:
        model = classifier(args.arch, tok, args.hidden, args.layers, args.heads, 4 * args.hidden, positions=args.maxlen)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((n + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps)
    )
    rng = np.random.default_rng(args.seed)
    history, best, best_acc = [], None, -1.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        total = correct = 0.0
        for ids, mask, y in batches(enc_tr, y_tr, args.batch, rng):
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss) * len(y)
            correct += float((logits.argmax(1) == y).sum())
        seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(model, enc_va, y_va)
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / n,
                "train_accuracy": correct / n,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": seconds,
            }
        )
        print(json.dumps(history[-1]))
        if val_acc > best_acc:
            best, best_acc = copy.deepcopy(model.state_dict()), val_acc
    model.load_state_dict(best)
    t0 = time.perf_counter()
    test_loss, test_acc = evaluate(model, encode(test.texts[: args.test]), test.labels[: args.test].astype(np.int64))
    print(f"test accuracy {test_acc:.4f} on {min(args.test, len(test))} reviews ({time.perf_counter() - t0:.0f} s)")
    out = save(model, tok, args.out)
    best_epoch = max(history, key=lambda h: h["val_accuracy"])["epoch"]
    metrics = {
        "history": history,
        "best_epoch": best_epoch,
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "n_test": min(args.test, len(test)),
        "n_train": n,
        "n_val": v,
        "trained_with": {k: getattr(args, k) for k in vars(args) if k != "out"},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    import seqshap

    loaded = seqshap.load(out)  # as a user loads it; explain one review as a check
    exp = seqshap.DeepExplainer(loaded, train.texts[:20]).explain([test.texts[0]])[0]
    print(
        f"saved to {out}; explained one test review: prediction {exp.prediction:.4f}, "
        f"completeness error {exp.completeness_error:.1e}; top words {exp.top(5)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
