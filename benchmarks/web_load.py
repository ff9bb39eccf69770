"""Load test for ``seqshap serve``: start it on 127.0.0.1, measure, stop it.

In one run, against one server process (the real ``seqshap serve`` command on a free port,
so the client's event loop does not share a GIL with it):

1. sequential: ``--sequential`` requests one at a time, median latency and the rate 1 / mean;
2. closed-loop load at each ``--levels`` concurrency (default 1, 4, 8, 16): throughput,
   p50/p90/p99 latency and throughput / sequential rate;
3. abandoned clients (``--abandon N``): N batch requests whose clients hang up after a
   moment, then how long until the server's queue is empty and how long one fresh request
   takes (a server that drops the abandoned work answers at once).

Texts cycle through the IMDB test reviews. Where the server has ``/metrics``, each level
also reports the mean texts per explainer call (how well requests were batched). The
machine's load average is recorded before and after, since on a shared machine the ratios
measured in one run are what compare.
Exits 1 when any request of the load phases failed, so it can gate a release.

    python benchmarks/web_load.py                          # shipped model, 100 background reviews
    python benchmarks/web_load.py --levels 8 --requests 200 --json out.json
    python benchmarks/web_load.py --serve-args "--max-batch 16 --batch-wait-ms 5"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
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
        str(max(args.queue_limit, max(args.levels), args.abandon)),
        *shlex.split(args.serve_args),
    ]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        proc.kill()
        raise SystemExit(f"web_load: the server did not start (exit code {proc.wait()})")
    return proc, match.group(0)


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # what Ctrl+C does: a clean uvicorn shutdown
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def quantiles(latencies: list[float]) -> dict[str, float]:
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    return {
        "p50_ms": round(q[49] * 1000, 1),
        "p90_ms": round(q[89] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1),
    }


async def calls_so_far(client: httpx.AsyncClient) -> tuple[float, float] | None:
    """(explainer calls, texts explained) from the server's /metrics (None: a server without it)."""
    r = await client.get("metrics")
    if r.status_code != 200:
        return None
    found = dict(re.findall(r"^(seqshap_batch_size_texts_(?:count|sum)) ([0-9.e+]+)$", r.text, re.M))
    return float(found["seqshap_batch_size_texts_count"]), float(found["seqshap_batch_size_texts_sum"])


async def closed_loop(
    client: httpx.AsyncClient, texts: list[str], start: int, n: int, concurrency: int, output: str
) -> dict:
    """``concurrency`` clients, each sending its next request when its last one is answered."""
    calls_before = await calls_so_far(client)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:  # one event loop: no lock needed to hand out request numbers
            i, next_i = next_i, next_i + 1
            t0 = time.perf_counter()
            try:
                body = {"text": texts[(start + i) % len(texts)], "output": output}
                r = await client.post("api/explain", json=body)
                key = str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    ok = statuses.get("200", 0)
    calls_after = await calls_so_far(client)
    per_call = None
    if calls_before is not None and calls_after is not None and calls_after[0] > calls_before[0]:
        per_call = round((calls_after[1] - calls_before[1]) / (calls_after[0] - calls_before[0]), 2)
    return {
        "concurrency": concurrency,
        "requests": n,
        "wall_s": round(wall, 3),
        "requests_per_s": round(n / wall, 3),
        **quantiles(latencies),
        "ok": ok,
        "errors": n - ok,
        "5xx": sum(c for s, c in statuses.items() if s.startswith("5")),
        "statuses": statuses,
        "texts_per_call": per_call,
    }


async def abandoned(url: str, texts: list[str], n: int, per_request: int, output: str) -> dict:
    """``n`` batch requests whose clients hang up after a moment; then time to an empty queue
    and the latency of one fresh request."""

    async def hang_up(i: int) -> None:
        batch = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
        async with httpx.AsyncClient(base_url=url, timeout=0.5) as c:
            with contextlib.suppress(httpx.TimeoutException):  # the client goes away: that is the point
                await c.post("api/explain/batch", json={"texts": batch, "output": output})

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await asyncio.gather(*(hang_up(i) for i in range(n)))
        t0 = time.perf_counter()
        fresh = await client.post("api/explain", json={"text": texts[-1], "output": output})
        fresh_s = time.perf_counter() - t0
        while (await client.get("api/health")).json()["pending"] > 0:
            await asyncio.sleep(0.05)
        empty_s = time.perf_counter() - t0
    return {
        "abandoned_requests": n,
        "texts_each": per_request,
        "fresh_request_status": fresh.status_code,
        "fresh_request_s": round(fresh_s, 3),
        "queue_empty_after_s": round(empty_s, 3),
    }


async def run(url: str, texts: list[str], args: argparse.Namespace) -> dict:
    limits = httpx.Limits(max_connections=max(args.levels), max_keepalive_connections=max(args.levels))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        for t in texts[:3]:  # warm-up, not counted
            (await client.post("api/explain", json={"text": t, "output": args.output})).raise_for_status()
        model = (await client.get("api/model")).json()
        seq = []
        for i in range(args.sequential):
            t0 = time.perf_counter()
            r = await client.post("api/explain", json={"text": texts[i % len(texts)], "output": args.output})
            r.raise_for_status()
            seq.append(time.perf_counter() - t0)
        seq_rate = len(seq) / sum(seq)
        levels = []
        start = args.sequential
        for c in args.levels:
            n = args.requests or max(32, 6 * c)
            level = await closed_loop(client, texts, start, n, c, args.output)
            level["vs_sequential"] = round(level["requests_per_s"] / seq_rate, 2)
            levels.append(level)
            start += n
    result = {
        "sequential": {
            "requests": len(seq),
            "median_ms": round(statistics.median(seq) * 1000, 1),
            "requests_per_s": round(seq_rate, 3),
            **quantiles(seq),
        },
        "levels": levels,
        "model": {k: model.get(k) for k in ("name", "arch", "vocab_size", "maxlen", "background_size")},
        "server": {k: model.get(k) for k in ("max_batch", "batch_wait_ms", "queue_limit")},
    }
    if args.abandon:
        result["abandon"] = await abandoned(url, texts, args.abandon, args.abandon_texts, args.output)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    p.add_argument("--sequential", type=int, default=20, help="one-at-a-time requests (default 20)")
    p.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16], help="default 1,4,8,16"
    )
    p.add_argument("--requests", type=int, default=0, help="requests per level (default max(32, 6 x concurrency))")
    p.add_argument("--abandon", type=int, default=16, help="batch requests abandoned by their clients (0: skip)")
    p.add_argument("--abandon-texts", type=int, default=8, help="texts in each abandoned batch request")
    p.add_argument("--output", choices=["probability", "logit"], default="probability")
    p.add_argument("--background", type=int, default=100, help="background reviews (default 100, as served)")
    p.add_argument("--queue-limit", type=int, default=32, help="server queue limit (raised to the top level)")
    p.add_argument("--serve-args", default="", help="more `seqshap serve` options, e.g. '--batch-wait-ms 5'")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    args = p.parse_args(argv)
    if args.sequential < 1 or min(args.levels) < 1 or args.requests < 0 or args.abandon < 0:
        p.error("--sequential and --levels must be at least 1; --requests and --abandon at least 0")

    from seqshap.data import load_imdb

    texts = load_imdb()["test"].texts[:1000]
    load_before = os.getloadavg()
    proc, url = start_server(args)
    try:
        result = asyncio.run(run(url, texts, args))
    finally:
        stop_server(proc)
    result["load_average_before"] = [round(v, 2) for v in load_before]
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}"
    )
    result["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    m, s = result["model"], result["sequential"]
    print(
        f"seqshap serve load test: {m['name']} ({m['arch']}, maxlen {m['maxlen']}, {m['vocab_size']} words, "
        f"background {m['background_size']}) on {result['machine']}, {result['date']}; server {result['server']}"
    )
    print(f"  load average before {result['load_average_before']}, after {result['load_average_after']}")
    print(f"  sequential: {s['requests']} requests, median {s['median_ms']:.0f} ms, {s['requests_per_s']:.2f}/s")
    print("  concurrency | requests/s | x sequential | p50 ms | p90 ms | p99 ms | texts/call | errors")
    for lv in result["levels"]:
        per_call = "-" if lv["texts_per_call"] is None else f"{lv['texts_per_call']:.1f}"
        print(
            f"  {lv['concurrency']:>11} | {lv['requests_per_s']:>10.2f} | {lv['vs_sequential']:>12.2f} | "
            f"{lv['p50_ms']:>6.0f} | {lv['p90_ms']:>6.0f} | {lv['p99_ms']:>6.0f} | {per_call:>10} | "
            f"{lv['errors']} {lv['statuses']}"
        )
    if "abandon" in result:
        a = result["abandon"]
        print(
            f"  {a['abandoned_requests']} abandoned batch requests of {a['texts_each']} texts: a fresh request "
            f"took {a['fresh_request_s']:.2f} s ({a['fresh_request_status']}), "
            f"queue empty after {a['queue_empty_after_s']:.2f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if any(lv["errors"] for lv in result["levels"]) else 0


if __name__ == "__main__":
    sys.exit(main())
