"""``seqshap evaluate``."""

from __future__ import annotations

import json

from .common import add_command, add_data_options, add_model_option


def run(args) -> int:
    import torch

    from .. import load
    from ..data import load_imdb, read_labeled
    from ..train import evaluate_ids

    model = load(args.model)
    split = read_labeled(args.data, args.text_column, args.label_column) if args.data else load_imdb(args.imdb)["test"]
    _, acc = evaluate_ids(model.net, model.encode(split.texts), torch.from_numpy(split.labels))
    if args.json:
        print(json.dumps({"test_accuracy": acc, "n": len(split), "model": str(model.path)}, allow_nan=False))
    else:
        print(f"test accuracy {acc:.4f} on {len(split)} reviews ({model.path})")
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "evaluate",
        "test accuracy of a model on the 25,000 IMDB test reviews (or --data)",
        "seqshap evaluate --json\n  seqshap evaluate --model runs/lstm",
        run,
    )
    add_model_option(p)
    p.add_argument("--json", action="store_true", help='print {"test_accuracy": ..., "n": ...}')
    add_data_options(p)
