"""``seqshap train``."""

from __future__ import annotations

from .common import UsageError, add_command, add_data_options


def run(args) -> int:
    from ..data import load_imdb, read_labeled
    from ..train import TrainConfig, train

    cfg = TrainConfig(
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        maxlen=args.maxlen,
        num_words=args.num_words,
        val_fraction=args.val_fraction,
        patience=args.patience,
        seed=args.seed,
        lr_decay=args.lr_decay,
        model={"hidden": args.hidden} if args.hidden else {},
    )
    if args.data:
        train_split = read_labeled(args.data, args.text_column, args.label_column)
        test_split = read_labeled(args.test_data, args.text_column, args.label_column) if args.test_data else None
    else:
        if args.test_data:
            raise UsageError("--test-data needs --data (otherwise the IMDB test split is used)")
        imdb = load_imdb(args.imdb)
        train_split, test_split = imdb["train"], imdb["test"]
    model = train(
        train_split,
        args.out,
        cfg,
        test_split=test_split,
        resume=args.resume,
        progress=not args.quiet,
        device=args.device,
    )
    print(f"model written to {model.path}")
    return 0


def register(sub) -> None:
    from ..models import TRAINABLE

    p = add_command(
        sub,
        "train",
        "train a classifier on IMDB (or your CSV/JSONL) and write a model directory",
        "seqshap train --arch lstm --epochs 15 --out runs/lstm\n"
        "  seqshap train --data reviews.csv --text-column review --label-column sentiment --out runs/mine",
        run,
    )
    p.add_argument("--arch", choices=TRAINABLE, default="lstm")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--maxlen", type=int, default=80)
    p.add_argument("--num-words", type=int, default=20000)
    p.add_argument("--hidden", type=int, default=None, help="hidden size / filters (default 128)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument(
        "--patience", type=int, default=3, help="stop after this many epochs without a better validation accuracy"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lr-decay",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply the learning rate by FACTOR after each epoch whose validation accuracy "
        "is not the best so far (default 1: off)",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--test-data", help="CSV/JSONL test file (with --data)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", default="cpu", help="where to compute: cpu (default) or cuda")
    add_data_options(p)
