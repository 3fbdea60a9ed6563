"""Rich tables of review results, for ``review ingest`` and ``tumorcot audit``."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def rates_table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("group", "judged", "correct", "wrong", "unsure", "error rate", "95 % CI (Wilson)"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for r in rows:
        ci = "-" if r["ci95"] is None else f"{_pct(r['ci95'][0])} - {_pct(r['ci95'][1])}"
        table.add_row(escape(r["group"]), str(r["judged"]), str(r["correct"]), str(r["wrong"]), str(r["unsure"]),
                      _pct(r["error_rate"]), ci)
    return table


def print_review(console: Console, summary: dict) -> None:
    """``summary``: ``{"rates": review_rates(...), "quarantine": [...]}``."""
    rates = summary["rates"]
    console.print(f"review: {rates['records_judged']} record(s) and {rates['steps_judged']} step(s) judged by "
                  f"{len(rates['reviewers'])} reviewer(s) ({escape(', '.join(rates['reviewers']))}); error rate = "
                  "wrong / (correct + wrong), a record is wrong when any reviewer judged it wrong")
    console.print(rates_table("review error rate, all records", [rates["overall"]]))
    for key, title in (("by_task", "per task"), ("by_organ", "per organ"), ("by_stage", "per step stage")):
        if rates[key]:
            console.print(rates_table(f"review error rate {title}", rates[key]))
    for a in rates["agreement"]:
        kappa = "undefined (one category only)" if a["kappa"] is None else f"{a['kappa']:.3f}"
        console.print(f"agreement {escape(' vs '.join(a['reviewers']))}: {a['records']} shared record(s), "
                      f"{_pct(a['agreement'])} identical, Cohen's kappa {kappa}")
    for q in summary.get("quarantine", []):
        what = f"record {q['record_id']}" if q["scope"] == "record" else f"case {q['case_id']}"
        console.print(f"quarantined {what} ({q['run_id']}): {escape('; '.join(q['reasons']))}")
