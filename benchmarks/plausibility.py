"""The plausibility rows of BENCHMARKS.md: every method against human word ratings (issue 32).

For each model (the shipped LSTM and, with ``--other``, more model directories: the default
Transformer, a small BERT, ...) this runs ``seqshap.faithfulness.run_on_imdb`` with
``plausibility=True`` on N seeded test reviews: sign agreement on strongly rated words, Spearman ρ
of words' mean attributions against their ratings, and the share of strongly rated words among each
explanation's top 5, against the VADER lexicon (Hutto & Gilbert 2014) of the installed
``vaderSentiment`` (``pip install 'seqshap[plausibility]'``). The removal metrics (deletion,
comprehensiveness, sufficiency) come with it on the same reviews; agreement with exact Shapley and
the planted-word check are left out (``--short``/``--planted`` of ``benchmarks/faithfulness.py``
measure those). ``--peers`` adds shap's and Captum's methods as extra rows (``benchmarks/peers.py``).

Writes ``OUT/<model>/faithfulness.{csv,md,json,png}`` and ``OUT/BENCHMARKS-plausibility.md`` (the
section to paste, with the command, date, machine and load average).

    nice .venv/bin/python benchmarks/plausibility.py --n 500 --peers shap-partition,captum-deepliftshap,captum-lig \
        --other runs/tf80 --other runs/hf-bert-imdb --whole-reviews --out runs/plausibility      # the issue's rows
    nice .venv/bin/python benchmarks/plausibility.py --n 50 --methods deepshap,gradxinput,occlusion,random \
        --out runs/plausibility-50                                                              # a small run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faithfulness import check_empty_row, machine, result_dir, texts_for  # the benchmark beside this one

METHODS = "deepshap,deeplift,gradxinput,ig,occlusion,sampling-shapley,random"


def run_model(path: str | None, a, command: str) -> Path:
    """Score every method (and peer) on one model; the result's JSON path."""
    from peers import make_peers
    from seqshap import load
    from seqshap.faithfulness.evaluate import run_on_imdb
    from seqshap.faithfulness.report import write_outputs

    model = load(path)
    test_texts, background, n_test, whole = texts_for(model, a)
    names = [m for m in a.methods.split(",") if m]
    peer_names = [p for p in a.peers.split(",") if p and p != "none"]
    peers = make_peers(peer_names, model, background, seed=a.seed, ig_steps=a.ig_steps, max_evals=a.max_evals)
    check_empty_row(model, names + list(peers), whole)
    load1, t0 = os.getloadavg()[0], time.time()
    result = run_on_imdb(
        model,
        test_texts,
        background,
        names,
        n=a.n,
        n_short=0,
        n_planted=0,
        seed=a.seed,
        ig_steps=a.ig_steps,
        n_permutations=a.permutations,
        progress=not a.quiet,
        extra_methods=peers,
        plausibility=True,
    )
    result.meta.update(
        {
            "arch": model.config["arch"],
            "model_path": str(model.path),
            "peers": list(peers),
            "whole_reviews": {"kept": len(test_texts), "of": n_test} if whole else None,
            "wall_seconds": time.time() - t0,
            "load_average_start": load1,
            "load_average_end": os.getloadavg()[0],
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "command": command,
            "started_unix": t0,
        }
    )
    d = result_dir(model, a.out)
    write_outputs(result, d)
    return d / "faithfulness.json"


def render(out: Path) -> str:
    """The BENCHMARKS.md section from every ``OUT/*/faithfulness.json`` with plausibility, in run order."""
    from seqshap.faithfulness.report import load_result, not_best_sentence, plausibility_markdown

    results = sorted(
        (r for r in (load_result(p) for p in out.glob("*/faithfulness.json")) if "plausibility" in r.meta),
        key=lambda r: r.meta.get("started_unix") or 0,
    )
    if not results:
        raise SystemExit(f"no plausibility results under {out}")
    parts = ["## Plausibility: explanations against human word ratings", ""]
    for r in results:
        m = r.meta
        acc = m.get("test_accuracy")
        parts += [
            f"### {r.model} ({m.get('arch')}{f', test accuracy {acc:.4f}' if acc else ''}), {r.n} test reviews",
            "",
            f"Command: `{m.get('command')}`  ",
            f"Date: {m.get('date')}; load average {m.get('load_average_start', float('nan')):.2f} at the start, "
            f"{m.get('load_average_end', float('nan')):.2f} at the end; wall time "
            f"{m.get('wall_seconds', float('nan')) / 60:.1f} min  ",
            f"Machine: {m.get('machine')}",
            "",
            *plausibility_markdown(r)[2:],  # the table and its notes, under this heading
            "",
        ]
        faith = not_best_sentence(r)
        if faith:
            parts += [f"Faithfulness on the same reviews (deletion, comprehensiveness, sufficiency, cost): {faith}", ""]
    return "\n".join(parts)


def main() -> None:
    from seqshap import atomic

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=500, help="test reviews (a seeded sample; default 500)")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--other", action="append", default=[], metavar="DIR", help="another model directory (repeatable)")
    ap.add_argument("--skip-default", action="store_true", help="do not run the shipped default model")
    ap.add_argument("--peers", default="none", help="peers as extra rows (benchmarks/peers.py names; default none)")
    ap.add_argument("--background", type=int, default=100)
    ap.add_argument("--permutations", type=int, default=8)
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--max-evals", type=int, default=500, help="shap PartitionExplainer's model calls per text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--whole-reviews", action="store_true", help="as benchmarks/faithfulness.py's")
    ap.add_argument("--render-only", action="store_true", help="only rebuild the Markdown from OUT/*/faithfulness.json")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    command = "python benchmarks/plausibility.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    if not a.render_only:
        for path in ([None] if not a.skip_default else []) + a.other:
            print(f"wrote {run_model(path, a, command)}", file=sys.stderr)
    md = render(a.out)
    atomic.write_text(a.out / "BENCHMARKS-plausibility.md", md)
    print(md)


if __name__ == "__main__":
    main()
