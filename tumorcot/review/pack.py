"""``tumorcot review pack``: a sample of records as one self-contained static HTML page.

Everything is inside the file: slices as PNG data URIs, style and script inline, a
Content-Security-Policy that forbids any network access; it opens from ``file://``. Per record:
the three views (``slices``), question, options, answer, every step with its cited fact values
and KG nodes (label and the sources cited by the node's edges), and verdict controls per record
and per step. Only pseudonymous ids appear; no DICOM header is read into the page.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import jinja2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from markupsafe import Markup

from tumorcot.errors import ReviewError
from tumorcot.exports.images import CaseImages
from tumorcot.knowledge_graph import load_kg
from tumorcot.review.sample import stratified_sample
from tumorcot.review.slices import data_uri, load_case_volumes, record_views
from tumorcot.schemas import CaseFacts, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.schemas.review import VERDICT_FORMAT
from tumorcot.store.atomic import atomic_write_bytes
from tumorcot.store.shards import read_manifest, scan_records

JUDGEMENTS = ("correct", "wrong", "unsure")


def case_facts(dataset_dir: Path, case_ids: set[str]) -> dict[str, CaseFacts]:
    manifest = read_manifest(dataset_dir)
    out = {}
    for entry in manifest["files"]:
        if entry["kind"] == "facts":
            table = pq.read_table(dataset_dir / entry["path"])
            table = table.filter(pc.is_in(table["case_id"], value_set=pa.array(sorted(case_ids))))
            for row in table.to_pylist():
                out[row["case_id"]] = CaseFacts.model_validate_json(row["facts_json"])
    return out


def node_view(kg, node_id: str, cited: set[str]) -> dict:
    """Label and sources of a KG node: the sources of its edges to the other nodes the record
    cites (why it is in this chain), else of all its edges."""
    if node_id not in kg:
        return {"id": node_id, "label": "(not in the current knowledge graph)", "sources": []}
    edges = list(kg.graph.in_edges(node_id, data=True)) + list(kg.graph.out_edges(node_id, data=True))
    linked = {d["ref"] for u, v, d in edges if (v if u == node_id else u) in cited}
    refs = sorted(linked or {d["ref"] for _, _, d in edges})
    return {"id": node_id, "label": kg.label(node_id),
            "sources": [{"ref": r, "text": kg.data["sources"][r]} for r in refs]}


def step_views(record: dict, facts: CaseFacts, kg) -> list[dict]:
    table = facts.fact_table()
    cited = {n for s in record["steps"] for n in s["kg_node_ids"]}
    steps = []
    for s in record["steps"]:
        found = [table.get(fid) for fid in s["fact_ids"]]
        steps.append({**s, "facts": [{"id": fid, "value": f.value if f else "(not in the facts)",
                                      "unit": f.unit if f else None} for fid, f in zip(s["fact_ids"], found)],
                      "nodes": [node_view(kg, n, cited - {n}) for n in s["kg_node_ids"]]})
    return steps


def _template() -> tuple[jinja2.Template, str]:
    folder = resources.files("tumorcot.review") / "templates"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string((folder / "pack.html.j2").read_text()), (folder / "pack.js").read_text()


def _script_json(obj) -> Markup:
    """JSON safe inside a ``<script>`` element."""
    return Markup(json.dumps(obj).replace("</", "<\\/"))


def make_pack(dataset_dir: Path, out: Path, *, sample: int, stratify: tuple[str, ...], seed: int,
              progress=None) -> dict:
    """Write the pack to ``out``; returns ``{"id", "records", "cases", "problems"}``."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "manifest.json").exists():
        raise ReviewError(f"{dataset_dir} is not a tumorcot dataset (no manifest.json)")
    keys = scan_records(dataset_dir, ["record_id", *sorted(set(stratify))]).to_pylist()
    chosen = [r["record_id"] for r in stratified_sample(keys, sample, stratify, seed)]
    columns = arrow_schema(CoTRecord).names
    picked = scan_records(dataset_dir, columns, filter=pc.field("record_id").isin(chosen))
    rows = {r["record_id"]: r for r in picked.to_pylist()}
    records = [rows[rid] for rid in chosen]
    facts = case_facts(dataset_dir, {r["case_id"] for r in records})
    kg, images, problems = load_kg(), CaseImages(dataset_dir), []
    views: dict[str, list[dict]] = {}
    for case_id in sorted({r["case_id"] for r in records}):   # one case's volumes in memory at a time
        try:
            volumes = load_case_volumes(images, case_id)
        except ReviewError as exc:
            problems.append(str(exc))
            volumes = None
        for r in (r for r in records if r["case_id"] == case_id):
            views[r["record_id"]] = [] if volumes is None else [
                {**v, "uri": data_uri(v.pop("png"))} for v in record_views(volumes, r, facts[case_id])]
            if progress is not None:
                progress()
    manifest = read_manifest(dataset_dir)
    pack_id = "pack-" + hashlib.sha256(json.dumps([manifest["run_id"], chosen, seed]).encode()).hexdigest()[:12]
    meta = {"format": VERDICT_FORMAT, "id": pack_id, "dataset_run": manifest["run_id"], "seed": seed,
            "stratify": list(stratify), "records": chosen}
    template, script = _template()
    page = template.render(
        pack=meta, judgements=JUDGEMENTS, meta_json=_script_json(meta), script=Markup(script),
        records=[{**r, "views": views[r["record_id"]], "steps": step_views(r, facts[r["case_id"]], kg),
                  "image_problem": "the case's CT could not be read (see the pack command's output)"}
                 for r in records])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, page.encode())
    return {"id": pack_id, "records": len(records), "cases": len({r["case_id"] for r in records}),
            "problems": problems, "path": str(out)}
