"""Users' own PyTorch models (tests/zoo.py at the seed job's size): what exact DeepSHAP costs.

For each zoo model, on the seed job (10 test reviews x 100 training reviews, 80 tokens, the shipped
vocabulary of 20,000 words; left-padded models get the reviews as the shipped model reads them,
right-padded ones the same ids with the padding moved to the end):

(a) seqshap DeepExplainer.shap_values(10 reviews) against the 100 references;
(b) one plain forward + backward pass of the same model over the same 1,000 (review, reference)
    rows, parameters requiring grad as in training;
ratio a/b (the issue's bound: no model above 2.0). Repetitions are interleaved and the medians
compared; the max completeness error of (a) is printed beside it. The weights are random (the cost
does not depend on training).

    python benchmarks/zoo_speed.py --reps 3 --json benchmarks/zoo_speed.json
    python benchmarks/zoo_speed.py --only transformer_encoder,bilstm_attention
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import zoo


def seed_rows(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    import seqshap
    from seqshap.data import load_imdb

    model = seqshap.load()
    data = load_imdb()
    return model.encode(data["test"].texts[:n]), model.encode(data["train"].texts[:k])


def right_padded(ids: torch.Tensor) -> torch.Tensor:
    """The same words with the padding (id 0) moved to the end of each row."""
    out = torch.zeros_like(ids)
    for i, row in enumerate(ids):
        words = row[row != 0]
        out[i, : len(words)] = words
    return out


def time_one(name: str, x: torch.Tensor, bg: torch.Tensor, reps: int) -> dict:
    from seqshap.attribution import DeepExplainer

    net = zoo.make_sized(name)
    if zoo.ZOO[name][1] == "right":
        x, bg = right_padded(x), right_padded(bg)
    ex = DeepExplainer(net, bg)
    ex.shap_values(x)  # warm-up
    rows = x.repeat_interleave(len(bg), 0)
    ours, plain = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        ex.shap_values(x)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        net(rows).sum().backward()
        plain.append(time.perf_counter() - t0)
        net.zero_grad(set_to_none=True)
    a, b = statistics.median(ours), statistics.median(plain)
    return {
        "model": name,
        "seqshap_s": round(a, 3),
        "plain_fwd_bwd_s": round(b, 3),
        "ratio": round(a / b, 2),
        "max_completeness_error": float(ex.last_errors_.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated zoo names (default: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(zoo.BENCH_SIZES)
    load_before = os.getloadavg()[0]
    x, bg = seed_rows(10, 100)
    results = []
    print(f"{'model':32s} {'seqshap s':>10s} {'fwd+bwd s':>10s} {'ratio':>6s} {'max err':>9s}")
    for name in names:
        r = time_one(name, x, bg, args.reps)
        results.append(r)
        print(
            f"{name:32s} {r['seqshap_s']:10.3f} {r['plain_fwd_bwd_s']:10.3f} {r['ratio']:6.2f} "
            f"{r['max_completeness_error']:9.1e}",
            flush=True,
        )
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
