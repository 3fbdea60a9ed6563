"""Scheduled deployments (built, never served) and the Dask task runner on a real local cluster."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from ops_helpers import records_by_id

from tumorcot.flows.build import build_dataset, run_build
from tumorcot.flows.regenerate import regenerate_patient
from tumorcot.flows.runners import make_task_runner
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.ops.serve import make_deployment
from tumorcot.ops.validate import validate_dataset

REPO = Path(__file__).resolve().parents[1]


def test_serve_deployment_has_the_schedule_and_parameters(tmp_path):
    deployment = make_deployment(tmp_path / "cases.csv", tmp_path / "ds", "0 2 * * *", name="nightly")
    assert deployment.name == "nightly"
    [schedule] = deployment.schedules
    assert schedule.schedule.cron == "0 2 * * *"
    assert deployment.parameters == {"manifest": str((tmp_path / "cases.csv").resolve()),
                                     "out": str((tmp_path / "ds").resolve()), "force": False}   # stored settings
    assert deployment.flow_name == "build_dataset"


@pytest.mark.parametrize("kind, address, error", [
    ("threads", None, None),
    ("dask", "tcp://127.0.0.1:8786", None),           # an existing scheduler (not contacted here)
    ("threads", "tcp://127.0.0.1:8786", "needs --task-runner dask"),
    ("ray", None, "unknown task runner"),
])
def test_task_runner_choices(kind, address, error):
    if error:
        with pytest.raises(ValueError, match=error):
            make_task_runner(kind, dask_address=address)
    else:
        assert make_task_runner(kind, dask_address=address) is not None


def test_prefect_yaml_points_at_the_flows_with_their_parameters():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    flows = {"build_dataset": build_dataset, "regenerate_patient": regenerate_patient}
    for deployment in config["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        assert (REPO / path).exists() and name in flows
        signature = inspect.signature(flows[name].fn)
        assert set(deployment["parameters"]) <= set(signature.parameters)
    nightly = next(d for d in config["deployments"] if d["name"] == "nightly-build")
    assert nightly["schedules"][0]["cron"] == "0 2 * * *"


@pytest.mark.usefixtures("prefect_server")
def test_dask_runner_on_a_local_cluster_gives_the_same_records(tmp_path, monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setenv("TUMORCOT_SALT", "dask-test-salt")
    manifest = write_phantom_cases(tmp_path / "cases", 4, seed=7, scale=4)
    threads = run_build(manifest, tmp_path / "threads")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = run_build(manifest, tmp_path / "dask", task_runner="dask", dask_address=cluster.scheduler_address)
    assert dask["failed"] == 0 and dask["ok"] == threads["ok"] == 4
    assert records_by_id(tmp_path / "dask") == records_by_id(tmp_path / "threads")
    assert validate_dataset(tmp_path / "dask")[0] == []
