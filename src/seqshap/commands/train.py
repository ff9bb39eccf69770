"""``seqshap train``."""

from __future__ import annotations

from pathlib import Path

from .._validation import FRACTION, POSITIVE, POSITIVE_NUMBER, at_least
from .common import UsageError, add_command, add_data_options, data_hint

FLAGS = ("--resume", "--overwrite", "--out")


def run(args) -> int:
    from ..store import MAX_MAXLEN  # loads torch: not at parse time

    if args.maxlen > MAX_MAXLEN:
        raise UsageError(f"--maxlen must be at most {MAX_MAXLEN:,}, got {args.maxlen:,}")
    from ..models import SIZE_PARAMETER
    from ..train import OutputExistsError, TrainConfig, check_output_dir, data_record, train

    try:  # before the data are read: a model already in --out is refused at once
        check_output_dir(args.out, args.resume, args.overwrite, FLAGS)
    except (OutputExistsError, ValueError, NotADirectoryError) as e:
        raise UsageError(str(e)) from None
    if args.test_data and not args.data:
        raise UsageError("--test-data needs --data (otherwise the IMDB test split is used)")
    if args.data and args.task:
        raise UsageError("--task picks what to learn from the IMDB archive; with --data the labels are your file's")
    if args.multi_label and not args.data:
        raise UsageError(
            "--multi-label reads several labels per text from --data (the IMDB archive has one per review)"
        )
    if args.multi_label and args.head != "auto":
        raise UsageError(
            f"--head {args.head} does not go with --multi-label: a multi-label model has a sigmoid per label "
            "(drop --head)"
        )
    from ..data import DEFAULT_CLASSES, load_task, read_labeled
    from ..train import model_outputs

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
        multi_label=args.multi_label,
        model={SIZE_PARAMETER[args.arch]: args.hidden} if args.hidden else {},
    )
    task = args.task or ("imdb" if not args.data else None)
    if args.data:
        multi = args.multi_label
        train_split = read_labeled(args.data, args.text_column, args.label_column, multi_label=multi)
        records = {"train": data_record(train_split, str(Path(args.data).resolve()), args.data)}
        test_split = (
            read_labeled(
                args.test_data, args.text_column, args.label_column, classes=train_split.classes, multi_label=multi
            )
            if args.test_data
            else None
        )
        if test_split is not None:
            records["test"] = data_record(test_split, str(Path(args.test_data).resolve()), args.test_data)
    else:
        with data_hint(args):
            imdb = load_task(task or "imdb", args.imdb)
        train_split, test_split = imdb["train"], imdb["test"]
        archive = str(Path(args.imdb).resolve()) if args.imdb else "the shipped archive"
        what = "" if task == "imdb" else f", labelled by {task}"
        records = {
            "train": data_record(train_split, f"IMDB train split ({archive}{what})"),
            "test": data_record(test_split, f"IMDB test split ({archive}{what})"),
        }
    try:
        outputs = model_outputs(tuple(train_split.classes or DEFAULT_CLASSES), args.head)
    except ValueError as e:
        raise UsageError(f"--head {args.head}: {e}") from None
    if args.head == "softmax":  # two classes default to a sigmoid; say so in the model settings
        cfg.model["outputs"] = outputs
    model = train(
        train_split,
        args.out,
        cfg,
        test_split=test_split,
        resume=args.resume,
        progress=not args.quiet,
        device=args.device,
        overwrite=args.overwrite,
        data_records=records,
        task=task if task != "imdb" else None,
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
        "  seqshap train --data reviews.csv --text-column review --label-column sentiment --out runs/mine\n"
        "  seqshap train --task imdb-rating --arch cnn --maxlen 400 --out runs/rating   # 8 star ratings, a softmax\n"
        "  seqshap train --arch lstm --epochs 20 --out runs/lstm --resume   # continue an interrupted or finished run\n"
        "  seqshap train --data tags.csv --label-column tags --multi-label --out runs/tags   # tags: 'acting|plot'",
        run,
    )
    p.add_argument("--arch", choices=TRAINABLE, default="lstm")
    p.add_argument("--epochs", type=POSITIVE, default=15)
    p.add_argument("--batch-size", type=POSITIVE, default=32)
    p.add_argument("--lr", type=POSITIVE_NUMBER, default=1e-3)
    p.add_argument("--maxlen", type=POSITIVE, default=80)
    p.add_argument("--num-words", type=at_least(4), default=20000)
    p.add_argument(
        "--hidden",
        type=POSITIVE,
        default=None,
        help="the architecture's size (seqshap.models.SIZE_PARAMETER): the recurrent state of lstm, gru, bilstm "
        "and lstm2 (hidden, default 128), the CNN's filters (default 128), the Transformer's feed-forward "
        "width (ff_dim, default 128)",
    )
    p.add_argument("--val-fraction", type=FRACTION, default=0.1)
    p.add_argument(
        "--patience", type=POSITIVE, default=3, help="stop after this many epochs without a better validation accuracy"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lr-decay",
        type=POSITIVE_NUMBER,
        default=1.0,
        metavar="FACTOR",
        help="multiply the learning rate by FACTOR after each epoch whose validation accuracy "
        "is not the best so far (default 1: off)",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (interrupted, or finished with fewer --epochs); "
        "refused if the data or options differ",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model or checkpoint already in --out (without it, a model there is never overwritten)",
    )
    p.add_argument("--test-data", help="CSV/JSONL test file (with --data); its labels must be among --data's")
    from ..data import TASKS

    p.add_argument(
        "--task",
        choices=TASKS,
        default=None,
        help="what to learn from the IMDB archive: imdb (sentiment, 2 classes; the default) or imdb-rating "
        "(the star rating in each file name: 1, 2, 3, 4, 7, 8, 9, 10 — 8 classes)",
    )
    p.add_argument(
        "--head",
        choices=("auto", "sigmoid", "softmax"),
        default="auto",
        help="auto (default): a sigmoid for two classes, a softmax over the classes for more; softmax forces "
        "one output per class for two classes too",
    )
    p.add_argument(
        "--multi-label",
        action="store_true",
        help="several labels per text (with --data): the label column holds them separated by | (acting|plot); "
        "an empty cell is refused (name at least one label per row). One sigmoid per label, trained with binary "
        "cross-entropy on each; the reported accuracy is the mean per-label accuracy at 0.5. Explain any label "
        "with explain --target LABEL",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", default="cpu", help="where to compute: cpu (default) or cuda")
    add_data_options(p)
