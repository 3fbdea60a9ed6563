"""``tumorcot report``: the QC report, one self-contained HTML file with its plots embedded."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2

from tumorcot.errors import ReviewError
from tumorcot.review import plots
from tumorcot.review.qc import qc_figures
from tumorcot.review.slices import data_uri
from tumorcot.store.atomic import atomic_write_bytes


def write_report(dataset_dir: Path, out: Path) -> dict:
    """Write the report to ``out``; returns the figures' numbers (``qc_figures``)."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "manifest.json").exists():
        raise ReviewError(f"{dataset_dir} is not a tumorcot dataset (no manifest.json)")
    q = qc_figures(dataset_dir)
    figures = {
        "family_mix": plots.family_mix(q["family_mix"]),
        "lesion_size": plots.lesion_size(q["lesions"]),
        "attenuation": plots.attenuation(q["lesions"], q["contrast_phase"]),
        "answer_positions": plots.answer_positions(q["answer_positions"]),
        "splits": plots.splits(q["splits"]),
        "rejections": plots.rejections(q["rejections"]),
        "review": plots.review_rates(q["review"]["rates"] if q["review"] else None),
    }
    text = (resources.files("tumorcot.review") / "templates" / "report.html.j2").read_text()
    template = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(text)
    page = template.render(q=q, figures={k: data_uri(v) for k, v in figures.items()})
    atomic_write_bytes(Path(out), page.encode())
    return {**q, "figures": sorted(figures)}
