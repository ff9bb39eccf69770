"""The seed job (10 test reviews x 100 training reviews, T = 80; the shipped LSTM, or any model
directory with --model, e.g. a trained Transformer): seqshap against the cost of running the model
itself, and against Captum and shap.

(a) seqshap DeepExplainer.shap_values on the seed job;
(b) one plain forward + backward pass of the same nn.Module (for the LSTM PyTorch's fused kernel) over the
    same 1,000 (review, background) rows, parameters requiring grad as in training;
ratio a/b (target <= 1.0, must stay <= 2.0). Repetitions are interleaved and the medians
compared, since this machine is shared and noisy. Then Captum's DeepLiftShap and shap's
DeepExplainer at the embedding level (the models accept embeddings [n, T, E]) on the same job,
with their completeness errors; and peak RSS for 1,000 reviews x 100 background (in a child
process, so the figure is that job's alone).

    python benchmarks/explain_speed.py --reps 5 --json benchmarks/explain_speed.json
    python benchmarks/explain_speed.py --model runs/tf80 --reps 5 --json benchmarks/explain_speed_transformer.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


def seed_job(n: int, k: int, model_dir: str | None = None):
    import seqshap
    from seqshap.data import load_imdb

    model = seqshap.load(model_dir)
    data = load_imdb()
    return model, model.encode(data["train"].texts[:k]), model.encode(data["test"].texts[:n])


def completeness(phi: np.ndarray, fx: np.ndarray, base: float) -> float:
    return float(np.abs(phi.reshape(len(fx), -1).sum(1) - (fx - base)).max())


def time_ours_vs_plain(model, bg, x, reps: int) -> dict:
    from seqshap.attribution import DeepExplainer

    net = model.net
    t0 = time.perf_counter()
    ex = DeepExplainer(net, bg)
    setup = time.perf_counter() - t0
    ex.shap_values(x)  # warm-up
    ours, plain = [], []
    rows = x.repeat_interleave(len(bg), 0)
    for _ in range(reps):
        t0 = time.perf_counter()
        phi = ex.shap_values(x)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        net(rows).sum().backward()
        plain.append(time.perf_counter() - t0)
        net.zero_grad(set_to_none=True)
    a, b = statistics.median(ours), statistics.median(plain)
    return {
        "seqshap_s": a,
        "plain_fwd_bwd_s": b,
        "ratio": a / b,
        "setup_s": setup,
        "seqshap_all": ours,
        "plain_all": plain,
        "seqshap_completeness": float(ex.last_errors_.max()),
        "phi": phi[..., 0],
    }


@torch.no_grad()
def embedded(model, bg, x):
    """The job at the embedding level, as Captum and shap take it: (emb x, emb bg, f(x), f(bg))."""
    net = model.net
    return (net.embedding(x), net.embedding(bg), net(x)[:, 0].double().numpy(), net(bg)[:, 0].double().numpy())


def run_captum(model, bg, x) -> dict:
    try:
        from captum.attr import DeepLiftShap
    except ImportError as e:
        return {"error": f"not installed ({e})"}
    ex, eb, fx, fb = embedded(model, bg, x)
    t0 = time.perf_counter()
    try:
        attr = DeepLiftShap(model.net).attribute(ex, baselines=eb)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"[:300]}
    sec = time.perf_counter() - t0
    phi = attr.sum(-1).detach().double().numpy()
    return {"seconds": sec, "completeness": completeness(phi, fx, fb.mean()), "phi": phi}


def run_shap(model, bg, x) -> dict:
    try:
        import shap
    except ImportError as e:
        return {"error": f"not installed ({e})"}
    ex, eb, fx, _ = embedded(model, bg, x)
    t0 = time.perf_counter()
    try:
        explainer = shap.DeepExplainer(model.net, eb)
        sv = explainer.shap_values(ex, check_additivity=False)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"[:300], "version": shap.__version__}
    sec = time.perf_counter() - t0
    sv = np.asarray(sv)
    phi = sv.reshape(len(x), x.shape[1], -1).sum(-1)
    base = float(np.asarray(explainer.expected_value).ravel()[0])
    return {"seconds": sec, "completeness": completeness(phi, fx, base), "version": shap.__version__, "phi": phi}


def vm_hwm_kb() -> int:
    """This process's peak RSS. (Not getrusage's ru_maxrss: on Linux that survives exec, so a
    child would report its parent's peak.)"""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def peak_rss_child(n: int, k: int, model_dir: str | None = None) -> dict:
    code = (
        "import time, sys; sys.path.insert(0, 'benchmarks');"
        "from explain_speed import seed_job, vm_hwm_kb;"
        f"model, bg, x = seed_job({n}, {k}, {model_dir!r});"
        "from seqshap.attribution import DeepExplainer;"
        "before = vm_hwm_kb();"
        "t = time.perf_counter(); ex = DeepExplainer(model.net, bg); phi = ex.shap_values(x);"
        "print(before, vm_hwm_kb(), time.perf_counter() - t, float(ex.last_errors_.max()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {
        "n": n,
        "k": k,
        "peak_rss_before_explaining_mb": int(out[0]) / 1024,
        "peak_rss_mb": int(out[1]) / 1024,
        "seconds": float(out[2]),
        "max_completeness_error": float(out[3]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped imdb-lstm)")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--memory-n", type=int, default=1000, help="reviews for the peak-RSS run (0: skip)")
    ap.add_argument("--no-compare", action="store_true", help="skip Captum and shap")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    model, bg, x = seed_job(a.n, a.k, a.model)
    res = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "job": f"{a.n} reviews x {a.k} background, T={x.shape[1]}",
        "model": f"{model.name} ({model.config['arch']})",
    }
    res["ours"] = time_ours_vs_plain(model, bg, x, a.reps)
    print(
        f"seqshap {res['ours']['seqshap_s']:.3f}s | plain fwd+bwd {res['ours']['plain_fwd_bwd_s']:.3f}s | "
        f"ratio {res['ours']['ratio']:.2f} | completeness {res['ours']['seqshap_completeness']:.1e}"
    )
    if not a.no_compare:
        ours_phi = res["ours"]["phi"]
        for name, fn in (("captum_deepliftshap", run_captum), ("shap_deepexplainer", run_shap)):
            r = fn(model, bg, x)
            if "phi" in r:
                r["pearson_with_seqshap"] = float(np.corrcoef(r.pop("phi").ravel(), ours_phi.ravel())[0, 1])
            res[name] = r
            print(name, dict(r.items()))
    res["ours"].pop("phi")
    if a.memory_n:
        res["memory"] = peak_rss_child(a.memory_n, a.k, a.model)
        print("memory", res["memory"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
