"""``seqshap import-torch``."""

from __future__ import annotations

import json

from .common import UsageError, add_command


def run(args) -> int:
    from ..attribution import DeepExplainer
    from ..torch_import import import_torch

    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except json.JSONDecodeError as e:
        raise UsageError(f"--kwargs: not JSON ({e})") from None
    if not isinstance(kwargs, dict):
        raise UsageError("--kwargs: expected a JSON object of keyword arguments")
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    model = import_torch(
        args.entry,
        args.weights,
        args.out,
        vocab=args.vocab,
        maxlen=args.maxlen,
        kwargs=kwargs,
        classes=classes,
        name=args.name,
        overwrite=args.overwrite,
    )
    # A dry run of the explainer: an operation without an exact rule is named now, with your line.
    DeepExplainer(model, ["a short text", "another text"]).explain(["one more text"])
    code = model.path / model.config["code"]["file"]
    print(f"model written to {model.path} ({model.config['code']['entry']}, maxlen {model.maxlen})")
    print(f"classes: {', '.join(model.classes)}")
    print(f'explain it with: seqshap explain --model {model.path} --code {code} "a text"')
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "import-torch",
        "make a model directory of your own PyTorch classifier (your Python file and its weights); every "
        "command then explains it exactly, given --code",
        "seqshap import-torch my_model.py:TextClassificationModel --weights model.safetensors "
        "--vocab vocab.json --kwargs '{\"embed_dim\": 64}' --out runs/mine\n"
        '  seqshap explain --model runs/mine --code runs/mine/my_model.py "a wonderful film"',
        run,
    )
    p.add_argument("entry", metavar="FILE.py:NAME", help="your model: a class (or a function returning one) in FILE.py")
    p.add_argument(
        "--weights", required=True, metavar="FILE", help="its weights: .safetensors or a torch.save'd state dict"
    )
    p.add_argument("--vocab", required=True, metavar="JSON", help="the seqshap vocab.json your ids come from")
    p.add_argument("--kwargs", default="", metavar="JSON", help="keyword arguments for NAME, as a JSON object")
    p.add_argument("--maxlen", type=int, default=80, help="tokens per text (default 80)")
    p.add_argument("--classes", default=None, metavar="A,B", help="class names of the outputs, in column order")
    p.add_argument("--name", default=None, help="model name (default: the Python file's name)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
