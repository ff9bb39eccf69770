"""``seqshap import-keras``."""

from __future__ import annotations

from .._validation import POSITIVE
from .common import add_command


def run(args) -> int:
    from ..keras_import import import_keras

    model = import_keras(
        args.model_file,
        args.out,
        word_index=args.word_index,
        maxlen=args.maxlen,
        name=args.name,
        classes=args.classes,
        output=args.output,
    )
    layers = ", ".join(model.config["imported_from"]["layers"])
    out, space = model.config["imported_from"]["output"], model.config["output_space"]
    print(f"model written to {model.path} ({layers}; maxlen {model.maxlen}, explains {out}: {space})")
    print(f"classes: {', '.join(model.classes)}")
    print(f"vocabulary: {model.config['imported_from']['vocabulary']}")
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "import-keras",
        "convert a trained Keras text classifier (.keras or legacy .h5; TensorFlow not needed) "
        "into a model directory every other command accepts",
        "seqshap import-keras model.keras --word-index word_index.json --out runs/from_keras\n"
        "  seqshap import-keras model.h5 --tokenizer tokenizer.json --maxlen 100 --out runs/mine\n"
        "  seqshap import-keras topics.keras --classes sports,politics,tech --out runs/topics\n"
        "  seqshap import-keras two_heads.keras --output sentiment --out runs/sentiment",
        run,
    )
    p.add_argument("model_file", metavar="MODEL", help="the Keras file saved with model.save(...)")
    p.add_argument(
        "--word-index",
        "--tokenizer",
        dest="word_index",
        metavar="JSON",
        default=None,
        help="the Keras imdb word index (json.dump(imdb.get_word_index(), f)) or a "
        "Tokenizer.to_json() file; without it the model explains word ids (id3, id4, ...)",
    )
    p.add_argument(
        "--maxlen",
        type=POSITIVE,
        default=None,
        help="length the texts were padded to (needed only if the model does not fix it)",
    )
    p.add_argument("--name", default=None, help="model name (default: the file name)")
    p.add_argument(
        "--classes",
        metavar="A,B,C|FILE",
        default=None,
        help="the class names of the model's outputs, in column order: a,b,c or a file (a JSON list, a JSON "
        '{"name": index} object, or one name per line); default class_0, class_1, ... for a softmax over '
        "three or more classes, negative,positive for one or two outputs. A two-class softmax explains "
        "column 1 by default",
    )
    p.add_argument(
        "--output",
        metavar="NAME",
        default=None,
        help="for a model with several outputs: the one to explain (the name of the layer that makes it)",
    )
    p.add_argument("--out", required=True, metavar="DIR")
