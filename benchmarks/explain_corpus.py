"""Throughput of corpus explanation: one process vs a Dask LocalCluster with 1 and 2 workers.

The shipped default model, the seed background (first 100 training reviews), the first
``--n`` test reviews; prints a Markdown table with reviews/s and the estimated time for all
25,000 test reviews (startup + 25,000 / reviews/s). Run it on an otherwise idle machine:

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/explain_corpus.py --n 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time

import torch

from seqshap import atomic, load
from seqshap.attribution import DeepExplainer
from seqshap.data import load_imdb
from seqshap.distributed import explain_corpus
from seqshap.importance import importance_over
from seqshap.store import DEFAULT_MODEL_DIR

FULL = 25_000


def one_process(texts, labels, background, batch_size: int, threads: int) -> dict:
    """What ``seqshap importance`` does without --scheduler, with ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        explainer = DeepExplainer(load(), background)
        t1 = time.perf_counter()
        acc = importance_over(explainer, texts, labels, batch_size=batch_size)
        t2 = time.perf_counter()
    finally:
        torch.set_num_threads(before)
    assert acc.n_explanations == len(texts)
    return {"startup_s": t1 - t0, "work_s": t2 - t1}


def cluster(texts, labels, background, batch_size: int, chunk_size: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="seqshap-bench-") as out:
        _, s = explain_corpus(
            DEFAULT_MODEL_DIR,
            texts,
            labels,
            out,
            scheduler="processes",
            chunk_size=chunk_size,
            n_workers=workers,
            background=background,
            batch_size=batch_size,
            progress=False,
        )
    assert s["workers"] == workers
    assert s["reviews_explained"] == len(texts)
    return {"startup_s": s["startup_seconds"], "work_s": s["work_seconds"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="test reviews per setup (default 200)")
    ap.add_argument("--background", type=int, default=100, help="background training reviews (default 100)")
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--chunk-size", type=int, default=25, help="reviews per chunk for the cluster (default 25)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)

    imdb = load_imdb()
    test = imdb["test"].head(args.n)
    texts, labels = list(test.texts), [int(x) for x in test.labels]
    background = list(imdb["train"].head(args.background).texts)
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()

    setups = [
        ("1 process, 1 torch thread", 1, lambda: one_process(texts, labels, background, args.batch_size, 1)),
        (
            f"1 process, {os.cpu_count()} torch threads",
            1,
            lambda: one_process(texts, labels, background, args.batch_size, os.cpu_count() or 1),
        ),
        ("LocalCluster, 1 worker", 1, lambda: cluster(texts, labels, background, args.batch_size, args.chunk_size, 1)),
        ("LocalCluster, 2 workers", 2, lambda: cluster(texts, labels, background, args.batch_size, args.chunk_size, 2)),
    ]
    rows = []
    for name, workers, fn in setups:
        print(f"running: {name} ...", file=sys.stderr, flush=True)
        r = fn()
        rate = args.n / r["work_s"]
        rows.append(
            {
                "setup": name,
                "workers": workers,
                "reviews": args.n,
                "startup_s": round(r["startup_s"], 2),
                "work_s": round(r["work_s"], 2),
                "reviews_per_s": round(rate, 2),
                "est_25000_min": round((r["startup_s"] + FULL / rate) / 60, 1),
            }
        )

    print(
        f"\nseqshap corpus explanation, {started:%Y-%m-%d %H:%M %Z}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average before {load_before[0]:.2f}; torch {torch.__version__}; "
        f"default model (LSTM, maxlen 80), background {args.background}, {args.n} test reviews, "
        f"batch {args.batch_size}, chunk {args.chunk_size}\n"
    )
    print("| setup | workers | startup s | explain s | reviews/s | est. 25,000 reviews |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['setup']} | {r['workers']} | {r['startup_s']:.1f} | {r['work_s']:.1f} | "
            f"{r['reviews_per_s']:.1f} | {r['est_25000_min']:.0f} min |"
        )
    if args.json:
        atomic.write_json(
            args.json,
            {
                "date": started.isoformat(),
                "cores": os.cpu_count(),
                "load_before": load_before,
                "torch": torch.__version__,
                "args": vars(args),
                "rows": rows,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
