"""Settings stored with a dataset (generator, generation options, segmentation) are what every
entry point uses unless it gives its own; a given value that changes them is announced."""

from __future__ import annotations

import json

from tumorcot.flows.segment import SegmentationPlan
from tumorcot.flows.settings import resolve_settings
from tumorcot.schemas import GenerationOptions


def _dataset(tmp_path, **versions):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.json").write_text(json.dumps({"versions": versions}))
    return ds


def test_a_new_dataset_gets_the_defaults(tmp_path):
    settings = resolve_settings(tmp_path / "new")
    assert settings.generator == "offline" and settings.options == GenerationOptions()
    assert settings.segmentation == SegmentationPlan() and settings.warnings == []


def test_stored_settings_are_used_when_nothing_is_given(tmp_path):
    ds = _dataset(tmp_path, generator="llm", options={"mc_share": 1.0, "negative_share": 0.2,
                                                       "split_ratios": [0.6, 0.2, 0.2], "interleave": False},
                  segmentation={"backend": "totalsegmentator", "fast": True, "subtasks": []})
    settings = resolve_settings(ds)
    assert settings.generator == "llm"
    # stored without family_mix: a dataset from before the mix, built without one (schemas.options.stored_options)
    assert settings.options == GenerationOptions(mc_share=1.0, negative_share=0.2, split_ratios=(0.6, 0.2, 0.2),
                                                 interleave=False, family_mix=None)
    assert settings.segmentation.version() == {"backend": "totalsegmentator", "fast": True, "subtasks": []}
    assert settings.warnings == []


def test_only_given_fields_override_and_a_change_is_announced(tmp_path):
    ds = _dataset(tmp_path, generator="offline", options={"mc_share": 1.0, "negative_share": 0.2})
    same = resolve_settings(ds, "offline", {"mc_share": 1.0})
    assert same.warnings == [] and same.options.negative_share == 0.2
    changed = resolve_settings(ds, None, GenerationOptions(mc_share=0.5))   # only mc_share was set
    assert changed.options.mc_share == 0.5 and changed.options.negative_share == 0.2
    assert any("mc_share=0.5 differs from the dataset's 1.0" in w for w in changed.warnings)
    plan = resolve_settings(ds, segmentation={"backend": "totalsegmentator", "device": "cpu"})
    assert any("segmentation" in w for w in plan.warnings)
    device_only = resolve_settings(ds, segmentation={"device": "gpu", "gpus": 2})   # does not change the masks
    assert device_only.warnings == []
