"""The response cache's segments (batched, crash-safe), the adaptive in-flight limit and the
LLM batches of a build."""

from __future__ import annotations

import asyncio
import json
import os
import time

from tumorcot.agents.cache import ResponseCache, request_key
from tumorcot.agents.limiter import PRIORITY, AdaptiveLimit


def body(i: int) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "temperature": 0.2, "seed": 0,
            "max_tokens": 64, "response_format": {"type": "json_object"}}


def answer(i: int) -> dict:
    return {"choices": [{"message": {"content": json.dumps({"value": i})}, "finish_reason": "stop"}]}


def test_puts_are_batched_with_one_fsync_each_and_survive_reopening(tmp_path):
    cache = ResponseCache(tmp_path, linger_s=0.5)   # a long linger: 100 puts land in one batch
    keys = [request_key(body(i)) for i in range(100)]
    for i, key in enumerate(keys):
        cache.put(key, body(i), answer(i))
        assert cache.get(key)["response"] == answer(i)      # answered before it is on disk
    cache.close()
    assert cache.written == 100 and cache.fsyncs < 100
    segments = list((tmp_path / "segments").glob("*.seg"))
    assert len(segments) == 1
    again = ResponseCache(tmp_path)
    assert len(again) == 100
    assert all(again.get(k)["response"] == answer(i) for i, k in enumerate(keys))
    assert again.get(request_key(body(999))) is None


def test_a_truncated_or_corrupt_segment_is_ignored_not_fatal(tmp_path):
    cache = ResponseCache(tmp_path)
    keys = [request_key(body(i)) for i in range(3)]
    for i, key in enumerate(keys):
        cache.put(key, body(i), answer(i))
    cache.close()
    segment = next((tmp_path / "segments").glob("*.seg"))
    data = segment.read_bytes()
    lines = data.split(b"\n")
    # a crash in the middle of the last write: the third line is cut short
    segment.write_bytes(data[: len(data) - len(lines[-2]) // 2 - 1])
    # and a segment of garbage from another crashed writer, plus one with a flipped byte
    (tmp_path / "segments" / "junk.seg").write_bytes(os.urandom(300))
    flipped = bytearray(lines[0] + b"\n")
    flipped[-5] ^= 0x01
    (tmp_path / "segments" / "flipped.seg").write_bytes(bytes(flipped))
    reopened = ResponseCache(tmp_path)
    assert reopened.get(keys[0])["response"] == answer(0)   # the intact copy in the first segment
    assert reopened.get(keys[1])["response"] == answer(1)
    assert reopened.get(keys[2]) is None and len(reopened) == 2
    reopened.put(keys[2], body(2), answer(2))                # asked again, stored again
    reopened.close()
    assert ResponseCache(tmp_path).get(keys[2])["response"] == answer(2)


def test_limit_halves_once_per_round_of_429s_and_grows_back():
    limit = AdaptiveLimit(8)

    async def scenario():
        tickets = [await limit.acquire() for _ in range(8)]
        assert limit.in_flight == 8
        for ticket in tickets:              # eight 429s of the same round: one decrease
            limit.release()
            limit.throttled(ticket, None)
        assert limit.limit == 4 and limit.decreases == 1 and limit.throttled_count == 8
        for _ in range(200):                # successes: about +1 per round trip, up to the ceiling
            await limit.acquire()
            limit.release()
            limit.succeeded()
        assert limit.limit == 8 and limit.min_limit == 4

    asyncio.run(scenario())


def test_retry_after_pauses_new_sends_and_waiters_go_in_priority_order():
    limit = AdaptiveLimit(1)
    order: list[tuple[int, float]] = []

    async def request(priority: int) -> None:
        PRIORITY.set(priority)
        await limit.acquire()
        order.append((priority, time.monotonic()))
        limit.release()

    async def scenario():
        ticket = await limit.acquire()      # the one slot is taken
        tasks = [asyncio.create_task(request(p)) for p in (5, 1, 3)]
        for _ in range(3):
            await asyncio.sleep(0)          # all three are queued
        throttled_at = time.monotonic()
        limit.throttled(ticket, 0.3)        # 429 with Retry-After: 0.3 s (noted before the slot is free)
        limit.release()
        for _ in range(3):
            await asyncio.sleep(0)
        assert order == []                  # paused: the free slot is not given
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert [p for p, _ in order] == [1, 3, 5]
        assert order[0][1] - throttled_at >= 0.3   # the timer fired no earlier than Retry-After

    asyncio.run(scenario())


def test_llm_batches_put_every_case_in_flight_one_batch_per_worker_with_a_cap():
    from tumorcot.flows.cases import LLM_CASES_PER_SLOT, llm_batches

    cases = list(range(240))
    batches = llm_batches(cases, workers=2, llm_concurrency=64)
    assert [len(b) for b in batches] == [120, 120] and sum(batches, []) == cases
    assert llm_batches(cases[:3], workers=8, llm_concurrency=64) == [[0], [1], [2]]
    big = list(range(5 * LLM_CASES_PER_SLOT * 4))
    sizes = [len(b) for b in llm_batches(big, workers=2, llm_concurrency=4)]
    assert len(sizes) == 5 and max(sizes) <= LLM_CASES_PER_SLOT * 4 and sum(sizes) == len(big)
    assert llm_batches([], workers=2, llm_concurrency=4) == []
