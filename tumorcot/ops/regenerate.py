"""``tumorcot regenerate``: raw patient id -> pseudonym (dataset salt) -> ``regenerate_patient``."""

from __future__ import annotations

import os
from pathlib import Path

from tumorcot.errors import RegenerationError
from tumorcot.privacy import pseudonymise
from tumorcot.store.private import state_dir


def dataset_salt(dataset_dir: Path) -> bytes:
    """The salt the dataset was built with; never creates one."""
    if os.environ.get("TUMORCOT_SALT"):
        return os.environ["TUMORCOT_SALT"].encode()
    path = state_dir(dataset_dir, create=False) / "salt"
    if not path.exists():
        raise RegenerationError(f"no salt at {path}: {dataset_dir} is not a tumorcot dataset folder, its state "
                                "folder is elsewhere (--state-dir / $TUMORCOT_STATE_DIR), or it was built with "
                                "TUMORCOT_SALT (set it again)")
    return path.read_bytes()


def patient_pseudonym(dataset_dir: Path, patient_id: str) -> str:
    return pseudonymise(patient_id, dataset_salt(dataset_dir))


def regenerate(dataset_dir: Path, patient_id: str, reason: str = "", *, wait_s: float = 0.0,
               task_runner: str = "threads", concurrency: int = 2) -> dict:
    """Check the patient exists (nothing is touched otherwise), then run the flow."""
    from tumorcot.flows.regenerate import patient_case_ids, regenerate_patient
    from prefect.utilities.asyncutils import run_coro_as_sync

    from tumorcot.flows.runners import with_task_runner

    dataset_dir = Path(dataset_dir)
    pseudo = patient_pseudonym(dataset_dir, patient_id)
    patient_case_ids(dataset_dir, pseudo)
    configured = with_task_runner(regenerate_patient, task_runner, concurrency=concurrency)
    return run_coro_as_sync(configured(dataset_dir, pseudo, reason, wait_s))   # an async flow
