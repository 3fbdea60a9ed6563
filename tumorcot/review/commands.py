"""CLI commands ``tumorcot review pack|ingest`` and ``tumorcot report`` (added to the app)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from tumorcot.errors import TumorcotError


def register(app: typer.Typer, console: Console) -> None:
    review = typer.Typer(help="Clinician review: a static HTML pack of sampled records, then their verdicts "
                              "back into the dataset (error rates, agreement, quarantine).", no_args_is_help=True)
    app.add_typer(review, name="review")

    @review.command("ingest")
    def review_ingest(
        dataset: Path = typer.Argument(..., help="Dataset folder the pack was made from."),
        verdicts: list[Path] = typer.Argument(..., help="Verdict file(s) exported from review packs (JSON)."),
        quarantine: bool = typer.Option(False, "--quarantine", help="Remove records judged wrong (by any "
                                        "reviewer, record or step) through an incremental shard update; later "
                                        "builds keep them out. The reasons go to the log and `tumorcot audit`."),
        scope: str = typer.Option("record", help="With --quarantine: 'record' (only the judged records) or 'case' "
                                  "(every record of their cases)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ):
        """Store verdicts with the dataset and report error rates (Wilson 95 % intervals) per task, organ
        and step stage, and Cohen's kappa between reviewers who judged the same records."""
        from tumorcot.review.ingest import ingest
        from tumorcot.review.tables import print_review

        if scope not in ("record", "case"):
            raise typer.BadParameter("--scope must be 'record' or 'case'")
        try:
            result = ingest(dataset, verdicts, quarantine=quarantine, scope=scope)
        except TumorcotError as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(1)
        if as_json:
            typer.echo(json.dumps(result, indent=1))
            return
        for problem in result["problems"]:
            console.print(f"[yellow]skipped[/yellow] {escape(problem)}")
        console.print(f"stored {result['ingested']} verdict(s) in {escape(str(dataset))}/{result['stored']['path']} "
                      f"({result['stored']['verdicts']} in total)")
        run = result["quarantine"]
        print_review(console, {"rates": result["rates"], "quarantine": run["quarantine"] if run else []})
        if run:
            console.print(f"quarantine run {run['run_id']}: {run['rejected']} record(s) removed, dataset now "
                          f"{run['records']} records ({run['assembly']} update)")
        elif quarantine:
            console.print("nothing to quarantine: no record in the dataset is judged wrong")

    @review.command("pack")
    def review_pack(
        dataset: Path = typer.Argument(..., help="Dataset folder."),
        out: Path = typer.Argument(..., help="HTML file to write (self-contained: open it from disk)."),
        sample: int = typer.Option(30, "--sample", "-n", min=1, help="Records in the pack."),
        stratify: str = typer.Option("task,organ", help="Columns whose combinations are sampled evenly "
                                     "(task, subtask, organ, split, form, negative, generator, source, synthetic)."),
        seed: int = typer.Option(0, help="Sampling seed (same seed, same pack)."),
    ):
        """Write a static HTML review pack: per sampled record three CT views with contour and ROI box,
        question, answer, steps with their facts and KG nodes, and verdict controls (exported as JSON)."""
        from rich.progress import Progress

        from tumorcot.review.pack import make_pack
        from tumorcot.review.sample import parse_stratify

        try:
            columns = parse_stratify(stratify)
        except TumorcotError as exc:
            raise typer.BadParameter(str(exc)) from None
        if not (dataset / "manifest.json").exists():
            console.print(f"[red]error[/red] {escape(str(dataset))} is not a tumorcot dataset (no manifest.json)")
            raise typer.Exit(1)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("rendering records", total=sample)
            try:
                result = make_pack(dataset, out, sample=sample, stratify=columns, seed=seed,
                                   progress=lambda: bar.advance(task))
            except TumorcotError as exc:
                console.print(f"[red]error[/red] {escape(str(exc))}")
                raise typer.Exit(1)
        for problem in result["problems"]:
            console.print(f"[yellow]warning[/yellow] {escape(problem)}")
        console.print(f"wrote {escape(result['path'])}: {result['records']} record(s) from {result['cases']} case(s), "
                      f"pack {result['id']}. Open it in a browser, judge, export, then: "
                      f"tumorcot review ingest {escape(str(dataset))} verdicts-{result['id']}-REVIEWER.json")

    @app.command("report")
    def report(
        dataset: Path = typer.Argument(..., help="Dataset folder."),
        out: Path = typer.Argument(..., help="HTML file to write (plots embedded)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report's numbers as JSON (instead of the summary)."),
    ):
        """QC report: family mix vs TumorCoT's, lesion size/volume per organ, attenuation and contrast phase,
        answer positions, splits, rejections by reason, review error rates, and a leakage audit
        (exit 1 when a CT or a patient is in two splits)."""
        from tumorcot.review.report import write_report

        try:
            q = write_report(dataset, out)
        except TumorcotError as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(1)
        if as_json:
            typer.echo(json.dumps({k: v for k, v in q.items() if k != "lesions"}, indent=1))
            raise typer.Exit(1 if q["leakage"] else 0)
        mix = ", ".join(f"{r['group']} {100 * r['share']:.0f} %" for r in q["family_mix"])
        console.print(f"wrote {escape(str(out))}: {q['records']} records, {q['cases']} cases, "
                      f"{len(q['lesions'])} lesions; family mix {mix}")
        for line in q["leakage"]:
            console.print(f"[red]error[/red] {escape(line)}")
        if q["leakage"]:
            raise typer.Exit(1)
