"""Dynamic batching: concurrent requests share one explainer call.

Explaining 8 reviews in one call costs a few times one review, not 8x (the background pairs go
through the network together), so requests that arrive together are gathered: up to
``max_batch`` texts with the same key (output space, target), waiting at most ``wait_s``
for companions after the oldest one arrived or the last call ended. Calls run one at a
time on one worker thread (the explainer rewrites the network's module tree while it
works, so calls cannot overlap), and while one runs the next batch fills up by itself.

Every caller gets exactly what it would get alone: its own slice of the batch's
explanations, or its own error. When a merged call fails, the request that caused it (the
row named by :class:`~seqshap.NonFiniteError` or :class:`~seqshap.NoWordsError`) is run
alone for its own error and the others again without it; an error that names no row gets
every request run alone.

State lives on the event loop (submit, the dispatch task, futures); the worker thread only
runs the blocking call, so there are no locks here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive

from ..attribution import NonFiniteError, NoWordsError

# A call of the explainer: (key, texts) -> one result per text, run on the worker thread.
Runner = Callable[[Hashable, list[str]], Sequence[Any]]
# Turns one request's results into its answer; runs on the worker thread, off the event loop.
Finisher = Callable[[list[Any]], Any]
# Told after each explainer call: (texts, requests, seconds, whether it succeeded).
BatchObserver = Callable[[int, int, float, bool], None]


class QueueFull(Exception):
    """``queue_limit`` requests are admitted already (running or waiting)."""

    def __init__(self, limit: int):
        super().__init__(f"{limit} requests are running or waiting")
        self.limit = limit


class ShuttingDown(Exception):
    """The server is draining: admitted requests finish, new ones are refused."""


@dataclass(eq=False)
class Job:
    """One request's texts, waiting for (or in) an explainer call."""

    texts: list[str]
    key: Hashable
    future: asyncio.Future
    arrived: float
    finish: Finisher | None = None
    state: str = field(default="waiting")  # "waiting" -> "running" -> "done"

    def cancel(self) -> None:
        """Drop it: a waiting job never runs; a running one's result is thrown away."""
        self.future.cancel()


class Batcher:
    """Gathers :class:`Job` s into explainer calls; a bounded number admitted at a time."""

    def __init__(
        self,
        run: Runner,
        max_batch: int = 32,
        wait_s: float = 0.01,
        queue_limit: int = 32,
        observer: BatchObserver | None = None,
    ):
        if max_batch < 1 or queue_limit < 1 or wait_s < 0:
            raise ValueError(
                f"max_batch and queue_limit must be at least 1 and wait_s at least 0, "
                f"got {max_batch}, {queue_limit} and {wait_s}"
            )
        self.run, self.max_batch, self.wait_s, self.queue_limit = run, int(max_batch), float(wait_s), int(queue_limit)
        self.observer = observer
        self.draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqshap-explain")
        self._waiting: deque[Job] = deque()
        self._admitted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self._last_done = float("-inf")  # when the last explainer call ended (loop time)
        self._expected = 1  # texts worth waiting for (up to wait_s) before the next call

    # ------------------------------------------------------------------------ counts
    @property
    def pending(self) -> int:
        """Requests admitted and not finished (running + waiting)."""
        return self._admitted

    @property
    def waiting(self) -> int:
        """Requests admitted and not yet in an explainer call."""
        return len(self._waiting)

    # ------------------------------------------------------------------------ public
    def submit(self, texts: Sequence[str], key: Hashable, finish: Finisher | None = None) -> Job:
        """Admit one request; :class:`QueueFull` or :class:`ShuttingDown` when it cannot be.
        ``finish`` turns the request's results into its answer on the worker thread."""
        if self.draining or self._closed:
            raise ShuttingDown
        if self._admitted >= self.queue_limit:
            raise QueueFull(self.queue_limit)
        loop = asyncio.get_running_loop()
        self._start(loop)
        job = Job(list(texts), key, loop.create_future(), loop.time(), finish)
        self._admitted += 1
        job.future.add_done_callback(functools.partial(self._settled, job))
        self._waiting.append(job)
        assert self._wake is not None
        self._wake.set()
        return job

    async def explain(
        self, texts: Sequence[str], key: Hashable, receive: Receive | None = None, finish: Finisher | None = None
    ) -> Any:
        """The results for ``texts`` (passed through ``finish``), or ``None`` when the client
        (``receive``) hung up first, in which case the request is dropped before its turn."""
        job = self.submit(texts, key, finish)
        if receive is None:
            return await job.future  # a cancelled caller cancels the future: the job is dropped
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({job.future, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            watcher.cancel()
        if job.future in done:
            return job.future.result()
        job.cancel()
        return None

    def drain(self) -> None:
        """Refuse new requests from now on; admitted ones still run."""
        self.draining = True

    def close(self) -> None:
        """Stop: waiting requests are told the server is shutting down; a running call ends on its own."""
        self._closed = True
        for job in list(self._waiting):
            if not job.future.done():
                job.future.set_exception(ShuttingDown())
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------------- internals
    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        # First use, or a new event loop (an app served again): start over on this loop.
        self._loop, self._wake = loop, asyncio.Event()
        self._waiting.clear()
        self._admitted = 0
        self._task = loop.create_task(self._dispatch(), name="seqshap-batcher")

    def _settled(self, job: Job, _future: asyncio.Future | None = None) -> None:
        """A job's future is done: a waiting one (its client went away) leaves the queue now;
        a running one's slot is given back when its call ends (the worker is still busy)."""
        if job.state == "waiting":
            job.state = "done"
            with contextlib.suppress(ValueError):  # close() may have emptied the queue already
                self._waiting.remove(job)
            self._admitted -= 1

    def _batch_for(self, head: Job) -> list[Job]:
        """The oldest job and the next ones of its key, up to ``max_batch`` texts in all."""
        jobs, size = [head], len(head.texts)
        for job in self._waiting:
            if job is head or job.key != head.key or job.future.done():
                continue
            if size + len(job.texts) <= self.max_batch:
                jobs.append(job)
                size += len(job.texts)
            if size >= self.max_batch:
                break
        return jobs

    async def _dispatch(self) -> None:
        assert self._loop is not None
        assert self._wake is not None
        loop, wake = self._loop, self._wake
        while True:
            while self._waiting and self._waiting[0].future.done():  # hung up; its callback has not run yet
                self._settled(self._waiting[0])
            if not self._waiting:
                wake.clear()
                await wake.wait()
                continue
            head = self._waiting[0]
            jobs = self._batch_for(head)
            # Wait for companions from the head's arrival, or from the end of the last call if
            # later: the clients that call just answered come back a moment later, and without
            # this pause the requests that queued during the call would leave without them —
            # concurrent clients would settle into two half-size batches taking turns.
            remaining = max(head.arrived, self._last_done) + self.wait_s - loop.time()
            size = sum(len(j.texts) for j in jobs)
            if size < self._expected and remaining > 0:
                wake.clear()  # set again by the next submit
                try:
                    async with asyncio.timeout(remaining):
                        await wake.wait()
                except TimeoutError:
                    pass
                continue  # look again: more jobs, or the head's client went away
            for job in jobs:
                job.state = "running"
                self._waiting.remove(job)
            try:
                await self._execute(head.key, jobs)
            finally:
                for job in jobs:
                    job.state = "done"
                self._admitted -= len(jobs)
                self._last_done = loop.time()
                # Who may join the next call: those waiting now, and the clients just answered
                # if they come straight back (as clients in a loop do). Never wait for more.
                waiting = sum(len(j.texts) for j in self._waiting if not j.future.done())
                self._expected = max(1, min(self.max_batch, waiting + sum(len(j.texts) for j in jobs)))

    async def _execute(self, key: Hashable, jobs: list[Job]) -> None:
        """One explainer call for ``jobs``; each gets its slice or its own error."""
        live = [j for j in jobs if not j.future.done()]
        if not live:
            return
        texts = [t for j in live for t in j.texts]
        assert self._loop is not None
        t0, ok = self._loop.time(), False
        try:
            answers = await self._loop.run_in_executor(self._executor, self._call, key, texts, live)
            ok = True
        except asyncio.CancelledError:
            for j in live:
                if not j.future.done():
                    j.future.set_exception(ShuttingDown())
            raise
        except Exception as e:  # handed to the request(s) it belongs to
            if len(live) == 1:
                if not live[0].future.done():
                    live[0].future.set_exception(e)
                return
            culprit = _culprit(e, live)
            if culprit is None:  # no row named: each request alone gets its own answer
                for j in live:
                    await self._execute(key, [j])
            else:
                await self._execute(key, [live[culprit]])
                await self._execute(key, live[:culprit] + live[culprit + 1 :])
            return
        finally:
            if self.observer is not None:
                self.observer(len(texts), len(live), self._loop.time() - t0, ok)
        # All answers at once: the clients of one call come back together for the next one.
        for j, (answer, error) in zip(live, answers, strict=True):
            if j.future.done():
                continue
            if error is not None:
                j.future.set_exception(error)
            else:
                j.future.set_result(answer)

    def _call(self, key: Hashable, texts: list[str], jobs: list[Job]) -> list[tuple[Any, Exception | None]]:
        """On the worker thread: one explainer call, then each job's answer (or the error its
        finisher raised), so the event loop only sends them."""
        results = self.run(key, texts)
        out: list[tuple[Any, Exception | None]] = []
        start = 0
        for j in jobs:
            part = list(results[start : start + len(j.texts)])
            start += len(j.texts)
            try:
                out.append((j.finish(part) if j.finish is not None else part, None))
            except Exception as e:  # this request's own failure, e.g. a renderer error
                out.append((None, e))
        return out


def _culprit(error: Exception, jobs: list[Job]) -> int | None:
    """Which job holds the row an explainer error names (``None``: it names none)."""
    if isinstance(error, NonFiniteError):
        row = error.row
    elif isinstance(error, NoWordsError):
        row = error.index
    else:
        return None
    if row is None:
        return None
    start = 0
    for i, job in enumerate(jobs):
        if start <= row < start + len(job.texts):
            return i
        start += len(job.texts)
    return None


async def _disconnected(receive: Receive) -> None:
    """Return when the client hangs up (the request body has been read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
