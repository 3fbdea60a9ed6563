"""``tumorcot regenerate``: raw patient id -> pseudonym (dataset salt) -> ``regenerate_patient``."""

from __future__ import annotations

from pathlib import Path

from tumorcot.errors import RegenerationError
from tumorcot.privacy import load_or_create_salt, pseudonymise, salt_path


def patient_pseudonym(dataset_dir: Path, patient_id: str) -> str:
    """The patient's pseudonym under the salt the dataset was built with (never creates one)."""
    salt = load_or_create_salt(dataset_dir, create=False)
    if salt is None:
        raise RegenerationError(f"no salt at {salt_path(dataset_dir)}: {dataset_dir} is not a tumorcot dataset "
                                "folder, its state folder is elsewhere (--state-dir / $TUMORCOT_STATE_DIR), or it "
                                "was built with TUMORCOT_SALT (set it again)")
    return pseudonymise(patient_id, salt)


def regenerate(dataset_dir: Path, patient_id: str, reason: str = "", *, wait_s: float = 0.0,
               task_runner: str = "threads", concurrency: int = 2) -> dict:
    """Check the patient exists (nothing is touched otherwise) and Prefect is there, then run the flow."""
    from tumorcot.flows.regenerate import patient_case_ids, regenerate_patient
    from prefect.utilities.asyncutils import run_coro_as_sync

    from tumorcot.flows.runners import with_task_runner

    dataset_dir = Path(dataset_dir)
    pseudo = patient_pseudonym(dataset_dir, patient_id)
    patient_case_ids(dataset_dir, pseudo)
    from tumorcot.ops.preflight import prefect_api

    prefect_api()   # PrefectUnavailableError: one clear message instead of a traceback
    configured = with_task_runner(regenerate_patient, task_runner, concurrency=concurrency)
    return run_coro_as_sync(configured(dataset_dir, pseudo, reason, wait_s))   # an async flow
