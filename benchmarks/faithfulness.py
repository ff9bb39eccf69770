"""Regenerate the faithfulness table of BENCHMARKS.md: every attribution method on the same reviews.

For each model (the shipped default LSTM and, with ``--other``, another model directory: a
native Transformer, a Hugging Face BERT, ...) this scores deepshap, deeplift, gradxinput, ig,
occlusion, sampling-shapley and random on N test reviews (a seeded sample): deletion AOPC,
ERASER comprehensiveness/sufficiency, agreement with exact Shapley on short texts, the
planted-word check and seconds per review. With ``--peers`` (default: all) the installed
peers run in the same pass as extra columns (``benchmarks/peers.py``): shap's
PartitionExplainer (Text masker), Captum's DeepLiftShap (on the token embeddings) and LayerIntegratedGradients;
a completeness table follows each model's table. Writes
``OUT/<model>/faithfulness.{csv,md,json,png}`` and ``OUT/BENCHMARKS-faithfulness.md`` (the
section to paste, with command, date, machine and load).

    nice .venv/bin/python benchmarks/faithfulness.py --n 500 --other runs/faith-gru --out runs/faithfulness
    nice .venv/bin/python benchmarks/faithfulness.py --n 100 --skip-default --other runs/tf80 \
        --other runs/hf-bert-imdb --out runs/faithfulness-peers
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PEERS, make_peers  # the benchmark-only module beside this script
from seqshap.faithfulness.evaluate import EMPTY_REFERENCE, empty_row_output, whole_texts

METHODS = "deepshap,deeplift,gradxinput,ig,occlusion,sampling-shapley,random"
# The base each of seqshap's additive methods is relative to, in words (for the completeness table).
SEQSHAP_REFERENCES = {
    "deepshap": "E f(background)",
    "deeplift": "f(the empty text)",
    "ig": "f(x with its words padded, special tokens kept)",
    "exact-shapley": "f(x with its words padded, special tokens kept)",
    "sampling-shapley": "f(x with its words padded, special tokens kept)",
}


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


def short_words_for(model, test_texts: list[str], a) -> int:
    """``--short-words``, or fewer where the model's tokens outnumber the words (subwords, ``[CLS]``
    and ``[SEP]`` are players of exact Shapley too): the most words whose short texts all stay
    within ``--max-players`` players."""
    from seqshap.attribution import ExactShapley
    from seqshap.faithfulness.evaluate import short_texts

    if not a.short:
        return a.short_words
    main = sample(test_texts, a)
    exact = ExactShapley(model, max_players=a.max_players)
    for k in range(a.short_words, 0, -1):
        if exact.supports(short_texts(model, main[: a.short], k)):
            return k
    raise SystemExit(f"{model.name}: even one-word short texts have more than {a.max_players} players")


def completeness_table(result, peers: dict, ids) -> dict:
    """Per additive method: its reference, median and max |sum phi - (f(x) - base)| on the main
    reviews, and for the peers the same against seqshap's base for that game."""
    table = {}
    # DeepLIFT's default reference: the empty text as the tokenizer writes it (its layout's empty row)
    right = result.meta.get("layout", {}).get("padding_side") == "right"
    empty = "f(the empty text: [CLS] [SEP])" if right else "f(the empty text: the start token alone)"
    refs = {**SEQSHAP_REFERENCES, "deeplift": empty}
    for r in result.rows:
        per = result.per_review.get(r.method, {}).get("completeness")
        if not per:
            continue
        per = np.asarray(per, dtype=np.float64)
        entry = {
            "reference": refs.get(r.method, ""),
            "median": float(np.median(per)),
            "max": float(per.max()),
            "seconds_per_review": r.seconds_per_review,
            "peer": r.method in peers,
        }
        if r.method in peers:
            peer = peers[r.method]
            c = peer.completeness(ids)
            entry.update(
                reference=peer.reference,
                seqshap_base=peer.seqshap_base,
                median_vs_seqshap=c["median_vs_seqshap"],
                max_vs_seqshap=c["max_vs_seqshap"],
            )
            if hasattr(peer, "captum_deltas"):
                d = peer.captum_deltas(ids)
                entry["captum_delta_median"] = float(np.nanmedian(d)) if np.isfinite(d).any() else float("nan")
                entry["captum_delta_nonfinite"] = int((~np.isfinite(d)).sum())
        table[r.method] = entry
    return table


def check_empty_row(model, names: list[str], whole_reviews: bool) -> None:
    """Refuse, before hours of work, methods a NaN row of padding only would break (the library's check)."""
    from seqshap.faithfulness.evaluate import check_empty_row as check

    try:
        check(model, names, whole_reviews)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def result_dir(model, out: Path) -> Path:
    return out / f"{model.name}-{model.config['arch']}".replace("/", "_")


def texts_for(model, a) -> tuple[list[str], list[str], int, bool]:
    """(the test texts to sample from, the background texts, how many test texts there are, whether
    only whole reviews are kept)."""
    from seqshap.data import load_imdb

    imdb = load_imdb(download_missing=False)
    test_texts = list(imdb["test"].texts)
    n_test = len(test_texts)
    whole = a.whole_reviews and not np.isfinite(empty_row_output(model))
    if whole:
        test_texts = whole_texts(model, test_texts)
    return test_texts, list(imdb["train"].texts[: a.background]), n_test, whole


def sample(test_texts: list[str], a) -> list[str]:
    """The main set: the seeded sample run_on_imdb draws (its documented main set)."""
    return [test_texts[i] for i in np.random.default_rng(a.seed).permutation(len(test_texts))[: a.n]]


def cost_check(path: str | None, out: Path, a, command: str) -> Path:
    """Seconds per review of every method (named and peers) on the first ``--cost`` reviews of the
    main sample, in ``--cost-rounds`` rounds with the order rotated each round: a change of the
    machine's load falls on every method alike (the main run times them one after another)."""
    from seqshap import atomic, load
    from seqshap.attribution import make_method

    model = load(path)
    test_texts, background, _, _ = texts_for(model, a)
    ids = model.encode(sample(test_texts, a)[: a.cost])
    methods = {
        name: make_method(
            name, model, background=background, seed=a.seed, ig_steps=a.ig_steps, n_permutations=a.permutations
        )
        for name in a.methods.split(",")
    }
    methods.update(
        make_peers(
            [p for p in a.peers.split(",") if p and p != "none"],
            model,
            background,
            seed=a.seed,
            ig_steps=a.ig_steps,
            max_evals=a.max_evals,
        )
    )
    for m in methods.values():  # one-time costs (compilation, hooks, dry runs) out of the timing
        m.attribute(ids[:1])
    names = list(methods)
    times: dict[str, list[float]] = {n: [] for n in names}
    loads = [os.getloadavg()[0]]
    for r in range(a.cost_rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            methods[n].attribute_with_base(ids)
            times[n].append((time.perf_counter() - t0) / len(ids))
        loads.append(os.getloadavg()[0])
    path_out = result_dir(model, out) / "cost.json"
    path_out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(
        path_out,
        {
            "n": len(ids),
            "rounds": a.cost_rounds,
            "seconds_per_review": times,
            "load_averages": loads,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
        },
    )
    return path_out


def cost_markdown(directory: Path) -> str:
    path = directory / "cost.json"
    if not path.is_file():
        return ""
    import json

    c = json.loads(path.read_text(encoding="utf-8"))
    med = {m: float(np.median(v)) for m, v in c["seconds_per_review"].items()}
    loads = c["load_averages"]
    ranked = sorted(med.items(), key=lambda kv: kv[1])
    cells = ", ".join(f"{m} {v:.2g}" if v < 0.01 else f"{m} {v:.3f}" for m, v in ranked)
    return (
        f"Cost again, interleaved ({c['date']}, `{c['command']}`): the first {c['n']} reviews of the sample, "
        f"{c['rounds']} rounds, the methods' order rotated each round, load average {min(loads):.1f}-"
        f"{max(loads):.1f}; median s / review, fastest first: {cells}.\n"
    )


def run_model(path: str | None, out: Path, a, progress: bool, command: str) -> tuple[str, Path]:
    from seqshap import load
    from seqshap.faithfulness.evaluate import layout_of, run_on_imdb
    from seqshap.faithfulness.report import write_outputs

    model = load(path)
    test_texts, background, n_test, whole = texts_for(model, a)
    peers = make_peers(
        [p for p in a.peers.split(",") if p and p != "none"],
        model,
        background,
        seed=a.seed,
        ig_steps=a.ig_steps,
        max_evals=a.max_evals,
    )
    check_empty_row(model, a.methods.split(",") + list(peers), whole)
    short_words = short_words_for(model, test_texts, a)
    if peers:  # one-time costs (shap's numba compilation, Captum's hooks) out of the per-review time
        warm = model.encode(test_texts[-1:])
        for peer in peers.values():
            peer.attribute(warm)
    load1 = os.getloadavg()[0]
    t0 = time.time()
    result = run_on_imdb(
        model,
        test_texts,
        background,
        a.methods.split(","),
        n=a.n,
        n_short=a.short,
        short_words=short_words,
        n_planted=a.planted,
        seed=a.seed,
        n_permutations=a.permutations,
        ig_steps=a.ig_steps,
        progress=progress,
        extra_methods=peers,
    )
    wall = time.time() - t0
    main = sample(test_texts, a)
    layout = layout_of(model)
    result.meta["layout"] = layout.to_json()
    result.meta["empty_row_finite"] = bool(np.isfinite(empty_row_output(model)))
    result.meta.update(
        {
            "completeness": completeness_table(result, peers, model.encode(main)),
            "peers": list(peers),
            "max_evals": a.max_evals,
            "short_words_asked": a.short_words,
            "whole_reviews": {"kept": len(test_texts), "of": n_test} if whole else None,
            "arch": model.config["arch"],
            "model_path": str(model.path),
            "wall_seconds": wall,
            "load_average_start": load1,
            "load_average_end": os.getloadavg()[0],
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "command": command,
            "started_unix": t0,
        }
    )
    d = result_dir(model, out)
    write_outputs(result, d)
    return model.name, d / "faithfulness.json"


def _miss(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.1e}"


def completeness_markdown(meta: dict) -> str:
    """The completeness table of one model (additive methods, seqshap's and the peers')."""
    table = meta.get("completeness") or {}
    if not table:
        return ""
    lines = [
        "| method | base value (reference) | median miss | max miss | against seqshap's base: median / max "
        "| s / review |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, e in table.items():
        vs = (
            f"{_miss(e.get('median_vs_seqshap'))} / {_miss(e.get('max_vs_seqshap'))} ({e.get('seqshap_base')})"
            if e.get("peer") and e.get("seqshap_base")
            else ("n/a (no seqshap input is its baseline)" if e.get("peer") else "(is seqshap)")
        )
        spr = e.get("seconds_per_review")
        cost = "n/a" if spr is None or not np.isfinite(spr) else (f"{spr:.2g}" if spr < 0.01 else f"{spr:.3f}")
        lines.append(
            f"| {name} | {e.get('reference') or ''} | {_miss(e['median'])} | {_miss(e['max'])} | {vs} | {cost} |"
        )
    notes = []
    lig = table.get("captum-lig")
    if lig and "captum_delta_median" in lig:
        bad = lig.get("captum_delta_nonfinite", 0)
        notes.append(
            f"Captum's own convergence delta for LIG (against a forward pass of the all-padding ids, not "
            f"the path's start): median {_miss(lig['captum_delta_median'])}"
            + (f", not finite for {bad} reviews" if bad else "")
            + "."
        )
    text = (
        f"Completeness on the same {meta.get('n_main', '')} reviews: miss = |Σφ − (f(x) − base)| of the "
        "explained probability, against the method's own base value and, for the peers, against the "
        "base of the seqshap method playing the same game.\n\n" + "\n".join(lines) + "\n"
    )
    return text + ("\n" + " ".join(notes) + "\n" if notes else "")


def render(out: Path, command: str) -> str:
    from seqshap.faithfulness.report import load_result, to_markdown

    parts = ["## Faithfulness: DeepSHAP against other attribution methods", ""]
    found = sorted(
        ((load_result(p), p.parent) for p in out.glob("*/faithfulness.json")),
        key=lambda rd: rd[0].meta.get("started_unix") or 0,
    )  # in the order they were run
    results = [r for r, _ in found]
    dirs = {id(r): d for r, d in found}
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
            f"({r.meta.get('n_permutations', 0) // 2} antithetic pairs)."
            + sample_sentence(r.meta)
            + peers_sentence(r.meta)
            + "\n"
        )
        table = completeness_markdown({**r.meta, "n_main": r.n})
        if table:
            parts.append(table)
        cost = cost_markdown(dirs[id(r)])
        if cost:
            parts.append(cost)
    return "\n".join(parts)


def sample_sentence(meta: dict) -> str:
    whole = meta.get("whole_reviews")
    if not whole:
        return ""
    return (
        f" Sample: only the {whole['kept']:,} of {whole['of']:,} test reviews the model reads whole with "
        f"padding to spare (--whole-reviews: its output for a row of padding only is NaN, the reference of "
        f"{', '.join(EMPTY_REFERENCE)} for a review that fills the row), so shorter reviews than in "
        "the other tables."
    )


def peers_sentence(meta: dict) -> str:
    peers = meta.get("peers") or []
    if not peers:
        return ""
    said = []
    if "shap-partition" in peers:
        said.append(
            f"shap-partition: shap {_version('shap')} PartitionExplainer, Text masker on the model's tokenizer, "
            f"a masked token padded in place, max_evals {meta.get('max_evals')}"
        )
    if "captum-deepliftshap" in peers:
        said.append(
            f"captum-deepliftshap: Captum {_version('captum')} DeepLiftShap on the token embeddings, "
            "the DeepSHAP background"
        )
    if "captum-lig" in peers:
        said.append(
            f"captum-lig: Captum {_version('captum')} LayerIntegratedGradients at the token embedding, "
            f"baseline the padding embedding at every position, {meta.get('ig_steps')} Gauss-Legendre points"
        )
    if meta.get("short_words") != meta.get("short_words_asked"):
        said.append(
            f"short texts of {meta.get('short_words')} words (not {meta.get('short_words_asked')}): "
            "subwords and [CLS]/[SEP] are exact Shapley's players too"
        )
    return " Peers (same run): " + "; ".join(said) + "."


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


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
    ap.add_argument("--ig-steps", type=int, default=32, help="seqshap's IG and Captum's LIG")
    ap.add_argument(
        "--peers", default=",".join(PEERS), help=f"installed peers to run as extra columns ({','.join(PEERS)}; none)"
    )
    ap.add_argument("--max-evals", type=int, default=500, help="shap PartitionExplainer's model calls per text")
    ap.add_argument(
        "--max-players", type=int, default=14, help="exact Shapley's limit; fewer short-text words if needed"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument(
        "--whole-reviews",
        action="store_true",
        help="for a model that gives NaN on a row of padding only (the native Transformer): only the test "
        "reviews it reads whole, so that 'every word padded' keeps the start token",
    )
    ap.add_argument("--cost", type=int, default=0, metavar="K", help="also time every method again on K reviews")
    ap.add_argument("--cost-rounds", type=int, default=3, help="rounds of --cost, the order rotated each round")
    ap.add_argument("--cost-only", action="store_true", help="only the --cost timing (into OUT/<model>/cost.json)")
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
            if not a.cost_only:
                name, p = run_model(path, a.out, a, progress=not a.quiet, command=command)
                print(f"{name}: wrote {p.parent}", file=sys.stderr)
            if a.cost or a.cost_only:
                if a.cost < 1:
                    raise SystemExit("--cost-only needs --cost K (reviews to time)")
                print(f"wrote {cost_check(path, a.out, a, command)}", file=sys.stderr)
    from seqshap import atomic

    text = render(a.out, command)
    atomic.write_text(a.out / "BENCHMARKS-faithfulness.md", text)
    print(text)


if __name__ == "__main__":
    main()
