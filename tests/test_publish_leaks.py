"""Nothing private reaches the published folder: a case whose CT is a DICOM series with its
identifying tags set to markers, whose report names people, built by the LLM engine (the
extractor quotes the report back), then exported, audited and published (dry run); every file
of the dataset, the export and the audit output is searched for every marker. A planted leak
makes ``publish`` refuse."""

from __future__ import annotations

import csv
import json
import shutil
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk
from llm_fixtures import SECRET
from llm_oracle import Oracle
from llm_server import ScriptedLLMServer
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.knowledge_graph import load_kg
from tumorcot.pipeline import extract_facts
from tumorcot.schemas import CaseInput

runner = CliRunner()
SALT = "leak-test-salt"
PATIENT_ID, STUDY_ID = "MRN-LEAK-98765", "ACC-LEAK-4321"
PERSON, DOCTOR = "Ophelia Marchbanks", "Zebulon Quackenbush"
DICOM_TAGS = {"0010|0010": "Leakington^Griselda", "0010|0020": "DCMPID-55501", "0010|0030": "19470304",
              "0008|0080": "Saint Marker Hospital", "0008|0090": "Refdoc^Wilhelmina", "0008|0050": "ACCNUM-7781"}
REPORT = (f"Patient {PERSON}, referred by Dr. {DOCTOR}. Liver: hypodense lesion in the right lobe, "
          f"about two centimetres.\nImpression: indeterminate lesion; discussed with {DOCTOR} by phone.")
MARKERS = [PATIENT_ID, STUDY_ID, PERSON, DOCTOR, "Marchbanks", "Quackenbush", "Leakington", "Griselda",
           "DCMPID-55501", "Saint Marker Hospital", "Wilhelmina", "ACCNUM-7781", SECRET,
           "referred by Dr.", "discussed with"]


def write_dicom_series(image: sitk.Image, folder: Path) -> Path:
    """``image`` as a CT DICOM series (one file per slice) with ``DICOM_TAGS`` set."""
    folder.mkdir(parents=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    uid = "1.2.826.0.1.3680043.2.1125.777"
    for z in range(image.GetDepth()):
        slice_ = image[:, :, z]
        for tag, value in {**DICOM_TAGS, "0008|0060": "CT", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
                           "0020|000d": uid + ".1", "0020|000e": uid + ".2", "0020|0013": str(z + 1),
                           "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, z)))),
                           "0020|0037": "1\\0\\0\\0\\1\\0", "0018|0050": str(image.GetSpacing()[2])}.items():
            slice_.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"IM{z:04d}.dcm"))
        writer.Execute(slice_)
    return folder


def searchable(path: Path) -> str:
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        text += json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
    return text


@pytest.fixture(scope="module")
def leaky_build(tmp_path_factory, prefect_server):
    from tumorcot.imaging.phantom import write_phantom_cases

    root = tmp_path_factory.mktemp("leak")
    manifest = write_phantom_cases(root / "phantom", 1, seed=2, scale=4)
    row = next(csv.DictReader(open(manifest)))
    ct = write_dicom_series(sitk.ReadImage(str(manifest.parent / row["ct"])), root / "series-001")
    rows = [{"patient_id": PATIENT_ID, "study_id": STUDY_ID, "ct": str(ct),
             "organ_mask": str(manifest.parent / row["organ_mask"]),
             "lesion_mask": str(manifest.parent / row["lesion_mask"]), "lesion_labels": "1:tumor",
             "report": REPORT, "source": "synthetic-phantom"}]
    cases = root / "cases.csv"
    with open(cases, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    case = CaseInput(row=1, **{k: v for k, v in rows[0].items()})
    facts = extract_facts(case, SALT.encode())

    def tamper(agent, answer, n):   # a model that quotes the report back
        if agent == "extractor":
            answer = dict(answer, diagnosis=f"per {DOCTOR}: lesion in {PERSON}")
        return answer

    mp = pytest.MonkeyPatch()
    with ScriptedLLMServer(Oracle({facts.case_id: facts}, load_kg(), tamper=tamper)) as srv:
        mp.setenv("TUMORCOT_SALT", SALT)
        mp.setenv("OPENAI_BASE_URL", srv.base_url)
        mp.setenv("OPENAI_API_KEY", SECRET)
        mp.setenv("TUMORCOT_MODEL", "scripted-model")
        result = runner.invoke(app, ["build", "-m", str(cases), "-o", str(root / "ds"), "--generator", "llm"])
        extractor_calls = sum(1 for r in srv.requests if "ReportExtraction" in json.dumps(r.body))
    yield root, result, extractor_calls
    mp.undo()


def test_no_marker_in_any_published_file_export_or_audit(leaky_build, monkeypatch):
    root, result, extractor_calls = leaky_build
    assert result.exit_code == 0, result.output
    assert extractor_calls >= 1   # the report really went to the LLM (and came back quoted)
    ds = root / "ds"
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    exported = runner.invoke(app, ["export", str(ds), str(root / "export.jsonl"), "-f", "llava"])
    assert exported.exit_code == 0, exported.output
    audit = runner.invoke(app, ["audit", str(ds), "--json"])
    assert audit.exit_code == 0, audit.output
    published = runner.invoke(app, ["publish", str(ds), "--repo-id", "someone/tumorcot-leak-test", "--dry-run"])
    assert published.exit_code == 0, published.output
    listed = [line.split(" ", 2)[2] for line in published.output.splitlines() if line.startswith("would upload")]
    files = sorted(str(p.relative_to(ds)) for p in ds.rglob("*") if p.is_file())
    assert listed == files and any(f.startswith("logs/") for f in files)
    texts = {str(p): searchable(p) for p in ds.rglob("*") if p.is_file()}
    texts["export"] = searchable(root / "export.jsonl")
    texts["audit"], texts["publish output"] = audit.output, published.output
    leaks = [(where, marker) for where, text in texts.items() for marker in MARKERS if marker in text]
    assert leaks == []
    # the private state folder has what was kept out, owner-only
    private = root / "ds.private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert any(PERSON in p.read_text() for p in private.glob("cases/*/input.json"))


def test_publish_refuses_a_dataset_with_planted_leaks(leaky_build, tmp_path):
    root, _, _ = leaky_build
    ds = tmp_path / "ds"
    shutil.copytree(root / "ds", ds)
    shutil.copytree(root / "ds.private", tmp_path / "ds.private")
    (ds / "notes.txt").write_text(f"patient {PATIENT_ID}: discussed with {DOCTOR} by phone. Saint Marker Hospital")
    (ds / "config.json").write_text(json.dumps({"token": "sk-" + "a1B2" * 8}))
    (ds / "extra").mkdir()
    (ds / "extra" / "input.json").write_text("{}")
    shutil.copy(next((root / "series-001").iterdir()), ds / "slice.bin")
    result = runner.invoke(app, ["publish", str(ds), "--repo-id", "someone/x", "--dry-run"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    for expected in ("notes.txt: raw patient id", "notes.txt: report text", "notes.txt: DICOM InstitutionName",
                     "config.json: OpenAI-style API key", "extra/input.json: a private file", "slice.bin: a DICOM file",
                     "not published"):
        assert expected in out, result.output


def test_demo_dataset_publishes_only_safe_files(tmp_path, prefect_server):
    """``tumorcot demo`` keeps its inputs (raw ids) beside the dataset, so the dataset folder as
    made publishes as is: the dry run lists only dataset files and finds nothing private."""
    out = tmp_path / "demo-out"
    built = CliRunner().invoke(app, ["demo", "--out", str(out), "--cases", "2"])
    assert built.exit_code == 0, built.output
    assert (tmp_path / "demo-out.inputs" / "manifest.csv").exists() and not (out / "cases").exists()
    result = CliRunner().invoke(app, ["publish", str(out), "--repo-id", "org/demo", "--dry-run"])
    assert result.exit_code == 0, result.output
    listed = {line.split("would upload ", 1)[1].strip() for line in result.output.splitlines()
              if line.startswith("would upload ")}
    published = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert listed == published and listed
    assert not any(name.startswith((".", "cases")) or "private" in name for name in listed)
    assert "nothing private found" in " ".join(result.output.split())
