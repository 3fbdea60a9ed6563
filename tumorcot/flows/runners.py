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
