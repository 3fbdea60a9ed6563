"""CLI commands for operating a dataset: ``serve``, ``regenerate``, ``audit`` (added to the app)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from tumorcot.errors import TumorcotError

TASK_RUNNER_HELP = "'threads' (this machine) or 'dask' (prefect-dask; a local cluster or --dask-address)."


def register(app: typer.Typer, console: Console, quiet_prefect) -> None:
    @app.command()
    def serve(
        manifest: Path = typer.Option(..., "--manifest", "-m", help="Case manifest to build from."),
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder, updated incrementally at each run."),
        cron: str = typer.Option("0 2 * * *", help="Cron schedule of the builds."),
        interval: float = typer.Option(None, min=1.0, help="Build every this many seconds instead of --cron."),
        name: str = typer.Option("tumorcot-scheduled", help="Deployment name."),
        generator: str = typer.Option(None, help="'offline' or 'llm'. Default: the dataset's own (else offline)."),
        task_runner: str = typer.Option("threads", help=TASK_RUNNER_HELP),
        dask_address: str = typer.Option(None, help="Dask scheduler address (tcp://host:8786)."),
        concurrency: int = typer.Option(2, help="Cases processed at once (threads or local Dask workers)."),
    ):
        """Serve a scheduled build deployment (Prefect flow.serve); blocks until interrupted.

        Needs a Prefect server with a scheduler: the one at PREFECT_API_URL, one running on
        127.0.0.1:$TUMORCOT_PREFECT_PORT (4200), or else one it starts there (and stops on exit).
        Every run builds with the generator and options stored with the dataset."""
        from tumorcot.flows.settings import resolve_settings
        from tumorcot.ops.preflight import build_problems
        from tumorcot.ops.serve import serve as run_serve

        quiet_prefect()
        settings = resolve_settings(out, generator)
        check = build_problems(manifest, out, generator=settings.generator, task_runner=task_runner,
                               dask_address=dask_address, segmentation=settings.segmentation)
        for problem in [*check.row_problems, *check.errors]:
            console.print(f"[red]error[/red] {escape(problem)}", soft_wrap=True)
        if check.errors:
            raise typer.Exit(1)
        every = f"every {interval:g} s" if interval else f"on '{cron}'"
        console.print(f"serving {name}: build {escape(str(out))} from {escape(str(manifest))} {every} "
                      f"(generator {settings.generator}, the dataset's stored options)", soft_wrap=True)
        try:
            run_serve(manifest, out, cron, interval_s=interval, name=name, generator=generator,
                      task_runner=task_runner, concurrency=concurrency, dask_address=dask_address,
                      say=lambda text: console.print(escape(text), soft_wrap=True))
        except TumorcotError as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1)

    batch = typer.Typer(help="Batch mode for --generator llm: requests as OpenAI Batch API / vllm run-batch "
                             "JSONL, in rounds (prepare -> run the file -> ingest, until prepare writes 0).",
                        no_args_is_help=True)
    app.add_typer(batch, name="batch")

    @batch.command("prepare")
    def batch_prepare(
        manifest: Path = typer.Option(..., "--manifest", "-m", help="Case manifest (as for tumorcot build)."),
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (its llm-cache holds the answers)."),
        requests: Path = typer.Option(..., "--requests", "-r", help="Batch input JSONL to write."),
    ):
        """Write the next round of LLM requests that the cache cannot answer yet (needs TUMORCOT_MODEL)."""
        from rich.progress import Progress

        from tumorcot.ops.llm_batch import prepare_round

        total = sum(1 for line in open(manifest) if line.strip()) - (0 if str(manifest).endswith(".jsonl") else 1)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("cases", total=max(total, 0))
            try:
                summary = prepare_round(manifest, out, requests, progress=lambda: bar.advance(task))
            except TumorcotError as exc:
                console.print(f"[red]error[/red] {escape(str(exc))}")
                raise typer.Exit(1)
        for problem in summary["failed"]:
            console.print(f"[red]failed[/red] {escape(problem)}")
        if summary["requests"]:
            console.print(f"wrote {summary['requests']} request(s) to {escape(str(requests))}: "
                          f"{summary['pending']} case(s) waiting, {summary['ready']} ready. Run the file "
                          f"(vllm run-batch -i {escape(str(requests))} -o results.jsonl, or the OpenAI Batch API), "
                          f"then: tumorcot batch ingest --out {escape(str(out))} --results results.jsonl")
        else:
            console.print(f"no request left: {summary['ready']} case(s) answerable from the cache. Now run: "
                          f"tumorcot build --manifest {escape(str(manifest))} --out {escape(str(out))} --generator llm")

    @batch.command("ingest")
    def batch_ingest(
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder the requests were prepared for."),
        results: Path = typer.Option(..., "--results", help="Batch output JSONL (custom_id, response, error)."),
        requests: Path = typer.Option(None, "--requests", "-r", help="The input file, to check every custom_id."),
    ):
        """Store a batch results file's successful answers in the dataset's LLM response cache."""
        from tumorcot.ops.llm_batch import ingest_round

        summary = ingest_round(out, results, requests)
        for reason in summary["reasons"][:20]:
            console.print(f"[yellow]skipped[/yellow] {escape(reason)}")
        console.print(f"stored {summary['stored']} answer(s); {summary['failed']} failed line(s), "
                      f"{summary['skipped']} already cached")
        if summary["failed"] and not summary["stored"]:
            raise typer.Exit(1)

    @app.command()
    def regenerate(
        dataset: Path = typer.Option(..., "--dataset", "-d", help="Dataset folder."),
        patient: str = typer.Option(..., "--patient", "-p", help="Raw patient id, as in the case manifest."),
        reason: str = typer.Option("", help="Why; kept in the generation log and the run record."),
        wait: float = typer.Option(0.0, help="Seconds to wait for another writer to finish (default: fail)."),
    ):
        """Re-run one patient's cases bypassing caches and swap its records in atomically."""
        from tumorcot.ops.regenerate import regenerate as run_regenerate

        quiet_prefect()
        try:
            summary = run_regenerate(dataset, patient, reason, wait_s=wait)
        except TumorcotError as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(1)
        console.print(f"regenerated patient {summary['patient_pseudo_id']}: {summary['ok']} case(s), "
                      f"dataset now {summary['records']} records (run {summary['run_id']}, "
                      f"{summary['assembly']} update)")

    @app.command()
    def publish(
        dataset: Path = typer.Argument(..., help="Dataset folder to upload (everything in it, nothing else)."),
        repo_id: str = typer.Option(..., "--repo-id", help="Hugging Face dataset repo, e.g. my-org/my-tumorcot."),
        private: bool = typer.Option(False, "--private", help="Create the repo private."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Scan and list the files; upload nothing."),
        manifest: Path = typer.Option(None, "--manifest", "-m", help="Also check the raw ids of this case manifest."),
    ):
        """Upload a dataset to the Hugging Face Hub after scanning every file for raw ids, input paths,
        report text, DICOM identifying tags and key-like strings; nothing is uploaded if any is found.

        Exit codes: 0 uploaded (or, with --dry-run, safe to upload); 1 not a dataset, something
        private found, or the upload failed."""
        from tumorcot.ops.publish import KEY_PATTERNS, scan_dataset, upload

        try:
            scan = scan_dataset(dataset, manifest)
        except TumorcotError as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1)
        for note in scan.notes:
            console.print(f"[yellow]note[/yellow] {escape(note)}", soft_wrap=True)
        for finding in scan.findings:
            console.print(f"[red]private[/red] {escape(finding)}", soft_wrap=True)
        if scan.findings:
            console.print(f"[red]not published[/red]: {len(scan.findings)} finding(s) in {escape(str(dataset))}; "
                          "move private state out of the dataset folder (tumorcot keeps it in DIR.private)")
            raise typer.Exit(1)
        size = sum((dataset / f).stat().st_size for f in scan.files)
        if dry_run:
            for f in scan.files:
                typer.echo(f"would upload {f}")
        console.print(f"{len(scan.files)} files, {size / 1e6:.1f} MB, checked against {scan.needles} private "
                      f"values and {len(KEY_PATTERNS)} key patterns: nothing private found")
        if dry_run:
            console.print(f"dry run: nothing uploaded to {escape(repo_id)}")
            return
        try:
            url = upload(dataset, repo_id, scan.files, private=private)
        except Exception as exc:  # network, auth: one line, not a traceback
            console.print(f"[red]upload failed[/red] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1)
        console.print(f"uploaded {len(scan.files)} files to {escape(repo_id)}: {escape(url)}")

    @app.command()
    def audit(
        dataset: Path = typer.Argument(..., help="Dataset folder."),
        record: str = typer.Option(None, "--record", help="Show the full lineage of this record id."),
        failures: bool = typer.Option(False, "--failures", help="Show failed cases and failed agent turns."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ):
        """Per-run generation statistics, a record's lineage, or the failures of a dataset."""
        from tumorcot.ops import audit as data
        from tumorcot.ops import audit_tables as view
        from tumorcot.store.shards import read_manifest

        try:
            read_manifest(dataset)   # NotADatasetError for a folder without a dataset
            if record:
                report, show = data.record_lineage(dataset, record), view.print_lineage
            elif failures:
                report, show = data.failures_report(dataset), view.print_failures
            else:
                report, show = data.run_report(dataset), view.print_runs
        except (TumorcotError, FileNotFoundError) as exc:
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(1)
        if as_json:
            typer.echo(json.dumps(report, indent=1, default=str))
        else:
            show(console, report)
