"""The vocabulary is the one place for label ids, organ names, sub-location names and attribute
thresholds: other modules hold none of them, and imaging's outputs stay inside its closed sets."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import tumorcot
from tumorcot.imaging.describe import VESSEL_LABELS
from tumorcot.imaging.shape import shape_of
from tumorcot.imaging.texture import content_of
from tumorcot.vocabulary import (ATTRIBUTE_VALUES, NO_HOST, SUB_LOCATION_SCHEMES, THRESHOLDS, attribute_rules,
                                 label_ids, task_labels, total_labels)

PACKAGE = Path(tumorcot.__file__).parent


def test_total_label_map_matches_totalsegmentator_v2_ids():
    # ids from TotalSegmentator's class map (map_to_binary.py, task "total", v2)
    assert len(total_labels()) == 117
    assert {i: total_labels()[i] for i in (1, 2, 3, 5, 7, 52, 63, 64)} == {
        1: "spleen", 2: "kidney_right", 3: "kidney_left", 5: "liver", 7: "pancreas", 52: "aorta",
        63: "inferior_vena_cava", 64: "portal_vein_and_splenic_vein"}
    assert label_ids()["aorta"] == 52 and VESSEL_LABELS[52] == "aorta"
    assert task_labels("liver_segments")[4] == "liver_segment_4" and len(task_labels("liver_segments")) == 8
    with pytest.raises(KeyError, match="appendicular_bones"):   # a task the pipeline does not read
        task_labels("appendicular_bones")


def _python_files():
    return [p for p in PACKAGE.rglob("*.py") if p.name != "vocabulary.py"]


def test_no_module_but_the_vocabulary_spells_the_no_host_organs():
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not strings & set(NO_HOST), path


def test_no_module_but_the_vocabulary_maps_label_ids_to_names():
    names, ids = total_labels(), label_ids()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):   # {52: "aorta"} or {"aorta": 52}
                pairs = zip(node.keys, node.values)
                for k, v in pairs:
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant):
                        key, value = k.value, v.value
                        assert not (isinstance(key, int) and names.get(key) == value), (path, key, value)
                        assert not (isinstance(key, str) and isinstance(value, int) and ids.get(key) == value), (path, key, value)


def test_knowledge_graph_files_state_no_attribute_rule_of_their_own():
    for path in (PACKAGE / "knowledge_graph" / "data").glob("*.json"):
        assert "attribute_rules" not in json.loads(path.read_text(encoding="utf-8")), path


def test_every_threshold_has_a_source_and_is_read_by_name_or_stated_in_the_rules():
    text = " ".join(attribute_rules().values())
    sources = " ".join(p.read_text(encoding="utf-8") for p in _python_files())
    kg = " ".join(p.read_text(encoding="utf-8") for p in (PACKAGE / "knowledge_graph" / "data").glob("*.json"))
    for name, (value, _unit, source) in THRESHOLDS.items():
        assert source, name
        stated = re.search(rf"(?<![\d.]){value:g}(?![\d])", text)
        assert stated or f'"{name}"' in sources or f"{{{name}}}" in kg, f"{name} is neither stated nor read"


@pytest.mark.parametrize("hu, expected", [
    ([-80.0] * 10, "fatty"),                   # median below the fat threshold
    ([200.0] * 6 + [40.0] * 4, "calcified"),   # 60 % of voxels above the calcification threshold
    ([10.0, 12.0, 8.0, 11.0], "cystic"),       # water range, homogeneous
    ([45.0, 60.0, 50.0, 55.0], "solid"),
])
def test_content_values_are_members_of_the_closed_set(hu, expected):
    import numpy as np

    found = content_of(np.array(hu))["content"]
    assert found == expected and found in ATTRIBUTE_VALUES["content"]


def test_shape_of_a_ball_is_round_and_in_the_closed_set():
    import numpy as np

    z, y, x = np.mgrid[-12:13, -12:13, -12:13]
    ball = (x**2 + y**2 + z**2) <= 10**2
    found = shape_of(ball, (1.0, 1.0, 1.0))
    shape, sphericity = found["shape"], found["sphericity"]
    assert shape == "round" and shape in ATTRIBUTE_VALUES["shape"] and sphericity >= THRESHOLDS["round_sphericity"][0]


def test_sub_location_schemes_hold_every_name_imaging_can_give():
    from tumorcot.imaging.describe import _liver_geometric

    names = {n for scheme in SUB_LOCATION_SCHEMES for n in scheme}
    grid = [i / 10 for i in range(11)]
    assert {_liver_geometric(u, v, w) for u in grid for v in grid for w in grid} <= names


def test_kg_states_the_vocabulary_thresholds_and_versions_with_them(monkeypatch):
    from tumorcot import vocabulary
    from tumorcot.knowledge_graph import graph

    kg = graph.load_kg()
    assert kg.label("feature:unenhanced_le_10hu") == "10 HU or less on non-contrast CT"   # adenoma_max_hu = 10
    assert "short axis 10 mm or more" in kg.label("impression:lymph_node:enlarged")
    raw = (Path(graph.__file__).parent / "data" / graph.DATA_FILE).read_text(encoding="utf-8")
    assert "{adenoma_max_hu}" in raw and "10 HU or less" not in raw   # the number is written once
    monkeypatch.setitem(vocabulary.THRESHOLDS, "adenoma_max_hu", (12.0, "HU", "test"))
    graph.load_kg.cache_clear()
    try:
        changed = graph.load_kg()
        assert changed.label("feature:unenhanced_le_10hu") == "12 HU or less on non-contrast CT"
        assert changed.version != kg.version
    finally:
        monkeypatch.undo()
        graph.load_kg.cache_clear()
    assert graph.load_kg().version == kg.version
