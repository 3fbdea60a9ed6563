"""CLI command ``tumorcot ingest LAYOUT ROOT -o cases.csv`` (added to the app)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tumorcot.errors import TumorcotError

LAYOUT_HELP = ("atlas: ROOT/<case>/ct.nii.gz + segmentations/<structure>.nii.gz (AbdomenAtlas); "
               "totalseg: the same layout (TotalSegmentator dataset / output folders); "
               "nnunet: ROOT/dataset.json + imagesTr/ + labelsTr/ (MSD, KiTS, FLARE; v1 or v2 labels).")


def register(app: typer.Typer, console: Console) -> None:
    @app.command()
    def ingest(
        layout: str = typer.Argument(..., help=LAYOUT_HELP),
        root: Path = typer.Argument(..., help="The collection's root folder."),
        out: Path = typer.Option(..., "--out", "-o", help="Case manifest (CSV) to write."),
        report_csv: Path = typer.Option(None, help="CSV with a case column (case, case_id, patient_id or id) "
                                        "and 'report': joined by case name."),
        pathology_csv: Path = typer.Option(None, help="CSV with a case column and 'pathology' or any of "
                                           "diagnosis, histology, behavior, organ, T, N, M."),
        lesion_provenance: str = typer.Option("annotated", help="'annotated' (human masks) or 'model-predicted' "
                                              "(e.g. a folder of TotalSegmentator output)."),
    ):
        """Write a case manifest for a public CT collection: one row per case, masks wired, lesion
        kinds and annotated organs from the structure names (tumorcot/data/structures.json).
        Exit 1 when a structure name is unknown (listed; such a case fails at build time)."""
        from tumorcot.ingest import LAYOUTS, ingest as run_ingest

        if layout not in LAYOUTS:
            raise typer.BadParameter(f"layout must be one of {', '.join(LAYOUTS)}", param_hint="LAYOUT")
        if lesion_provenance not in ("annotated", "model-predicted"):
            raise typer.BadParameter("'annotated' or 'model-predicted'", param_hint="--lesion-provenance")
        for option, path in (("--report-csv", report_csv), ("--pathology-csv", pathology_csv)):
            if path is not None and not path.is_file():
                raise typer.BadParameter(f"{path} is not a file", param_hint=option)
        try:
            summary = run_ingest(layout, root, out, report_csv=report_csv, pathology_csv=pathology_csv,
                                 lesion_provenance=lesion_provenance)
        except (TumorcotError, OSError) as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        table = Table(title=f"{summary.cases} case(s) -> {escape(str(out))}")
        table.add_column("structure")
        table.add_column("cases", justify="right")
        table.add_column("meaning")
        for name, count in sorted(summary.structures.items()):
            table.add_row(escape(name), str(count), _meaning(name))
        console.print(table)
        if summary.unmatched_reports:
            console.print(f"[yellow]{len(summary.unmatched_reports)} report/pathology row(s) match no case[/yellow]")
        if summary.unknown:
            for name, cases in sorted(summary.unknown.items()):
                console.print(f"[red]unknown structure[/red] {escape(name)} in {len(cases)} case(s), e.g. "
                              f"{escape(cases[0])}: add it to tumorcot/data/structures.json or rename the file")
            raise typer.Exit(1)


def _meaning(name: str) -> str:
    from tumorcot.imaging.structures import resolve

    try:
        s = resolve(name)
    except KeyError:
        return "[red]unknown[/red]"
    if s.role == "lesion":
        return f"lesion ({s.kind})" + (f" of {', '.join(s.organs)}" if s.organs else "")
    if s.role == "organ":
        return "organ " + " + ".join(s.organs)
    return f"not used: {s.reason}"
