"""``tumorcot serve``: a scheduled ``build_dataset`` deployment served by this process."""

from __future__ import annotations

from pathlib import Path


def build_parameters(manifest: Path, out: Path, generator: str = "offline") -> dict:
    return {"manifest": str(Path(manifest).resolve()), "out": str(Path(out).resolve()),
            "generator": generator, "force": False}


def scheduled_flow(task_runner: str = "threads", concurrency: int = 2, dask_address: str | None = None):
    from tumorcot.flows.build import build_dataset
    from tumorcot.flows.runners import make_task_runner

    return build_dataset.with_options(
        task_runner=make_task_runner(task_runner, concurrency=concurrency, dask_address=dask_address))


def make_deployment(manifest: Path, out: Path, cron: str, *, name: str = "tumorcot-scheduled",
                    generator: str = "offline", task_runner: str = "threads", concurrency: int = 2,
                    dask_address: str | None = None):
    """The RunnerDeployment ``serve`` runs: incremental builds of ``out`` on ``cron``."""
    flow = scheduled_flow(task_runner, concurrency, dask_address)
    return flow.to_deployment(name=name, cron=cron, parameters=build_parameters(manifest, out, generator),
                              tags=["tumorcot"], description=f"incremental tumorcot build on '{cron}'")


def serve(manifest: Path, out: Path, cron: str, **options) -> None:
    """Block, starting a build run at every ``cron`` tick (Ctrl-C stops; the deployment pauses)."""
    from prefect import serve as prefect_serve

    prefect_serve(make_deployment(manifest, out, cron, **options))
