"""A dataset's own build settings: generator, generation options and segmentation plan.

They are stored with the dataset at its first build (``manifest.json`` ``versions``: generator,
options, segmentation) and every entry point that builds into it (``tumorcot build``,
``serve``, ``batch prepare``, ``regenerate``, the ``prefect.yaml`` deployments) uses them unless
told otherwise: only the settings a caller gives explicitly override the stored ones, and an
override that changes a stored value is announced (it regenerates every case's records).

An override is what the caller set: the keys of a dict, or the fields set on a
``GenerationOptions`` / ``SegmentationPlan`` (pydantic's ``model_fields_set``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tumorcot.flows.segment import SegmentationPlan
from tumorcot.schemas import GenerationOptions
from tumorcot.schemas.options import stored_options

DEFAULT_GENERATOR = "offline"


@dataclass
class Settings:
    generator: str
    options: GenerationOptions
    segmentation: SegmentationPlan
    warnings: list[str] = field(default_factory=list)

    def flow_parameters(self) -> dict:
        return {"generator": self.generator, "options": self.options.model_dump(mode="json"),
                "segmentation": self.segmentation.model_dump(mode="json")}


def stored_settings(dataset_dir: Path | str) -> dict:
    """``{"generator", "options", "segmentation"}`` the dataset was last built with ({} if none)."""
    path = Path(dataset_dir) / "manifest.json"
    try:
        versions = json.loads(path.read_text()).get("versions", {})
    except (OSError, ValueError):
        return {}
    return {k: versions[k] for k in ("generator", "options", "segmentation") if versions.get(k) is not None}


def explicit(value) -> dict:
    """The settings a caller gave: a dict as is, a model's fields set (``model_fields_set``)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    return value.model_dump(mode="json", include=value.model_fields_set)


def _stored_plan(stored: dict) -> dict:
    """The stored plan's fields (older manifests keep only its ``version()``)."""
    return {k: v for k, v in stored.items() if k in SegmentationPlan.model_fields}


def resolve_settings(dataset_dir: Path | str, generator: str | None = None,
                     options: GenerationOptions | dict | None = None,
                     segmentation: SegmentationPlan | dict | None = None) -> Settings:
    """Stored settings of ``dataset_dir`` overridden by what the caller gave explicitly."""
    stored = stored_settings(dataset_dir)
    given_options, given_plan = explicit(options), explicit(segmentation)
    stored_opts = stored_options(stored.get("options")).model_dump(mode="json")
    stored_plan = _stored_plan(stored.get("segmentation", {}))
    merged_options = GenerationOptions(**{**stored_opts, **given_options})
    merged_plan = SegmentationPlan(**{**stored_plan, **given_plan})
    settings = Settings(generator or stored.get("generator") or DEFAULT_GENERATOR, merged_options, merged_plan)
    if not stored:
        return settings
    if generator and stored.get("generator") and generator != stored["generator"]:
        settings.warnings.append(f"generator {generator!r} differs from the dataset's {stored['generator']!r}")
    old_options = stored_opts
    for name, value in merged_options.model_dump(mode="json").items():
        if name in given_options and old_options.get(name) != value:
            settings.warnings.append(f"option {name}={_show(value)} differs from the dataset's {_show(old_options.get(name))}")
    old_plan = SegmentationPlan(**stored_plan)
    if old_plan.version() != merged_plan.version():
        settings.warnings.append(f"segmentation {merged_plan.version()} differs from the dataset's {old_plan.version()}")
    if settings.warnings:
        settings.warnings.append("every affected case's records are regenerated with the new settings")
    return settings


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
