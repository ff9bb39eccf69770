"""Regenerate the faithfulness table of BENCHMARKS.md: every attribution method on the same reviews.

For each model (the shipped default LSTM and, with ``--other``, another architecture) this
scores deepshap, deeplift, gradxinput, ig, occlusion, sampling-shapley and random on N test
reviews (a seeded sample): deletion AOPC, ERASER comprehensiveness/sufficiency, agreement
with exact Shapley on short texts, the planted-word check and seconds per review. Writes
``OUT/<model>/faithfulness.{csv,md,json,png}`` and ``OUT/BENCHMARKS-faithfulness.md`` (the
section to paste, with command, date and machine).

    nice .venv/bin/python benchmarks/faithfulness.py --n 500 --other runs/faith-gru --out runs/faithfulness
    # the other model, if missing: seqshap train --arch gru --epochs 2 --out runs/faith-gru
    # re-render the Markdown from the saved JSON without recomputing:
    .venv/bin/python benchmarks/faithfulness.py --out runs/faithfulness --render-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path

METHODS = "deepshap,deeplift,gradxinput,ig,occlusion,sampling-shapley,random"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} thread(s))"
    )


def run_model(path: str | None, out: Path, a, progress: bool, command: str) -> tuple[str, Path]:
    from seqshap import load
    from seqshap.data import load_imdb
    from seqshap.faithfulness.evaluate import run_on_imdb
    from seqshap.faithfulness.report import write_outputs

    model = load(path)
    imdb = load_imdb(download_missing=False)
    load1 = os.getloadavg()[0]
    t0 = time.time()
    result = run_on_imdb(
        model,
        list(imdb["test"].texts),
        list(imdb["train"].texts[: a.background]),
        a.methods.split(","),
        n=a.n,
        n_short=a.short,
        short_words=a.short_words,
        n_planted=a.planted,
        seed=a.seed,
        n_permutations=a.permutations,
        ig_steps=a.ig_steps,
        progress=progress,
    )
    result.meta.update(
        {
            "arch": model.config["arch"],
            "model_path": str(model.path),
            "wall_seconds": time.time() - t0,
            "load_average_start": load1,
            "load_average_end": os.getloadavg()[0],
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "command": command,
            "started_unix": t0,
        }
    )
    d = out / f"{model.name}-{model.config['arch']}"
    write_outputs(result, d)
    return model.name, d / "faithfulness.json"


def render(out: Path, command: str) -> str:
    from seqshap.faithfulness.report import load_result, to_markdown

    parts = ["## Faithfulness: DeepSHAP against other attribution methods", ""]
    results = sorted(
        (load_result(p) for p in out.glob("*/faithfulness.json")), key=lambda r: r.meta.get("started_unix") or 0
    )  # in the order they were run
    if not results:
        raise SystemExit(f"no results under {out}")
    m = results[0].meta
    commands = list(dict.fromkeys(r.meta.get("command") or command for r in results))  # unique, in order
    dates = list(dict.fromkeys(str(r.meta.get("date")) for r in results))
    parts += [
        f"Command{'s' if len(commands) > 1 else ''}: " + "; ".join(f"`{c}`" for c in commands) + "  ",
        f"Date: {', '.join(dates)}  ",
        f"Machine: {m.get('machine')}",
        "",
    ]
    for r in results:
        acc = r.meta.get("test_accuracy")
        title = f"{r.model} ({r.meta.get('arch')}, test accuracy {acc:.4f})" if acc else r.model
        parts.append(to_markdown(r, title=title))
        parts.append(
            f"Wall time {r.meta.get('wall_seconds', float('nan')) / 60:.1f} min; load average "
            f"{r.meta.get('load_average_start', float('nan')):.1f} at the start, "
            f"{r.meta.get('load_average_end', float('nan')):.1f} at the end (shared machine: costs "
            f"are comparable between methods, not to an idle machine). DeepSHAP background: first "
            f"{r.meta.get('n_background')} training reviews; IG: {r.meta.get('ig_steps')} Gauss-Legendre "
            f"points; sampling-shapley: {r.meta.get('n_permutations')} permutations "
            f"({r.meta.get('n_permutations', 0) // 2} antithetic pairs).\n"
        )
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument(
        "--other", action="append", default=[], metavar="DIR", help="another model directory to compare on (repeatable)"
    )
    ap.add_argument("--skip-default", action="store_true", help="do not run the shipped default model")
    ap.add_argument("--background", type=int, default=100)
    ap.add_argument("--short", type=int, default=100)
    ap.add_argument("--short-words", type=int, default=10)
    ap.add_argument("--planted", type=int, default=100)
    ap.add_argument("--permutations", type=int, default=8)
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--render-only", action="store_true", help="only rebuild the Markdown from OUT/*/faithfulness.json")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    command = "python benchmarks/faithfulness.py " + " ".join(
        shlex.quote(x) for x in sys.argv[1:] if x != "--render-only"
    )
    if not a.render_only:
        for path in ([] if a.skip_default else [None]) + a.other:
            name, p = run_model(path, a.out, a, progress=not a.quiet, command=command)
            print(f"{name}: wrote {p.parent}", file=sys.stderr)
    from seqshap import atomic

    text = render(a.out, command)
    atomic.write_text(a.out / "BENCHMARKS-faithfulness.md", text)
    print(text)


if __name__ == "__main__":
    main()
