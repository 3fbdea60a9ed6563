"""Review pack, verdict ingest, quarantine, QC report and leakage, through the CLI, on a dataset
built from phantom cases plus a real CT (TotalSegmentator example), in headless Chromium
(Debian's /usr/bin/chromium driven by Playwright, started here)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
from PIL import Image
from scipy.stats import binomtest
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases
from tumorcot.privacy import assign_split, pseudonymise

SALT = "review-test-salt"
CHROMIUM = Path("/usr/bin/chromium")
runner = CliRunner()


# ---- fixtures -------------------------------------------------------------------------------------

def add_rows(manifest: Path, rows: list[dict]) -> Path:
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, existing = reader.fieldnames, list(reader)
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in existing + rows:
            writer.writerow({k: row.get(k, "") for k in fields})
    return manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory, shared_data, prefect_server):
    """(dataset folder, case manifest): four phantom cases and one real CT with its organ masks."""
    root = tmp_path_factory.mktemp("review")
    manifest = write_phantom_cases(root / "cases", 4, seed=5, scale=4)
    ts = shared_data / "totalseg"
    add_rows(manifest, [{"patient_id": "REALPAT-77", "study_id": "REALSTUDY-1", "ct": ts / "example_ct_sm.nii.gz",
                         "organ_mask": ts / "example_seg.nii.gz", "source": "TotalSegmentator example"}])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUMORCOT_SALT", SALT)
        summary = run_build(manifest, root / "ds")
    assert summary["failed"] == 0 and summary["ok"] == 5
    return root / "ds", manifest


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} missing (apt-get install -y chromium; .ci/run does it)"
        if os.environ.get("TUMORCOT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def copy_dataset(ds: Path, dest: Path) -> Path:
    """The dataset and its private state folder (``DIR.private`` beside it)."""
    shutil.copytree(ds, dest)
    shutil.copytree(ds.with_name(ds.name + ".private"), dest.with_name(dest.name + ".private"))
    return dest


def records_of(ds: Path) -> list[dict]:
    """Every record, read independently of tumorcot (pyarrow over the Parquet files)."""
    return pads.dataset(ds / "data", format="parquet").to_table().to_pylist()


def raw_ids(manifest: Path) -> set[str]:
    with open(manifest, newline="") as fh:
        return {r[k] for r in csv.DictReader(fh) for k in ("patient_id", "study_id")}


def verdict_file(path: Path, verdicts: list[dict]) -> Path:
    path.write_text(json.dumps({"format": "tumorcot-review/1", "verdicts": verdicts}))
    return path


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})   # long lines unwrapped


def said(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def rgb_of(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def has_colour(pixels: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> bool:
    return bool((np.abs(pixels - np.array(rgb)).max(axis=2) <= tol).any())


CONTOUR, BOX = (255, 64, 64), (255, 220, 0)   # tumorcot.render.overlay colours


# ---- review pack in the browser -----------------------------------------------------------------------

def test_pack_opens_from_file_renders_every_view_and_round_trips_verdicts(built, browser, tmp_path):
    ds, manifest = built
    out = tmp_path / "pack.html"
    result = cli("review", "pack", ds, out, "--sample", "12", "--stratify", "source,task", "--seed", "3")
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert not any(raw in html for raw in raw_ids(manifest))            # pseudonymous ids only
    assert all(u.startswith("data:image/png") for u in re.findall(r'(?:src|href)="([^"]*)"', html))
    assert "<script src" not in html and "<link" not in html

    page = browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 900})
    requests, errors = [], []
    page.on("request", lambda req: requests.append(req.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto(out.as_uri())
    sections = page.locator("section.record")
    assert sections.count() == 12
    real_views = 0
    for i in range(12):
        section = sections.nth(i)
        images = section.locator("img")
        assert images.count() == 3                                        # axial, coronal, sagittal
        assert [images.nth(k).get_attribute("data-plane") for k in range(3)] == ["axial", "coronal", "sagittal"]
        captions = section.locator("figcaption").all_inner_texts()
        shots = []
        for k in range(3):
            img = images.nth(k)
            img.scroll_into_view_if_needed()
            assert img.evaluate("e => e.complete && e.naturalWidth > 0 && e.naturalHeight > 0")
            pixels = rgb_of(img.screenshot())                               # what the browser painted
            assert pixels.std() > 5 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10   # not blank
            assert has_colour(pixels, BOX), f"no ROI box in {captions[k]}"
            shots.append(pixels)
        if "no mask to outline" not in captions[0]:
            assert any(has_colour(p, CONTOUR) for p in shots), f"no contour in record {i}"
        if "synthetic CT" not in section.locator(".meta").first.inner_text():
            real_views += 1
    assert real_views >= 1                                                # the real CT is in the pack
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests   # no network

    ids = [sections.nth(i).get_attribute("data-record-id") for i in range(3)]
    page.fill("#reviewer", "rad-a")
    first, second, third = (sections.nth(i) for i in range(3))
    first.locator(".record-verdict input[value=wrong]").check()
    first.locator(".record-verdict input[type=text]").fill("size does not match the image")
    second.locator(".record-verdict input[value=correct]").check()
    second.locator("tr[data-step='0'] input[value=wrong]").check()
    second.locator("tr[data-step='0'] input[type=text]").fill("wrong organ")
    third.locator(".record-verdict input[value=unsure]").check()
    page.reload()                                                         # kept in localStorage
    assert page.input_value("#reviewer") == "rad-a"
    assert sections.nth(0).locator(".record-verdict input[value=wrong]").is_checked()
    assert "3 of 12 records judged" in page.inner_text("#progress")
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert not errors, errors
    page.close()

    got = {v["record_id"]: (v["reviewer"], v["verdict"], v["reason"], [(s["index"], s["verdict"], s["reason"])
                                                                        for s in v["steps"]])
           for v in exported["verdicts"]}
    assert got == {ids[0]: ("rad-a", "wrong", "size does not match the image", []),
                   ids[1]: ("rad-a", "correct", "", [(0, "wrong", "wrong organ")]),
                   ids[2]: ("rad-a", "unsure", "", [])}
    file = tmp_path / "verdicts.json"
    file.write_text(json.dumps(exported))
    target = copy_dataset(ds, tmp_path / "ds")
    result = cli("review", "ingest", target, file, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ingested"] == 3 and report["problems"] == []
    overall = report["rates"]["overall"]
    assert (overall["correct"], overall["wrong"], overall["unsure"]) == (1, 1, 1)
    stored = json.loads((target / "review" / "verdicts.json").read_text())["verdicts"]
    assert sorted(v["record_id"] for v in stored) == sorted(ids)
    assert cli("validate", target).exit_code == 0


def test_pack_stratified_by_task_and_organ_covers_every_task(built, tmp_path):
    ds, _ = built
    out = tmp_path / "pack.html"
    tasks = {r["task"] for r in records_of(ds)}
    result = cli("review", "pack", ds, out, "--sample", "30", "--stratify", "task,organ", "--seed", "0")
    assert result.exit_code == 0, result.output
    html = out.read_text()
    shown = re.findall(r'<h2>\d+\. (\w+) / ', html)
    assert len(shown) == 30 and set(shown) == tasks
    # a lesion's axial view is the slice its diameters were measured on (facts read independently)
    facts = {r["case_id"]: json.loads(r["facts_json"])
             for r in pads.dataset(ds / "facts", format="parquet").to_table().to_pylist()}
    by_id = {r["record_id"]: r for r in records_of(ds)}
    checked = 0
    for section in html.split('<section class="record"')[1:]:
        record = by_id[re.search(r'data-record-id="([^"]+)"', section).group(1)]
        if record["lesion_id"]:
            lesion = next(x for x in facts[record["case_id"]]["lesions"] if x["id"] == record["lesion_id"])
            assert f"axial slice k={lesion['axial_slice']} (measured)" in section
            checked += 1
    assert checked > 0


def test_pack_errors_are_clear(built, tmp_path):
    ds, _ = built
    result = cli("review", "pack", tmp_path, tmp_path / "p.html")
    assert result.exit_code == 1 and "not a tumorcot dataset" in said(result)
    result = cli("review", "pack", ds, tmp_path / "p.html", "--stratify", "task,colour")
    assert result.exit_code != 0 and "colour" in said(result)


# ---- ingest: rates on a known verdict set ------------------------------------------------------------

def test_ingest_reports_rates_with_wilson_intervals_and_kappa(built, tmp_path):
    ds, _ = built
    target = copy_dataset(ds, tmp_path / "ds")
    rows = records_of(ds)
    loc = [r for r in rows if r["task"] == "localization"][:6]
    att = [r for r in rows if r["task"] == "lesion_attribute"][:4]
    rep = [r for r in rows if r["task"] == "cot_report" and len(r["steps"]) >= 3][:2]
    a = ["correct", "wrong", "correct", "correct", "unsure", "wrong"] + ["wrong", "correct", "correct", "correct"]
    b = ["correct", "correct", "correct", "wrong", "unsure"]              # reviewer b on the first five
    verdicts = [{"record_id": r["record_id"], "reviewer": "rad-a", "verdict": v} for r, v in zip(loc + att, a)]
    verdicts += [{"record_id": r["record_id"], "reviewer": "rad-b", "verdict": v} for r, v in zip(loc, b)]
    verdicts += [{"record_id": r["record_id"], "reviewer": "rad-a", "verdict": "correct",
                  "steps": [{"index": 0, "verdict": "correct"}, {"index": 1, "verdict": "wrong", "reason": "x"},
                            {"index": 2, "verdict": "correct"}]} for r in rep]
    verdicts.append({"record_id": "r-not-in-the-dataset", "reviewer": "rad-a", "verdict": "wrong"})
    result = cli("review", "ingest", target, verdict_file(tmp_path / "v.json", verdicts), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["ingested"] == len(verdicts) - 1
    assert len(out["problems"]) == 1 and "r-not-in-the-dataset" in out["problems"][0]
    rates = out["rates"]

    # by hand: a record is wrong if any reviewer said wrong, correct if one said correct and none wrong
    merged_loc = ["correct", "wrong", "correct", "wrong", "unsure", "wrong"]
    merged_att = ["wrong", "correct", "correct", "correct"]
    expected = {"localization": (merged_loc.count("wrong"), merged_loc.count("correct")),
                "lesion_attribute": (merged_att.count("wrong"), merged_att.count("correct")),
                "cot_report": (0, 2)}
    by_task = {r["group"]: r for r in rates["by_task"]}
    assert set(by_task) == set(expected)
    for task, (wrong, correct) in expected.items():
        row = by_task[task]
        assert (row["wrong"], row["correct"]) == (wrong, correct)
        assert row["error_rate"] == pytest.approx(wrong / (wrong + correct))
        ci = binomtest(wrong, wrong + correct).proportion_ci(method="wilson")
        assert row["ci95"] == pytest.approx([ci.low, ci.high])
    stages = {r["group"]: (r["wrong"], r["correct"]) for r in rates["by_stage"]}
    expected_stages = Counter()
    for r in rep:
        for i, verdict in enumerate(["correct", "wrong", "correct"]):
            expected_stages[(r["steps"][i]["stage"], verdict)] += 1
    assert stages == {s: (expected_stages[(s, "wrong")], expected_stages[(s, "correct")])
                      for s in {s for s, _ in expected_stages}}
    organs = Counter((r["organ"] or "(none)") for r in loc + att + rep)
    assert {g["group"]: g["judged"] for g in rates["by_organ"]} == dict(organs)
    # Cohen's kappa from the 5 x 2 table: po = 3/5; pe = sum over categories of the product of shares
    pa, pb = Counter(a[:5]), Counter(b)
    po = sum(x == y for x, y in zip(a[:5], b)) / 5
    pe = sum(pa[c] * pb[c] for c in ("correct", "wrong", "unsure")) / 25
    [pair] = rates["agreement"]
    assert pair["reviewers"] == ["rad-a", "rad-b"] and pair["records"] == 5
    assert pair["kappa"] == pytest.approx((po - pe) / (1 - pe))

    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["review"]["verdicts"] == len(verdicts) - 1
    assert manifest["review"]["reviewers"] == ["rad-a", "rad-b"]
    assert cli("validate", target).exit_code == 0
    audit = cli("audit", target)
    assert audit.exit_code == 0 and "Cohen's kappa" in said(audit) and "localization" in said(audit)
    # a later file replaces a reviewer's verdict on the same record, keeps the others
    again = cli("review", "ingest", target, verdict_file(tmp_path / "v2.json", [
        {"record_id": loc[1]["record_id"], "reviewer": "rad-a", "verdict": "correct"}]), "--json")
    assert again.exit_code == 0
    assert json.loads((target / "manifest.json").read_text())["review"]["verdicts"] == len(verdicts) - 1


def test_ingest_refuses_bad_files_and_leaves_the_dataset_alone(built, tmp_path):
    ds, _ = built
    target = copy_dataset(ds, tmp_path / "ds")
    before = (target / "manifest.json").read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = cli("review", "ingest", target, bad)
    assert result.exit_code == 1 and "bad.json" in said(result) and "not valid JSON" in said(result)
    result = cli("review", "ingest", target, verdict_file(tmp_path / "unknown.json", [
        {"record_id": "r-nope", "reviewer": "x", "verdict": "wrong"}]))
    assert result.exit_code == 1 and "judges a record" in said(result)
    result = cli("review", "ingest", target, verdict_file(tmp_path / "badverdict.json", [
        {"record_id": "r-nope", "reviewer": "x", "verdict": "maybe"}]))
    assert result.exit_code == 1 and "verdict" in said(result)
    assert (target / "manifest.json").read_bytes() == before
    assert not (target / "review").exists()


def test_tampered_verdict_file_fails_validation(built, tmp_path):
    ds, _ = built
    target = copy_dataset(ds, tmp_path / "ds")
    rid = records_of(ds)[0]["record_id"]
    assert cli("review", "ingest", target, verdict_file(tmp_path / "v.json", [
        {"record_id": rid, "reviewer": "a", "verdict": "correct"}])).exit_code == 0
    path = target / "review" / "verdicts.json"
    path.write_text(path.read_text().replace('"correct"', '"wrong"'))
    result = cli("validate", target)
    assert result.exit_code == 1 and "review/verdicts.json" in said(result)


# ---- quarantine ----------------------------------------------------------------------------------------

def quarantine_set(rows: list[dict]) -> tuple[list[dict], set[str]]:
    """Verdicts judging two records wrong, one record wrong at a step only, one correct; the
    three condemned ids. Picked from three different cases."""
    by_case: dict[str, list[dict]] = {}
    for r in rows:
        by_case.setdefault(r["case_id"], []).append(r)
    cases = sorted(by_case)
    wrong1, wrong2 = by_case[cases[0]][0], by_case[cases[1]][1]
    stepped = next(r for r in by_case[cases[2]] if r["steps"])
    fine = by_case[cases[0]][2]
    verdicts = [
        {"record_id": wrong1["record_id"], "reviewer": "rad-a", "verdict": "wrong", "reason": "box misses the organ"},
        {"record_id": wrong2["record_id"], "reviewer": "rad-b", "verdict": "wrong", "reason": "not hypodense"},
        {"record_id": stepped["record_id"], "reviewer": "rad-a", "verdict": "unsure",
         "steps": [{"index": 0, "verdict": "wrong", "reason": "volume implausible"}]},
        {"record_id": fine["record_id"], "reviewer": "rad-a", "verdict": "correct"},
    ]
    return verdicts, {wrong1["record_id"], wrong2["record_id"], stepped["record_id"]}


def log_rows(ds: Path) -> list[dict]:
    return pads.dataset(ds / "logs", format="parquet").to_table().to_pylist()


def every_record(ds: Path, manifest: Path, target: Path, monkeypatch) -> Path:
    """A copy of the dataset publishing every record (``--mix off`` rewrites the shards only). Under
    a family mix a quarantine also re-chooses its split's records, so the exact effect shows here."""
    copy_dataset(ds, target)
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    assert run_build(manifest, target, options={"family_mix": None})["unchanged"] == 5
    return target


def test_quarantine_removes_exactly_the_judged_records_and_builds_keep_them_out(built, tmp_path, monkeypatch):
    ds, manifest = built
    target = every_record(ds, manifest, tmp_path / "ds", monkeypatch)
    before = records_of(target)
    verdicts, condemned = quarantine_set(before)
    result = cli("review", "ingest", target, verdict_file(tmp_path / "v.json", verdicts), "--quarantine")
    assert result.exit_code == 0, result.output
    after = records_of(target)
    assert {r["record_id"] for r in after} == {r["record_id"] for r in before} - condemned
    assert len(after) == len(before) - 3
    assert cli("validate", target).exit_code == 0
    review_rows = [r for r in log_rows(target) if r["agent"] == "review"]
    assert {r["record_id"] for r in review_rows} == condemned
    reasons = " ".join(x for r in review_rows for x in r["reasons"])
    assert all(why in reasons for why in ("box misses the organ", "not hypodense", "volume implausible"))
    audit = cli("audit", target)
    assert audit.exit_code == 0 and "quarantine" in said(audit) and "box misses the organ" in said(audit)
    run = json.loads(next((target / "runs").glob("review-*.json")).read_text())
    assert run["kind"] == "quarantine" and run["assembly"] == "incremental" and run["rejected"] == 3

    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    for force in (False, True):          # unchanged rebuild, then every case regenerated
        summary = run_build(manifest, target, force=force)
        assert summary["failed"] == 0
        assert {r["record_id"] for r in records_of(target)} == {r["record_id"] for r in before} - condemned
    assert json.loads((target / "manifest.json").read_text())["review"]["quarantined"] == 3


def test_quarantine_by_case_removes_the_cases_and_builds_report_them(built, tmp_path, monkeypatch):
    ds, manifest = built
    target = every_record(ds, manifest, tmp_path / "ds", monkeypatch)
    before = records_of(target)
    verdicts, condemned = quarantine_set(before)
    cases = {r["case_id"] for r in before if r["record_id"] in condemned}
    result = cli("review", "ingest", target, verdict_file(tmp_path / "v.json", verdicts), "--quarantine",
                 "--scope", "case")
    assert result.exit_code == 0, result.output
    expected = {r["record_id"] for r in before if r["case_id"] not in cases}
    assert {r["record_id"] for r in records_of(target)} == expected
    assert cli("validate", target).exit_code == 0
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    summary = run_build(manifest, target)
    failed = {o["case_id"]: o["error_type"] for o in summary["outcomes"] if o["status"] == "failed"}
    assert failed == {c: "QuarantinedByReview" for c in cases}
    assert {r["record_id"] for r in records_of(target)} == expected


# ---- QC report -----------------------------------------------------------------------------------------

def test_report_renders_its_plots_in_the_browser(built, browser, tmp_path):
    ds, _ = built
    target = copy_dataset(ds, tmp_path / "ds")
    rows = records_of(target)
    cli("review", "ingest", target, verdict_file(tmp_path / "v.json", [
        {"record_id": r["record_id"], "reviewer": "rad-a", "verdict": "wrong" if i % 3 == 0 else "correct"}
        for i, r in enumerate(rows[:9])]))
    out = tmp_path / "report.html"
    result = cli("report", target, out)
    assert result.exit_code == 0, result.output
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(out.as_uri())
    images = page.locator("img")
    assert images.count() == 7
    for k in range(7):
        img = images.nth(k)
        img.scroll_into_view_if_needed()
        assert img.evaluate("e => e.complete && e.naturalWidth > 100")
        pixels = rgb_of(img.screenshot())
        assert (pixels.std() > 10), img.get_attribute("alt")
    text = page.inner_text("body")
    page.close()
    counts, total = Counter(r["task"] for r in rows), len(rows)
    for task, n in counts.items():
        assert f"{task}\t{n}\t{100 * n / total:.1f} %" in text
    assert "No CT content (image_sha256) and no patient appears in two splits." in text
    assert "9 record(s) and 0 step(s) judged by rad-a; error rate 33.3 %" in text


# ---- leakage -------------------------------------------------------------------------------------------

def test_same_ct_under_two_patients_in_two_splits_fails_validation(shared_data, tmp_path, monkeypatch, prefect_server):
    monkeypatch.setenv("TUMORCOT_SALT", SALT)
    splits = {}
    for i in range(100):                       # two patient ids that the salted hash puts in different splits
        name = f"DUP-{i}"
        splits.setdefault(assign_split(pseudonymise(name, SALT.encode())), name)
        if {"train", "test"} <= set(splits):
            break
    ts = shared_data / "totalseg"
    manifest = tmp_path / "cases.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["patient_id", "study_id", "ct", "organ_mask"])
        for split in ("train", "test"):
            writer.writerow([splits[split], "1", ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz"])
    built = cli("build", "--manifest", manifest, "--out", tmp_path / "ds")
    assert built.exit_code == 0, built.output
    result = cli("validate", tmp_path / "ds")
    assert result.exit_code == 1
    assert "same CT content" in said(result) and "train" in said(result) and "test" in said(result)
    report = cli("report", tmp_path / "ds", tmp_path / "r.html")
    assert report.exit_code == 1 and "same CT content" in said(report)
    assert "same CT content" in (tmp_path / "r.html").read_text()
