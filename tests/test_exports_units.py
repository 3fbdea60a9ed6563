"""Units of the exports: conversations (fallback and typed turns), chat items, ROI crops on real CT,
answer-position stats."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import SimpleITK as sitk

from tumorcot.errors import ExportError, GeometryError
from tumorcot.conversation import conversation
from tumorcot.exports.chat import llava_item, sharegpt_item
from tumorcot.exports.crop import box_to_index_range, canonical_array, crop_to_box
from tumorcot.imaging.geometry import make_box
from tumorcot.schemas import CoTRecord, Turn
from tumorcot.schemas.arrow import to_table
from tumorcot.store.stats import dataset_stats

LIVER_BOX = [0.1, 0.2, 0.3, 0.5, 0.6, 0.9]


def record(**fields) -> CoTRecord:
    base = dict(record_id="r-1", case_id="c-1", patient_pseudo_id="p-1", study_pseudo_id="s-1", split="train",
                task="lesion_attribute", subtask="density", organ="liver", question="What is the density?",
                answer="hypodense", think="Lesion mean HU is 20 below the liver.", conclusion="hypodense",
                template="t#0", image_sha256="0" * 64, generator="offline-kg", synthetic=True,
                kg_version="kg", prompt_version="p", pipeline_version="v")
    return CoTRecord(**{**base, **fields})


def focus_turns(attend: str = "Attend to the liver.") -> list[Turn]:
    return [Turn(role="user", kind="question", content="Report on the liver."),
            Turn(role="assistant", kind="first_pass", content="A liver lesion is suspected."),
            Turn(role="user", kind="attend", content=attend, focus_organ="liver", roi_box=LIVER_BOX,
                 crop_ref="crop:liver"),
            Turn(role="assistant", kind="final", content="<think>...</think>\nhypodense lesion")]


# ---- conversations ----------------------------------------------------------------------------

@pytest.mark.parametrize("fields, user, assistant", [
    # no turns, open question: question, then <think> rationale and conclusion
    ({}, "What is the density?", "<think>Lesion mean HU is 20 below the liver.</think>\nhypodense"),
    # no turns, multiple choice: lettered options one per line, the answer's letter after the conclusion
    ({"form": "multiple_choice", "options": ["isodense", "hypodense", "hyperdense"], "answer_index": 1},
     "What is the density?\nA. isodense\nB. hypodense\nC. hyperdense",
     "<think>Lesion mean HU is 20 below the liver.</think>\nhypodense\nAnswer: B. hypodense"),
    # no rationale: the conclusion alone
    ({"think": ""}, "What is the density?", "hypodense"),
    # typed two-turn record: its stored turns as they are (rendered once, by the generator)
    ({"form": "multiple_choice", "options": ["yes", "no"], "answer_index": 0,
      "turns": [Turn(role="user", kind="question", content="Lesion?\nA. yes\nB. no"),
                Turn(role="assistant", kind="answer", content="yes")]},
     "Lesion?\nA. yes\nB. no", "yes"),
])
def test_two_turn_conversations(fields, user, assistant):
    turns = conversation(record(**fields))
    assert [(t["role"], t["content"]) for t in turns] == [("user", user), ("assistant", assistant)]


def test_focus_record_keeps_its_four_turns_with_organ_box_and_crop():
    turns = conversation(record(task="cot_report", subtask="organ_report", turns=focus_turns()))
    assert [t["kind"] for t in turns] == ["question", "first_pass", "attend", "final"]
    attend = turns[2]
    assert attend["role"] == "user" and attend["focus_organ"] == "liver" and attend["crop_ref"] == "crop:liver"
    assert attend["roi_box"] == LIVER_BOX and attend["content"] == "Attend to the liver."
    assert "focus_organ" not in turns[0] and "roi_box" not in turns[1]


def test_chat_items_carry_turn_metadata_and_one_image_token():
    rec = record(task="cot_report", subtask="organ_report", roi_box=LIVER_BOX, turns=focus_turns())
    llava = llava_item(rec, "/ct/c-1.nii.gz")
    assert [t["from"] for t in llava["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert llava["conversations"][0]["value"].startswith("<image>\n")
    assert sum(t["value"].count("<image>") for t in llava["conversations"]) == 1
    assert llava["conversations"][2]["crop_ref"] == "crop:liver" and llava["roi"] == LIVER_BOX
    assert llava["focus"] == [{"turn": 2, "kind": "attend", "focus_organ": "liver", "roi_box": LIVER_BOX,
                               "crop_ref": "crop:liver"}]
    share = sharegpt_item(rec, "/ct/c-1.nii.gz")
    assert share["images"] == ["/ct/c-1.nii.gz"] and share["messages"][0]["content"].startswith("<image>")
    assert share["messages"][2]["roi_box"] == LIVER_BOX and share["meta"]["case_id"] == "c-1"


def test_turns_that_do_not_alternate_are_refused():
    bad = record(turns=[Turn(role="user", kind="question", content="q"), Turn(role="user", kind="attend", content="a")])
    with pytest.raises(ExportError, match="r-1"):
        llava_item(bad, "/ct.nii.gz")


# ---- answer-position stats --------------------------------------------------------------------

def test_answer_position_balance_per_option_count():
    recs = [record(record_id=f"r-{i}", form="multiple_choice", options=["a", "b", "c", "d"], answer_index=i % 4)
            for i in range(10)]                                 # positions 0..3: 3, 3, 2, 2
    recs += [record(record_id=f"y-{i}", subtask="presence", form="multiple_choice", options=["Yes", "No"],
                    answer_index=0, negative=i == 0) for i in range(2)]
    recs += [record(record_id="x", form="multiple_choice", options=["a", "b"], answer_index=5)]  # out of range
    stats = dataset_stats(to_table(CoTRecord, recs))
    four, two = stats["answer_positions"]["4"], stats["answer_positions"]["2"]
    assert four == {"records": 10, "counts": [3, 3, 2, 2], "unplaced": 0, "max_relative_deviation": 0.2}
    assert two == {"records": 3, "counts": [2, 0], "unplaced": 1, "max_relative_deviation": 1.0}
    assert stats["negatives"] == {"records": 1, "eligible": 2, "subtasks": ["presence", "count", "organ_report"],
                                  "share": 0.5}
    assert stats["by_task_subtask"] == {"lesion_attribute": {"density": 11, "presence": 2}}


def test_stats_of_an_empty_table():
    stats = dataset_stats(pa.Table.from_pylist([], schema=to_table(CoTRecord, []).schema))
    assert stats["records"] == 0 and stats["negatives"]["share"] is None and stats["families"] == []


# ---- ROI crops on real CT ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def liver(shared_data):
    """(CT, liver voxel bounds) of the TotalSegmentator example (3 mm, direction diag(-1, -1, 1))."""
    ts = shared_data / "totalseg"
    ct = sitk.ReadImage(str(ts / "example_ct_sm.nii.gz"))
    seg = sitk.ReadImage(str(ts / "example_seg.nii.gz"))
    k, j, i = np.nonzero(sitk.GetArrayViewFromImage(seg) == 5)
    return ct, (int(i.min()), int(j.min()), int(k.min())), (int(i.max()), int(j.max()), int(k.max()))


def physical_bounds(image: sitk.Image) -> np.ndarray:
    corners = [image.TransformIndexToPhysicalPoint([0, 0, 0]),
               image.TransformIndexToPhysicalPoint([s - 1 for s in image.GetSize()])]
    return np.sort(np.asarray(corners), axis=0)


@pytest.mark.parametrize("transform", [
    lambda im: im,                                       # as stored: x and y run against LPS
    lambda im: sitk.Flip(im, [True, False, False]),      # x now runs with LPS
    lambda im: sitk.Flip(im, [True, True, True]),        # every axis flipped, z against LPS
    lambda im: sitk.PermuteAxes(im, [2, 0, 1]),          # voxel axes reordered (k, i, j)
], ids=["stored", "flip-x", "flip-xyz", "permuted"])
def test_crop_to_box_on_real_ct_recovers_the_organ_extent(liver, transform):
    ct, vmin, vmax = liver
    box = make_box(ct, vmin, vmax).normalized        # the liver's box, as records store it (4 decimals)
    reference = ct[vmin[0]:vmax[0] + 1, vmin[1]:vmax[1] + 1, vmin[2]:vmax[2] + 1]
    image = transform(ct)
    crop = crop_to_box(image, box)
    assert sorted(crop.GetSize()) == sorted(reference.GetSize())
    assert np.allclose(physical_bounds(crop), physical_bounds(reference), atol=1e-3)
    assert np.array_equal(canonical_array(crop), canonical_array(reference))
    assert crop.GetDirection() == image.GetDirection() and crop.GetSpacing() == image.GetSpacing()


def test_known_box_maps_to_expected_index_range(liver):
    ct, _, _ = liver                                     # size (122, 101, 30); x and y flipped
    start, size = box_to_index_range(ct, [0.0, 0.0, 0.5, 0.25, 0.5, 1.0])
    # x 0..0.25 (patient right) of 122 voxels on a flipped axis: the last 30.5 -> 31 voxels
    assert start == [122 - 31, 101 - 51, 15] and size == [31, 51, 15]


def test_canonical_array_orders_axes_z_y_x_from_inferior_anterior_right(liver):
    ct, _, _ = liver
    array = canonical_array(ct)
    assert array.shape == (30, 101, 122)
    stored = sitk.GetArrayViewFromImage(ct)              # [k, j, i], i and j against LPS
    assert np.array_equal(array, stored[:, ::-1, ::-1])


@pytest.mark.parametrize("box", [[0.1, 0.2], [0.5, 0.0, 0.0, 0.4, 1.0, 1.0], [0, 0, 0, 1, 1, float("nan")]])
def test_bad_boxes_raise(liver, box):
    with pytest.raises(GeometryError):
        crop_to_box(liver[0], box)
