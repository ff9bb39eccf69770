"""Seconds per training epoch of each architecture on this machine (CPU), measured with the
real training loop (`seqshap.train.train`) on the first N IMDB training reviews and scaled to a
full epoch of 22,500 reviews (25,000 minus the 10% validation split). Figures for BENCHMARKS.md.

    python benchmarks/epoch_time.py --n 4000
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from seqshap.data import load_imdb
from seqshap.train import TrainConfig, train

CONFIGS = [("lstm", 80), ("gru", 80), ("bilstm", 80), ("lstm2", 80), ("cnn", 80), ("gru", 400), ("cnn", 400)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000, help="training reviews per timing run")
    a = ap.parse_args()
    data = load_imdb()["train"].head(a.n)
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; {a.n} reviews per run, scaled to 22,500"
    )
    print("| arch | maxlen | measured s (reviews) | s per full epoch |")
    print("|---|---|---|---|")
    for arch, maxlen in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            m = train(data, tmp, TrainConfig(arch=arch, maxlen=maxlen, epochs=1), progress=False)
        sec, n_train = m.metrics["history"][0]["seconds"], m.metrics["n_train"]
        print(f"| {arch} | {maxlen} | {sec:.1f} ({n_train}) | {sec * 22500 / n_train:.0f} |", flush=True)


if __name__ == "__main__":
    main()
