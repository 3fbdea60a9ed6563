"""One LLM scheduler per build process: every case's agents as coroutines on one event loop.

Why: a case's agents depend on each other (reasoner -> judge -> summarizer -> question writer),
so one case keeps only a few requests in flight. Throughput comes from many cases in flight at
once on one client, whose ``AdaptiveLimit`` (``--llm-concurrency``) bounds the requests in flight
for the whole process, not per case or per case worker.

Guarantees:

- ``shared_scheduler(config, run_id)`` returns the process's scheduler for that endpoint,
  configuration and run (made on first use): an event loop in its own daemon thread, one
  ``LLMClient`` and one ``ResponseCache`` (indexed once, off the loop, when the scheduler starts;
  written by its own thread).
- ``submit(stage)`` runs ``stage(client)`` on the loop and returns a ``concurrent.futures.Future``
  at once, so a thread (a Prefect task) can go on measuring the next case while this one's agents
  wait on the endpoint. Cases are numbered as submitted; their requests wait for a slot in that
  order (``limiter.PRIORITY``), so early cases finish first.
- ``pipeline(items, prepare, stage, finish)`` is the driver of a batch: ``prepare`` (measurement)
  and ``finish`` (storing) run in the calling thread, ``stage`` on the loop, overlapped.
- ``flush()`` returns when every answer cached so far is on disk; ``close_schedulers()`` (end of a
  build, and at exit) closes every scheduler of the process and returns their statistics.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import itertools
import threading
from dataclasses import asdict
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from tumorcot.agents.cache import ResponseCache
from tumorcot.agents.client import LLMClient, LLMConfig
from tumorcot.agents.limiter import PRIORITY

T = TypeVar("T")
P = TypeVar("P")
Stage = Callable[[LLMClient], Awaitable[Any]]


class LLMScheduler:
    def __init__(self, config: LLMConfig, *, run_id: str = ""):
        self.config, self.run_id = config, run_id
        self.cache = ResponseCache(config.cache_dir) if config.cache_dir else None
        if self.cache is not None:
            self.cache.load()   # the index is read here, not on the event loop
        self._numbers = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-scheduler", daemon=True)
        self._thread.start()
        self.client = self._call(self._open(run_id))
        self.closed = False
        self.worker_processes = 0   # measurement / claim-check processes feeding it (flows/measure_pool.py)

    async def _open(self, run_id: str) -> LLMClient:
        return LLMClient(self.config, run_id=run_id, cache=self.cache)

    def _call(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, stage: Stage) -> concurrent.futures.Future:
        """Run ``stage(client)`` on the scheduler's loop, as the next case in priority order."""
        if self.closed:
            raise RuntimeError("the LLM scheduler is closed")
        number = next(self._numbers)

        async def run() -> Any:
            PRIORITY.set(number)   # inherited by every request (and gathered task) of the stage
            return await stage(self.client)

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    def run(self, stage: Stage) -> Any:
        """``submit`` and wait (one case, e.g. regeneration of one patient)."""
        return self.submit(stage).result()

    def pipeline(self, items: Iterable[T], prepare: Callable[[T], P | None], stage: Callable[[P], Stage],
                 finish: Callable[[P, concurrent.futures.Future], Any]) -> list[Any]:
        """For each item: ``prepare`` it here (None: nothing to generate), hand ``stage`` of it to
        the loop at once, and ``finish`` each one here as its stage ends, while later items are
        still being prepared. ``finish`` gets the done future (it may hold an exception).
        Returns what ``finish`` returned, in completion order."""
        running: dict[concurrent.futures.Future, P] = {}
        results: list[Any] = []

        def finish_done(wait: bool) -> None:
            done = concurrent.futures.wait(running, return_when="ALL_COMPLETED" if wait else "FIRST_COMPLETED",
                                           timeout=None if wait else 0).done
            for future in done:
                results.append(finish(running.pop(future), future))

        for item in items:
            prepared = prepare(item)
            if prepared is not None:
                running[self.submit(stage(prepared))] = prepared
            if running:
                finish_done(wait=False)
        while running:
            finish_done(wait=True)
        return results

    def flush(self) -> None:
        if self.cache is not None:
            self.cache.flush()

    def stats(self) -> dict[str, Any]:
        usage = self.client.usage.values()
        return {**asdict(self.client.limit.stats),
                "requests": sum(u.requests + u.failed_requests for u in usage),
                "cached": sum(u.cached for u in usage),
                "cache_batches": self.cache.fsyncs if self.cache is not None else 0,
                "cache_writes": self.cache.written if self.cache is not None else 0,
                "worker_processes": self.worker_processes}

    def close(self) -> dict[str, Any]:
        if self.closed:
            return self.stats()
        self.closed = True
        self._call(self.client.aclose())   # also flushes the cache
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        if self.cache is not None:
            self.cache.close()
        return self.stats()


_SCHEDULERS: dict[str, LLMScheduler] = {}
_LOCK = threading.Lock()


def _identity(config: LLMConfig, run_id: str) -> str:
    secret = hashlib.sha256(config.api_key.get_secret_value().encode()).hexdigest()
    return f"{config.model_dump_json()}\x1f{secret}\x1f{run_id}"


def shared_scheduler(config: LLMConfig, run_id: str = "") -> LLMScheduler:
    """This process's scheduler for ``config`` and ``run_id`` (made on first use)."""
    key = _identity(config, run_id)
    with _LOCK:
        scheduler = _SCHEDULERS.get(key)
        if scheduler is None or scheduler.closed:
            scheduler = _SCHEDULERS[key] = LLMScheduler(config, run_id=run_id)
        return scheduler


def scheduler_stats() -> list[dict[str, Any]]:
    with _LOCK:
        return [s.stats() for s in _SCHEDULERS.values()]


def close_schedulers(run_id: str | None = None) -> list[dict[str, Any]]:
    """Close this process's schedulers of ``run_id`` (default: all of them); their statistics."""
    with _LOCK:
        keys = [k for k, s in _SCHEDULERS.items() if run_id is None or s.run_id == run_id]
        schedulers = [_SCHEDULERS.pop(k) for k in keys]
    return [s.close() for s in schedulers]


atexit.register(close_schedulers)
