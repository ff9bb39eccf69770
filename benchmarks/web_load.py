"""Load test for ``seqshap serve``: start it on 127.0.0.1, send a bounded number of
explanations from a loopback client, stop it, report throughput and latency.

The server runs as its own process (the real ``seqshap serve`` command, free port), so
the client's event loop does not share a GIL with it. Texts cycle through the IMDB test
reviews. Exits 1 when any request failed, so it can gate a release.

    python benchmarks/web_load.py                                  # shipped model, 500 requests, 8 at a time
    python benchmarks/web_load.py --model runs/lstm --requests 200 --concurrency 4 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """``seqshap serve --port 0`` and the URL it prints once it listens."""
    cmd = [
        sys.executable,
        "-m",
        "seqshap.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--background",
        str(args.background),
        "--log-level",
        "warning",
        "--queue-limit",
        str(max(args.queue_limit, args.concurrency)),
    ]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        proc.kill()
        raise SystemExit(f"web_load: the server did not start (exit code {proc.wait()})")
    return proc, match.group(0)


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # what Ctrl+C does: a clean uvicorn shutdown
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def load(url: str, texts: list[str], n: int, concurrency: int, output: str) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    next_i = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_i
        while next_i < n:  # one event loop: no lock needed to hand out request numbers
            i, next_i = next_i, next_i + 1
            t0 = time.perf_counter()
            try:
                r = await client.post("api/explain", json={"text": texts[i % len(texts)], "output": output})
                key = str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        r = await client.post("api/explain", json={"text": texts[0], "output": output})  # warm-up, not counted
        r.raise_for_status()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        model = (await client.get("api/model")).json()
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    ok = statuses.get("200", 0)
    return {
        "requests": n,
        "concurrency": concurrency,
        "output": output,
        "wall_s": round(wall, 3),
        "requests_per_s": round(n / wall, 2),
        "p50_ms": round(q[49] * 1000, 1),
        "p90_ms": round(q[89] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1),
        "ok": ok,
        "errors": n - ok,
        "5xx": sum(c for s, c in statuses.items() if s.startswith("5")),
        "statuses": statuses,
        "model": {k: model.get(k) for k in ("name", "arch", "vocab_size", "maxlen", "background_size")},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--output", choices=["probability", "logit"], default="probability")
    p.add_argument("--background", type=int, default=100, help="background reviews (default 100, as served)")
    p.add_argument("--queue-limit", type=int, default=32, help="server queue limit (at least --concurrency)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be at least 1")

    from seqshap.data import load_imdb

    texts = load_imdb()["test"].texts[:500]
    proc, url = start_server(args)
    try:
        result = asyncio.run(load(url, texts, args.requests, args.concurrency, args.output))
    finally:
        stop_server(proc)
    m = result["model"]
    print(
        f"seqshap serve load test: {m['name']} ({m['arch']}, maxlen {m['maxlen']}, "
        f"{m['vocab_size']} words, background {m['background_size']}) on {result['machine']}"
    )
    print(
        f"  {result['requests']} requests at concurrency {result['concurrency']} in {result['wall_s']:.1f} s: "
        f"{result['requests_per_s']:.2f} requests/s"
    )
    print(
        f"  latency p50 {result['p50_ms']:.0f} ms, p90 {result['p90_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
        f"max {result['max_ms']:.0f} ms"
    )
    print(f"  errors {result['errors']} (5xx {result['5xx']}); statuses {result['statuses']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
