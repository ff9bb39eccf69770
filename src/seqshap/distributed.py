"""Explain a whole corpus in parallel, on this machine or on a Dask cluster, with exact merging.

:func:`explain_corpus` splits the reviews into chunks of ``chunk_size``, explains each chunk
into a :class:`~seqshap.importance.WordImportance` somewhere, and writes each chunk's state
atomically to ``out_dir/chunks/chunk-00012.json`` as soon as it comes back. The final result
is the merge of all chunk states; the sums are exact expansions, so it equals a single-process
run over the same reviews (same words, counts and sums, to float precision) whatever the
order in which chunks finish. A run that was interrupted resumes with ``resume=True``: chunk
files already on disk (checked against ``out_dir/chunks/manifest.json``) are not redone.

Schedulers
----------
``"local"``
    This machine's cores, without Dask: a ``concurrent.futures`` process pool (spawned
    processes, one explainer each, one torch thread each). ``n_workers=1`` runs the chunks in
    this process, no pool. Works without the optional ``dask`` extra.
``"processes"``
    A Dask ``LocalCluster`` on this machine: ``n_workers`` worker processes, one thread each.
``"tcp://host:port"``
    An existing Dask scheduler (``dask scheduler`` + ``dask worker tcp://...`` on any machines
    with seqshap installed). Run one single-threaded worker per core (``--nthreads 1``): an
    explainer explains one batch at a time.

The model directory's files (all of them: a native model's three, a Hugging Face directory's
config, weights and tokenizer files, a converted Keras model's) and the background texts travel
once per worker: a :class:`Payload` is scattered
to every worker (``broadcast=True``) and each worker builds its explainer from it on its first
chunk and keeps it (later chunks on that worker find it in :data:`_EXPLAINERS`). Only the
chunk's texts travel with each task. Workers send back the chunk's JSON-able state; this
process writes the files, so ``out_dir`` only needs to exist here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from ._validation import POSITIVE
from .background import default_background
from .errors import DistributedError
from .importance import WordImportance
from .store import DEFAULT_MODEL_DIR

CHUNK_FORMAT = "seqshap.importance-chunk/1"
RUN_FORMAT = "seqshap.importance-run/1"
SCHEDULERS = ("local", "processes")  # plus any "tcp://host:port" (or tls://, ws://, ...) address


@dataclass(frozen=True, eq=False)
class Payload:
    """Everything a worker needs to build the explainer, shipped once per worker.

    A dataclass (not a dict or tuple) so that ``Client.scatter`` ships it as one object.
    """

    token: str  # identifies model + background + options; the worker's cache key
    files: dict[str, bytes]  # every file of the model directory (not its subfolders), name -> bytes
    background: tuple[str, ...]  # background texts
    output: str = "probability"
    batch_size: int = 25  # reviews per explainer.explain call (same as the single-process run)
    torch_threads: int = 1


@dataclass
class _Chunk:
    index: int
    start: int
    stop: int
    review_ids: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Worker side: build the explainer once per process, explain chunks with it.
# --------------------------------------------------------------------------------------------
_EXPLAINERS: OrderedDict[str, Any] = OrderedDict()  # token -> DeepExplainer, in this process
_BUILDS: dict[str, int] = {}  # token -> how many times built here (tests)
_BUILD_LOCK = threading.Lock()
_CACHE_SIZE = 2  # a long-lived cluster worker may serve several runs; keep memory bounded
_LOCAL_PAYLOAD: Payload | None = None  # set by the local pool's initializer
_LOCAL_BARRIER: Any = None  # lets the pool prove every process is up before timing starts


def _build_explainer(payload: Payload):
    import torch

    from .attribution import DeepExplainer
    from .store import load

    if payload.torch_threads > 0:
        # several single-threaded workers share the cores; torch's own pool would oversubscribe
        torch.set_num_threads(payload.torch_threads)
    # write the files to a private temp dir so that load() does all its usual checks
    with tempfile.TemporaryDirectory(prefix="seqshap-model-") as tmp:
        for name, data in payload.files.items():
            Path(tmp, name).write_bytes(data)
        model = load(tmp)
    return DeepExplainer(model, list(payload.background), output=payload.output)


def get_explainer(payload: Payload):
    """The explainer for ``payload`` in this process, built on first use and then cached."""
    with _BUILD_LOCK:
        exp = _EXPLAINERS.get(payload.token)
        if exp is None:
            exp = _build_explainer(payload)
            _EXPLAINERS[payload.token] = exp
            _BUILDS[payload.token] = _BUILDS.get(payload.token, 0) + 1
            while len(_EXPLAINERS) > _CACHE_SIZE:
                _EXPLAINERS.popitem(last=False)
        else:
            _EXPLAINERS.move_to_end(payload.token)
        return exp


def build_counts() -> dict[str, int]:
    """How many times each explainer was built in this process (``Client.run`` it on workers)."""
    return dict(_BUILDS)


def explain_chunk(payload: Payload, texts: list[str], labels: list[int] | None) -> dict:
    """Explain one chunk; returns ``{"state", "seconds", "worker"}`` (JSON-able)."""
    from .importance import importance_over

    t0 = time.perf_counter()
    explainer = get_explainer(payload)
    # importance_over batches exactly like the single-process command does
    acc = importance_over(explainer, texts, labels, batch_size=payload.batch_size, progress=False)
    return {
        "state": acc.to_state(),
        "seconds": time.perf_counter() - t0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


def slow_malloc() -> bool:
    """True when glibc runs with Dask's ``MALLOC_TRIM_THRESHOLD_`` and no mmap threshold.

    Setting any malloc threshold turns off glibc's adaptive mmap threshold, so every large
    tensor is mmap'ed and unmapped again: explaining gets about 3x slower (measured, 2026-11).
    """
    return "MALLOC_TRIM_THRESHOLD_" in os.environ and "MALLOC_MMAP_THRESHOLD_" not in os.environ


def warm(payload: Payload) -> dict:
    """Build (or find) the explainer in this process; says where it lives."""
    get_explainer(payload)
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "slow_malloc": slow_malloc()}


def _local_init(payload: Payload, barrier) -> None:
    global _LOCAL_PAYLOAD, _LOCAL_BARRIER
    _LOCAL_PAYLOAD, _LOCAL_BARRIER = payload, barrier
    get_explainer(payload)  # build now, while the pool starts, not on the first chunk


def _local_ready() -> str:
    # n of these wait on an n-party barrier, so each runs in a different process: once they
    # return, every process of the pool has started and built its explainer
    assert _LOCAL_BARRIER is not None  # set by _local_init in this process
    _LOCAL_BARRIER.wait(timeout=600)
    return f"{socket.gethostname()}:{os.getpid()}"


def _local_chunk(texts: list[str], labels: list[int] | None) -> dict:
    if _LOCAL_PAYLOAD is None:
        raise DistributedError("local worker was not initialised")
    return explain_chunk(_LOCAL_PAYLOAD, texts, labels)


# --------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------
def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))  # length-prefixed: no ambiguity between parts
        h.update(p)
    return h.hexdigest()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")


def make_payload(
    model_dir: str | Path | None,
    background: Sequence[str],
    output: str = "probability",
    batch_size: int = 25,
    torch_threads: int = 1,
) -> Payload:
    """Read the model directory and fingerprint model + background + options."""
    directory = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    files = model_files(directory)
    background = tuple(str(t) for t in background)
    if not background:
        raise DistributedError("the background is empty")
    token = _sha256(_files_digest(files).encode(), _json_bytes(list(background)), _json_bytes([output, batch_size]))
    return Payload(token, files, background, output, batch_size, torch_threads)


def model_files(directory: Path) -> dict[str, bytes]:
    """Every file of a model directory, name -> bytes: whatever its kind needs to load (a native
    model's config/vocab/weights, a Hugging Face directory's config, weights and tokenizer files).
    Subfolders (a training checkpoint) and hidden files stay behind."""
    if not directory.is_dir():
        raise DistributedError(f"{directory}: not a model directory")
    files = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            files[path.name] = path.read_bytes()
        except OSError as e:
            raise DistributedError(f"{path}: cannot read it ({e})") from None
    if not files:
        raise DistributedError(f"{directory}: holds no files; not a model directory")
    return files


def _files_digest(files: dict[str, bytes]) -> str:
    """One fingerprint of the model files, names included (in name order)."""
    return _sha256(*(part for name in sorted(files) for part in (name.encode("utf-8"), files[name])))


def _chunks(n: int, chunk_size: int, ids: Sequence | None) -> list[_Chunk]:
    out = []
    for i in range(math.ceil(n / chunk_size)):
        a, b = i * chunk_size, min(n, (i + 1) * chunk_size)
        out.append(_Chunk(i, a, b, list(ids[a:b]) if ids is not None else list(range(a, b))))
    return out


def _manifest(
    payload: Payload, texts: Sequence[str], labels: list[int] | None, ids: list, chunk_size: int, n_chunks: int
) -> dict:
    """What identifies a run: chunks of another run must never be mixed into this one."""
    m = {
        "format": RUN_FORMAT,
        "n_reviews": len(texts),
        "chunk_size": chunk_size,
        "n_chunks": n_chunks,
        "batch_size": payload.batch_size,
        "output": payload.output,
        "model_sha256": _files_digest(payload.files),
        "background_n": len(payload.background),
        "background_sha256": _sha256(_json_bytes(list(payload.background))),
        "reviews_sha256": _sha256(_json_bytes([list(texts), labels, ids])),
    }
    m["run"] = _sha256(_json_bytes(m))[:16]
    return m


def _chunk_path(chunk_dir: Path, index: int) -> Path:
    return chunk_dir / f"chunk-{index:05d}.json"


def _load_done(chunk_dir: Path, chunks: list[_Chunk], run: str) -> tuple[dict[int, dict], list[str]]:
    """Valid chunk files of this run -> {index: state}; plus a note for each file to redo."""
    done, notes = {}, []
    for c in chunks:
        p = _chunk_path(chunk_dir, c.index)
        if not p.exists():
            continue
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
            ok = (
                obj.get("format") == CHUNK_FORMAT
                and obj.get("run") == run
                and obj.get("chunk") == c.index
                and obj.get("review_ids") == c.review_ids
                and int(obj["state"]["n_explanations"]) == c.stop - c.start
            )
            if ok:
                WordImportance.from_state(obj["state"])  # parses
        except (OSError, ValueError, KeyError, TypeError) as e:
            notes.append(f"{p.name}: unreadable ({e}); redoing it")
            continue
        if ok:
            done[c.index] = obj["state"]
        else:
            notes.append(f"{p.name}: does not belong to this run; redoing it")
    return done, notes


def _prepare_dir(out_dir: Path, manifest: dict, resume: bool) -> Path:
    chunk_dir = out_dir / "chunks"
    mpath = chunk_dir / "manifest.json"
    existing = sorted(chunk_dir.glob("chunk-*.json")) if chunk_dir.is_dir() else []
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DistributedError(f"{mpath}: unreadable ({e}); remove {chunk_dir} to start over") from None
        if not resume:
            raise DistributedError(
                f"{chunk_dir} already holds an earlier run ({len(existing)} chunk files): "
                f"pass --resume to continue it, or use another --out"
            )
        if old.get("run") != manifest["run"]:
            diff = [
                f"{k} {old.get(k)!r} -> {manifest[k]!r}" for k in manifest if k != "run" and old.get(k) != manifest[k]
            ]
            raise DistributedError(
                f"cannot resume {chunk_dir}: it holds a different run "
                f"({'; '.join(diff) or 'different run id'}); use another --out"
            )
    elif existing and not resume:
        raise DistributedError(
            f"{chunk_dir} already holds {len(existing)} chunk files: pass --resume to continue, or use another --out"
        )
    chunk_dir.mkdir(parents=True, exist_ok=True)
    # temp files left by a process killed mid-write (the rename never happened): not chunks
    for tmp in chunk_dir.glob(".chunk-*.tmp"):
        tmp.unlink(missing_ok=True)
    atomic.write_json(mpath, manifest)
    return chunk_dir


def _write_chunk(chunk_dir: Path, c: _Chunk, run: str, result: dict) -> None:
    atomic.write_json(
        _chunk_path(chunk_dir, c.index),
        {
            "format": CHUNK_FORMAT,
            "run": run,
            "chunk": c.index,
            "start": c.start,
            "stop": c.stop,
            "review_ids": c.review_ids,
            "seconds": round(float(result["seconds"]), 4),
            "worker": result.get("worker"),
            "state": result["state"],
        },
    )


def _is_address(scheduler: str) -> bool:
    return "://" in scheduler


def _need_dask(scheduler: str):
    try:
        import distributed
    except ImportError:
        raise DistributedError(
            f"scheduler {scheduler!r} needs Dask: pip install 'seqshap[dask]' (or use scheduler 'local')"
        ) from None
    return distributed


def _run_local(
    todo: list[_Chunk],
    texts,
    labels,
    payload: Payload,
    n_workers: int,
    on_done: Callable[[_Chunk, dict], None],
    started: Callable[[], None],
) -> int:
    if n_workers == 1:
        # in this process: no pool, no model copy; keep the caller's torch thread setting
        payload1 = Payload(
            payload.token, payload.files, payload.background, payload.output, payload.batch_size, torch_threads=0
        )
        get_explainer(payload1)
        started()
        try:
            for c in todo:
                on_done(c, explain_chunk(payload1, texts[c.start : c.stop], _slice(labels, c)))
        finally:
            _EXPLAINERS.pop(payload1.token, None)  # a library call should not keep the model alive
        return 1
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: forking a process that has torch's thread pools running can deadlock
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_local_init, initargs=(payload, ctx.Barrier(n_workers))
    ) as pool:
        try:
            for ready in [pool.submit(_local_ready) for _ in range(n_workers)]:
                ready.result()
        except BrokenProcessPool:
            raise DistributedError(
                "a local worker process could not build the explainer (its error is printed above)"
            ) from None
        started()
        pending = {pool.submit(_local_chunk, texts[c.start : c.stop], _slice(labels, c)): c for c in todo}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    c = pending.pop(f)
                    try:
                        res = f.result()
                    except Exception as e:
                        raise DistributedError(f"chunk {c.index} failed: {type(e).__name__}: {e}") from e
                    on_done(c, res)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return n_workers


def _slice(labels: list[int] | None, c: _Chunk) -> list[int] | None:
    return None if labels is None else labels[c.start : c.stop]


def _run_dask(
    client,
    todo: list[_Chunk],
    texts,
    labels,
    payload: Payload,
    on_done: Callable[[_Chunk, dict], None],
    started: Callable[[], None],
    log: Callable[[str], None] | None = None,
) -> None:
    import uuid

    from distributed import as_completed, wait

    # one copy of the model + background per worker; tasks get the worker-local object
    shipped = client.scatter(payload, broadcast=True, hash=False)
    tag = uuid.uuid4().hex[:8]
    # build every current worker's explainer before timing starts (workers that join later
    # build theirs on their first chunk, from the same scattered payload)
    warming = [
        client.submit(warm, shipped, key=f"seqshap-warm-{i}-{tag}", workers=[addr], allow_other_workers=False)
        for i, addr in enumerate(client.scheduler_info()["workers"])
    ]
    wait(warming)
    for f in warming:
        if f.status == "error":
            e = f.exception()
            raise DistributedError(f"a worker could not build the explainer: {type(e).__name__}: {e}")
    slow = sum(f.result()["slow_malloc"] for f in warming)
    if slow and log is not None:
        log(
            f"note: {slow} Dask worker(s) run with MALLOC_TRIM_THRESHOLD_ but no MALLOC_MMAP_THRESHOLD_, "
            f"which makes explaining about 3x slower; start workers with MALLOC_MMAP_THRESHOLD_=134217728"
        )
    del warming
    started()
    futures = {}
    for c in todo:
        f = client.submit(
            explain_chunk,
            shipped,
            texts[c.start : c.stop],
            _slice(labels, c),
            key=f"seqshap-chunk-{c.index:05d}-{tag}",
            priority=-c.index,
        )
        futures[f] = c
    try:
        for f in as_completed(list(futures)):
            c = futures.pop(f)
            try:
                res = f.result()
            except Exception as e:
                raise DistributedError(f"chunk {c.index} failed on a worker: {type(e).__name__}: {e}") from e
            on_done(c, res)
            f.release()  # the result is on disk now; let the cluster forget it
    finally:
        if futures:
            client.cancel(list(futures))
        shipped.release()


def _dask_workers(client) -> int:
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())


def explain_corpus(
    model_dir: str | Path | None,
    texts: Sequence[str],
    labels: Sequence[int] | None,
    out_dir: str | Path,
    scheduler: str = "local",
    chunk_size: int = 250,
    n_workers: int | None = None,
    background_n: int = 100,
    resume: bool = False,
    progress: bool = True,
    *,
    background: Sequence[str] | None = None,
    ids: Sequence | None = None,
    output: str = "probability",
    batch_size: int = 25,
    imdb: str | Path | None = None,
    torch_threads: int = 1,
    worker_timeout: float = 60,
    log: Callable[[str], None] | None = None,
) -> tuple[WordImportance, dict]:
    """Explain ``texts`` chunk by chunk on ``scheduler`` into one exact :class:`WordImportance`.

    ``background`` defaults to :func:`seqshap.background.default_background` of ``background_n``
    reviews. ``ids`` name the reviews in the chunk files (default: their positions). Keep
    ``chunk_size`` a multiple of ``batch_size`` for batches identical to the single-process
    command's. Returns the merged accumulator and a summary (reviews, seconds, reviews/s,
    workers, chunks resumed, ...).
    """
    t_start = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    texts, labels, ids = _checked_inputs(texts, labels, ids, scheduler, chunk_size, batch_size, background_n, n_workers)
    if background is None:
        background = default_background(background_n, imdb, model_dir or DEFAULT_MODEL_DIR).texts

    payload = make_payload(model_dir, background, output, batch_size, torch_threads)
    chunks = _chunks(len(texts), chunk_size, ids)
    manifest = _manifest(payload, texts, labels, [c for ch in chunks for c in ch.review_ids], chunk_size, len(chunks))
    chunk_dir = _prepare_dir(Path(out_dir), manifest, resume)
    done = _resumed(chunk_dir, chunks, manifest["run"], log) if resume else {}
    todo = [c for c in chunks if c.index not in done]

    tracker = _Tracker(chunk_dir, manifest["run"], done, len(chunks), progress)
    workers = _dispatch(scheduler, todo, texts, labels, payload, n_workers, worker_timeout, tracker, progress, log)
    t_end = time.perf_counter()

    acc = WordImportance(output)
    for i in sorted(done):  # any order gives the same result; sorted for a reproducible file walk
        acc.merge(WordImportance.from_state(done[i]))
    if acc.n_explanations != len(texts):
        raise DistributedError(f"merged {acc.n_explanations} explanations, expected {len(texts)}")
    explained = sum(c.stop - c.start for c in todo)
    work_s = t_end - tracker.t_work
    summary = {
        "scheduler": scheduler,
        "workers": workers,
        "reviews": len(texts),
        "reviews_explained": explained,
        "reviews_resumed": len(texts) - explained,
        "chunks": len(chunks),
        "chunks_resumed": len(chunks) - len(todo),
        "chunk_size": chunk_size,
        "seconds": round(t_end - t_start, 3),
        "startup_seconds": round(tracker.t_work - t_start, 3),
        "work_seconds": round(work_s, 3),
        "reviews_per_s": round(explained / work_s, 3) if explained and work_s > 0 else 0.0,
        "worker_seconds": round(tracker.worker_seconds, 3),
        "chunk_dir": str(chunk_dir),
        "run": manifest["run"],
    }
    return acc, summary


def _checked_inputs(
    texts: Sequence[str],
    labels: Sequence[int] | None,
    ids: Sequence | None,
    scheduler: str,
    chunk_size: int,
    batch_size: int,
    background_n: int,
    n_workers: int | None,
) -> tuple[list[str], list[int] | None, list | None]:
    """The reviews as plain JSON-able lists, after every check that can fail before any work."""
    texts = [str(t) for t in texts]
    labels = None if labels is None else [int(x) for x in labels]
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if ids is not None:
        # JSON-able names: numpy integers become ints, anything else its str
        ids = [i if isinstance(i, (int, str)) else int(i) if hasattr(i, "__index__") else str(i) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
    if not texts:
        raise ValueError("no texts to explain")
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size), ("background_n", background_n)):
        POSITIVE.check(name, value)
    if n_workers is not None:
        POSITIVE.check("n_workers", n_workers)
    if scheduler not in SCHEDULERS and not _is_address(scheduler):
        raise ValueError(
            f"unknown scheduler {scheduler!r}: use 'local', 'processes' or a Dask "
            f"scheduler address like tcp://host:8786"
        )
    if scheduler != "local":
        _need_dask(scheduler)  # fail before any work
    return texts, labels, ids


def _resumed(chunk_dir: Path, chunks: list[_Chunk], run: str, log: Callable[[str], None]) -> dict[int, dict]:
    """The chunks an interrupted run already saved, saying what is kept and what is redone."""
    done, notes = _load_done(chunk_dir, chunks, run)
    for n in notes:
        log(f"resume: {n}")
    log(
        f"resume: {len(done)} of {len(chunks)} chunks already done "
        f"({sum(chunks[i].stop - chunks[i].start for i in done)} reviews); "
        f"explaining the other {len(chunks) - len(done)}"
    )
    return done


class _Tracker:
    """Writes each finished chunk, counts it on the progress bar and times the work."""

    def __init__(self, chunk_dir: Path, run: str, done: dict[int, dict], n_chunks: int, progress: bool):
        self.chunk_dir, self.run, self.done, self.n_chunks, self.progress = chunk_dir, run, done, n_chunks, progress
        self.bar: Any = None
        self.worker_seconds = 0.0
        self.t_work = time.perf_counter()

    def started(self) -> None:
        # workers are up and hold their explainers: throughput is timed from here
        from tqdm import tqdm

        self.t_work = time.perf_counter()
        self.bar = tqdm(
            total=self.n_chunks,
            initial=len(self.done),
            desc="explaining chunks",
            unit="chunk",
            disable=not self.progress,
            file=sys.stderr,
        )

    def on_done(self, c: _Chunk, res: dict) -> None:
        _write_chunk(self.chunk_dir, c, self.run, res)  # on disk first: a kill now loses nothing
        self.done[c.index] = res["state"]
        self.worker_seconds += float(res["seconds"])
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _dispatch(
    scheduler: str,
    todo: list[_Chunk],
    texts: list[str],
    labels: list[int] | None,
    payload: Payload,
    n_workers: int | None,
    worker_timeout: float,
    tracker: _Tracker,
    progress: bool,
    log: Callable[[str], None],
) -> int:
    """Explain the ``todo`` chunks on ``scheduler``; returns how many workers did it."""
    cluster = client = None
    try:
        if not todo:
            tracker.started()
            return 0
        if scheduler == "local":
            workers = min(n_workers or os.cpu_count() or 1, len(todo))
            return _run_local(todo, texts, labels, payload, workers, tracker.on_done, tracker.started)
        import logging

        import dask
        from distributed import Client, LocalCluster

        if scheduler == "processes":
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_ in the workers, which disables glibc's
            # adaptive mmap threshold and makes explaining ~3x slower: keep glibc's defaults
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                cluster = LocalCluster(
                    n_workers=min(n_workers or os.cpu_count() or 1, len(todo)),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = Client(cluster)
        else:
            if progress:
                log(f"connecting to the Dask scheduler at {scheduler}")
            try:
                client = Client(scheduler, timeout=worker_timeout)
            except OSError as e:
                raise DistributedError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except TimeoutError:
            raise DistributedError(
                f"no Dask worker joined {scheduler} within {worker_timeout:g} s "
                f"(start some with: dask worker {scheduler})"
            ) from None
        workers = _dask_workers(client)
        _run_dask(client, todo, texts, labels, payload, tracker.on_done, tracker.started, log)
        return workers
    except KeyboardInterrupt:
        log(
            f"interrupted: {len(tracker.done)} of {tracker.n_chunks} chunks are saved in {tracker.chunk_dir}; "
            f"run again with --resume to finish"
        )
        raise
    finally:
        tracker.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def format_summary(s: dict) -> str:
    """One line for people: reviews explained, seconds, reviews/s, workers."""
    line = (
        f"explained {s['reviews_explained']} reviews in {s['seconds']:.1f} s "
        f"({s['reviews_per_s']:.1f} reviews/s after {s['startup_seconds']:.1f} s startup) "
        f"on {s['workers']} worker{'s' if s['workers'] != 1 else ''} ({s['scheduler']})"
    )
    if s["chunks_resumed"]:
        line += f"; {s['chunks_resumed']} of {s['chunks']} chunks ({s['reviews_resumed']} reviews) resumed"
    return line
