"""Segmentation inside a build: masks from the manifest (``precomputed``) or made by
TotalSegmentator (``totalsegmentator``) for the rows that lack them.

TotalSegmentator runs as its own process (``tumorcot.imaging.segment``) inside a Prefect task
named ``totalsegmentator``. With ``device="gpu"`` the task carries the tag ``tumorcot-gpu``, and
the build makes sure a tag concurrency limit with one slot per GPU exists (it never lowers or
raises a limit someone already set: ``prefect concurrency-limit create tumorcot-gpu N`` wins), so
no two segmentations share a GPU however many cases run at once. Results are cached by the CT's
content hash and the options, in the dataset's private folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tumorcot.imaging.segment import SegmentOptions, run_totalsegmentator
from tumorcot.schemas import CaseInput
from tumorcot.vocabulary import LESION_SUBTASK_LABELS
from tumorcot.store.private import state_dir

GPU_TAG = "tumorcot-gpu"
LESION_SUBTASKS = tuple(LESION_SUBTASK_LABELS)  # their tumour/nodule/cyst labels become model-predicted
# lesions for rows without a lesion_mask
SUBTASKS = ("liver_segments", *LESION_SUBTASKS)  # the TotalSegmentator subtasks whose output the measurement uses


class SegmentationPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["precomputed", "totalsegmentator"] = "precomputed"
    device: Literal["cpu", "gpu"] = "cpu"
    fast: bool = Field(False, description="TotalSegmentator --fast (3 mm model)")
    subtasks: tuple[str, ...] = Field((), description=f"extra TotalSegmentator tasks, of {SUBTASKS}")
    gpus: int = Field(1, ge=1, description="slots of the tumorcot-gpu tag limit when the build creates it")
    timeout_s: float = Field(3600.0, gt=0)

    @field_validator("subtasks")
    @classmethod
    def _known(cls, value):
        unknown = sorted(set(value) - set(SUBTASKS))
        if unknown:
            raise ValueError(f"unsupported TotalSegmentator subtask(s) {unknown}; supported: {list(SUBTASKS)}")
        return tuple(sorted(set(value)))

    def version(self) -> dict:
        """What changes the masks (part of the facts key); device, slots and timeout do not."""
        if self.backend == "precomputed":
            return {"backend": "precomputed"}
        return {"backend": self.backend, "fast": self.fast, "subtasks": list(self.subtasks)}


def resolve_plan(plan: "SegmentationPlan | dict | None") -> SegmentationPlan:
    if plan is None:
        return SegmentationPlan()
    return plan if isinstance(plan, SegmentationPlan) else SegmentationPlan(**plan)


@task(name="totalsegmentator", cache_policy=NO_CACHE, task_run_name="totalsegmentator-{task_name}")
def totalsegmentator_task(ct: Path, cache_dir: Path, case_label: str, task_name: str, fast: bool,
                          device: str, timeout_s: float, ct_sha256: str) -> Path:
    options = SegmentOptions(task=task_name, fast=fast, device=device, timeout_s=timeout_s)
    return run_totalsegmentator(ct, cache_dir, case=case_label, options=options, ct_sha256=ct_sha256)


def segmented_case(case: CaseInput, plan: SegmentationPlan, dataset_dir: Path, ct_sha256: str) -> CaseInput:
    """``case`` with the masks the plan makes filled in (a manifest's own masks are kept)."""
    if plan.backend != "totalsegmentator":
        return case
    run = totalsegmentator_task.with_options(tags=[GPU_TAG] if plan.device == "gpu" else [])
    cache_dir = state_dir(dataset_dir) / "segmentations"
    wanted = {"organ_mask": "total", **{"liver_segments": "liver_segments" for s in plan.subtasks
                                        if s == "liver_segments"}}
    updates = {}
    for field, task_name in wanted.items():
        if getattr(case, field) is None:
            updates[field] = run(case.ct, cache_dir, case.label, task_name, plan.fast and task_name == "total",
                                 plan.device, plan.timeout_s, ct_sha256)
    if case.lesion_mask is None:
        # subtasks have no --fast model (TotalSegmentator refuses it for liver_vessels)
        predicted = {task_name: run(case.ct, cache_dir, case.label, task_name, False, plan.device,
                                    plan.timeout_s, ct_sha256)
                     for task_name in plan.subtasks if task_name in LESION_SUBTASKS}
        if predicted:
            updates["predicted_masks"] = predicted
    return case.model_copy(update=updates)


def ensure_gpu_limit(slots: int) -> None:
    """Create the ``tumorcot-gpu`` tag concurrency limit unless one exists."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_concurrency_limit_by_tag(GPU_TAG)
        except ObjectNotFound:
            client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)
