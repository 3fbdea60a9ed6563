"""Task runners for the flows: a thread pool on one machine, or Dask (prefect-dask) for many."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner

TASK_RUNNERS = ("threads", "dask")


def make_task_runner(kind: str = "threads", *, concurrency: int = 2, dask_address: str | None = None):
    """``threads``: ``concurrency`` worker threads. ``dask``: the scheduler at ``dask_address``
    (``tcp://host:8786``), or without one a temporary local cluster of ``concurrency``
    single-threaded worker processes."""
    if kind == "threads":
        if dask_address:
            raise ValueError("--dask-address needs --task-runner dask")
        return ThreadPoolTaskRunner(max_workers=max(1, concurrency))
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": max(1, concurrency), "threads_per_worker": 1,
                                              "processes": True})
    raise ValueError(f"unknown task runner {kind!r}: choose one of {', '.join(TASK_RUNNERS)}")


_CONFIGURED: dict[tuple, object] = {}


def with_task_runner(flow, kind: str = "threads", *, concurrency: int = 2, dask_address: str | None = None):
    """``flow.with_options(task_runner=...)``, made once per process and runner configuration.

    ``with_options`` builds a new flow object and regenerates its parameter schema (~0.2 s); the
    engine gives every run its own copy of the runner (``duplicate()``), so reuse is safe."""
    key = (id(flow), kind, concurrency, dask_address)
    if key not in _CONFIGURED:
        _CONFIGURED[key] = flow.with_options(
            task_runner=make_task_runner(kind, concurrency=concurrency, dask_address=dask_address))
    return _CONFIGURED[key]
