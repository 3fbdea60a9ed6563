"""``flows/measure_pool.prepared`` with real worker processes: results in completion order, and a
worker that dies takes down only the case that kills it (the others are measured again)."""

from __future__ import annotations

import os

import pytest

from tumorcot.errors import WorkerProcessError
from tumorcot.flows.measure_pool import close_pools, measurement_processes, prepared

DEADLY = 3


def square_or_die(n: int) -> int:
    """A stand-in measurement: case ``DEADLY`` kills its process, as the OOM killer would."""
    if n == DEADLY:
        os._exit(137)
    return n * n


@pytest.fixture(autouse=True)
def fresh_pools():
    close_pools()
    yield
    close_pools()


def test_every_case_comes_back_once_in_any_order():
    got = dict(prepared(range(10), abs, processes=2))
    assert got == {n: n for n in range(10)}


def test_a_worker_killed_by_one_case_fails_that_case_only():
    got = dict(prepared(range(8), square_or_die, processes=2))
    assert sorted(got) == list(range(8))
    assert isinstance(got[DEADLY], WorkerProcessError) and "died" in str(got[DEADLY])
    assert {n: v for n, v in got.items() if n != DEADLY} == {n: n * n for n in range(8) if n != DEADLY}
    # and the pool works again for the next batch
    assert dict(prepared(range(4), abs, processes=2)) == {0: 0, 1: 1, 2: 2, 3: 3}


def test_in_thread_mode_reports_an_exception_as_the_result():
    def boom(n):
        if n == 1:
            raise RuntimeError("bad case")
        return n

    got = dict(prepared(range(3), boom, processes=0))
    assert got[0] == 0 and got[2] == 2 and isinstance(got[1], RuntimeError)


def test_process_count_setting(monkeypatch):
    monkeypatch.setenv("TUMORCOT_MEASURE_PROCESSES", "0")
    assert measurement_processes(4) == 0
    monkeypatch.setenv("TUMORCOT_MEASURE_PROCESSES", "3")
    assert measurement_processes(1) == 3
    assert measurement_processes(4, {"backend": "totalsegmentator"}) == 0   # its Prefect task stays in the flow
    monkeypatch.setenv("TUMORCOT_MEASURE_PROCESSES", "many")
    with pytest.raises(ValueError, match="TUMORCOT_MEASURE_PROCESSES"):
        measurement_processes(2)


def test_a_small_build_is_measured_in_its_own_threads(monkeypatch):
    from tumorcot.flows.measure_pool import POOLED_CASES

    monkeypatch.setenv("TUMORCOT_MEASURE_PROCESSES", "2")
    assert measurement_processes(2, None, POOLED_CASES) == 2
    assert measurement_processes(2, None, POOLED_CASES - 1) == 0   # worker start-up would cost more
