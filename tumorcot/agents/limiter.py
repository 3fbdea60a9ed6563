"""The in-flight limit of one LLM endpoint: adaptive (AIMD) and served in priority order.

Guarantees:

- At most ``limit`` requests hold a slot at once; ``limit`` starts at ``ceiling``
  (``--llm-concurrency``) and never leaves ``[floor, ceiling]``.
- Throttling (HTTP 429) halves the limit, once per round of requests: a 429 answering a request
  sent before the last decrease does not decrease it again (as TCP does per window). Its
  ``Retry-After`` pauses every new send of the endpoint until it has passed; requests already in
  flight go on.
- Each success adds ``1 / limit``: the limit grows back by about one per round trip.
- Waiting requests are served lowest ``priority`` first, then first come: the scheduler gives a
  case's requests the number of the case, so the cases started first finish first and a build's
  in-flight requests do not all wait on the slowest stage of every case at once.
- Only the event loop that uses it touches it (no locks); ``stats`` is a snapshot.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time
from dataclasses import dataclass

PRIORITY: contextvars.ContextVar[int] = contextvars.ContextVar("llm_request_priority", default=0)


@dataclass
class LimitStats:
    ceiling: int
    limit: float
    min_limit: float
    max_in_flight: int
    mean_in_flight: float   # time-weighted, from the first send to the last completion
    busy_s: float
    throttled: int          # 429 answers seen
    decreases: int


class AdaptiveLimit:
    def __init__(self, ceiling: int, *, floor: int = 1, clock=time.monotonic):
        if ceiling < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.ceiling, self.floor, self._clock = ceiling, max(1, min(floor, ceiling)), clock
        self.limit = float(ceiling)
        self.min_limit = float(ceiling)
        self.in_flight = self.max_in_flight = 0
        self.throttled_count = self.decreases = 0
        self._epoch = 0                 # number of decreases so far
        self._paused_until = 0.0
        self._wake: asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()
        self._area = 0.0                # integral of in_flight over time
        self._first: float | None = None
        self._last = 0.0

    # -- slots ----------------------------------------------------------------------------------

    async def acquire(self) -> int:
        """Wait for a slot; returns the ticket (the decrease epoch at send) for ``throttled``."""
        if not self._waiters and self._free():
            self._take()
            return self._epoch
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (PRIORITY.get(), next(self._seq), future))
        self._schedule_wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():   # granted, then cancelled: give it back
                self.release()
            raise
        return self._epoch

    def release(self) -> None:
        self._account()
        self.in_flight -= 1
        self._grant()

    def succeeded(self) -> None:
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        self._grant()

    def throttled(self, ticket: int, retry_after_s: float | None) -> None:
        """A 429 for a request sent with ``ticket``; ``retry_after_s`` from its headers."""
        self.throttled_count += 1
        if ticket == self._epoch:
            self.limit = max(float(self.floor), self.limit / 2)
            self.min_limit = min(self.min_limit, self.limit)
            self._epoch += 1
            self.decreases += 1
        if retry_after_s:
            self._paused_until = max(self._paused_until, self._clock() + retry_after_s)
            self._schedule_wake()

    # -- machinery -------------------------------------------------------------------------------

    def _free(self) -> bool:
        return self.in_flight < int(self.limit) and self._clock() >= self._paused_until

    def _take(self) -> None:
        self._account()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _grant(self) -> None:
        while self._waiters and self._free():
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self._take()
                future.set_result(None)
        self._schedule_wake()

    def _schedule_wake(self) -> None:
        """While paused, wake the queue when the pause ends."""
        now = self._clock()
        if self._waiters and self._paused_until > now and self._wake is None:
            def wake() -> None:
                self._wake = None
                self._grant()
            self._wake = asyncio.get_running_loop().call_later(self._paused_until - now, wake)

    def _account(self) -> None:
        now = self._clock()
        if self._first is None:
            self._first = now
        else:
            self._area += self.in_flight * (now - self._last)
        self._last = now

    @property
    def stats(self) -> LimitStats:
        busy = (self._last - self._first) if self._first is not None else 0.0
        return LimitStats(ceiling=self.ceiling, limit=round(self.limit, 2), min_limit=round(self.min_limit, 2),
                          max_in_flight=self.max_in_flight,
                          mean_in_flight=round(self._area / busy, 2) if busy > 0 else 0.0,
                          busy_s=round(busy, 3), throttled=self.throttled_count, decreases=self.decreases)
