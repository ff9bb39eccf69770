"""Train several configurations with `seqshap train` and tabulate accuracy and speed.

Runs each configuration as its own `python -m seqshap.cli train` process (``--jobs`` at a
time) and writes one JSON summary plus a Markdown table. The shipped default model is the
seed-architecture run (``lstm``, maxlen 80) with the best *validation* accuracy; test
accuracy is reported for every run but never used to choose.

    python benchmarks/train_matrix.py --out runs/matrix --jobs 2            # this machine
    python benchmarks/train_matrix.py --out runs/matrix --device cuda --jobs 6
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SEED_CANDIDATES = {
    f"lstm-s{s}{tag}": ["--arch", "lstm", "--seed", str(s), *extra]
    for s in (0, 1, 2)
    for tag, extra in (("", []), ("-decay", ["--lr-decay", "0.2"]))
}
OTHERS = {
    "gru": ["--arch", "gru"],
    "bilstm": ["--arch", "bilstm"],
    "lstm2": ["--arch", "lstm2"],
    "cnn": ["--arch", "cnn"],
    "gru-400": ["--arch", "gru", "--maxlen", "400", "--lr-decay", "0.2"],
    "bilstm-400": ["--arch", "bilstm", "--maxlen", "400", "--lr-decay", "0.2"],
}
# A second round at maxlen 400, looking for the 0.89 the longer context should allow.
LONG = {
    "gru-400-s1": ["--arch", "gru", "--maxlen", "400", "--lr-decay", "0.2", "--seed", "1"],
    "gru-400-lr5e-4": ["--arch", "gru", "--maxlen", "400", "--lr", "5e-4", "--lr-decay", "0.3"],
    "gru-400-b64": ["--arch", "gru", "--maxlen", "400", "--batch-size", "64", "--lr-decay", "0.3"],
    "bilstm-400-lr5e-4": ["--arch", "bilstm", "--maxlen", "400", "--lr", "5e-4", "--lr-decay", "0.3"],
    "lstm-400": ["--arch", "lstm", "--maxlen", "400", "--lr-decay", "0.2"],
    "cnn-400": ["--arch", "cnn", "--maxlen", "400", "--lr-decay", "0.2"],
    "gru-400-v20k": ["--arch", "gru", "--maxlen", "400", "--lr-decay", "0.2", "--val-fraction", "0.05"],
}


def run_one(name: str, args: list[str], out: Path, device: str, threads: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "seqshap.cli",
        "train",
        *args,
        "--epochs",
        "15",
        "--out",
        str(out / name),
        "--device",
        device,
        "--quiet",
    ]
    t0 = time.time()
    env = {**__import__("os").environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"name": name, "error": proc.stderr[-2000:]}
    m = json.loads((out / name / "metrics.json").read_text())
    cfg = m["config"]
    return {
        "name": name,
        "arch": cfg["arch"],
        "maxlen": cfg["maxlen"],
        "seed": cfg["seed"],
        "lr_decay": cfg.get("lr_decay", 1.0),
        "epochs_run": len(m["history"]),
        "best_epoch": m["best_epoch"],
        "val_accuracy": m["val_accuracy"],
        "test_accuracy": m["test_accuracy"],
        "seconds_per_epoch": m["seconds_per_epoch"],
        "wall_seconds": time.time() - t0,
        "device": device,
        "command": "seqshap train " + " ".join([*args, "--epochs", "15"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch threads per job")
    ap.add_argument("--only", nargs="*", help="names to run (default: all)")
    ap.add_argument("--summary", type=Path, help="JSON summary path (default: OUT/summary.json)")
    ap.add_argument("--export-default", type=Path, help="copy the chosen seed model directory here")
    a = ap.parse_args()
    configs = {**SEED_CANDIDATES, **OTHERS, **LONG}
    if a.only:
        configs = {k: v for k, v in configs.items() if k in a.only}
    a.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda kv: run_one(kv[0], kv[1], a.out, a.device, a.threads), configs.items()))
    seeds = [r for r in rows if r["name"] in SEED_CANDIDATES and "error" not in r]
    chosen = max(seeds, key=lambda r: r["val_accuracy"]) if seeds else None
    summary = {"rows": rows, "chosen_default": chosen["name"] if chosen else None}
    (a.summary or a.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("| run | arch | maxlen | epochs (best) | val acc | test acc | s/epoch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | error: {r['error'][-200:]!r} |")
            continue
        print(
            f"| {r['name']} | {r['arch']} | {r['maxlen']} | {r['epochs_run']} ({r['best_epoch']}) | "
            f"{r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['seconds_per_epoch']:.1f} |"
        )
    if chosen:
        print(f"chosen default (best validation accuracy among seed-architecture runs): {chosen['name']}")
        if a.export_default:
            a.export_default.mkdir(parents=True, exist_ok=True)
            for f in ("config.json", "vocab.json", "model.safetensors", "metrics.json"):
                shutil.copy(a.out / chosen["name"] / f, a.export_default / f)


if __name__ == "__main__":
    main()
