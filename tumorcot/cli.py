"""The ``tumorcot`` command line."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tumorcot.exports.commands import load_stats, print_stats_table, register as register_export_commands
from tumorcot.ingest.commands import register as register_ingest_commands
from tumorcot.ops.commands import register as register_ops_commands
from tumorcot.review.commands import register as register_review_commands

app = typer.Typer(help="Build traceable findings -> impression -> pathology CoT VQA datasets from CT.",
                  no_args_is_help=True, add_completion=False)
console = Console()


@app.callback()
def main(state_dir: Path = typer.Option(
        None, "--state-dir", envvar="TUMORCOT_STATE_DIR", show_envvar=True,
        help="The dataset's private state folder (salt, raw ids, input paths, full prompts, LLM cache, "
             "per-case results, lock). Default: DIR.private beside the dataset folder DIR; never inside it.")):
    """Build traceable findings -> impression -> pathology CoT VQA datasets from CT."""
    _quiet_prefect()   # before anything imports prefect (its logging reads the level at import)
    if state_dir is not None:
        os.environ["TUMORCOT_STATE_DIR"] = str(state_dir.expanduser().resolve())


class CaseProgress:
    """A progress bar over cases, fed by the build flow as each case finishes."""

    def __init__(self):
        self.bar = Progress(TextColumn("[bold]cases"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console)
        self.task = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("cases", total=total, last="")

    def advance(self, outcome) -> None:
        self.bar.update(self.task, advance=1, last=f"{outcome.case_label}: {outcome.status}")

    def stop(self) -> None:
        self.bar.stop()


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")   # local Dask clusters: no INFO chatter
    from tumorcot.ops.preflight import startup_timeout   # Prefect's own 20 s fails on a loaded machine

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(startup_timeout()))


EXIT_ERROR = 1          # nothing was built: bad manifest, paths or options, no Prefect API, dataset locked
EXIT_CASES_FAILED = 3   # the dataset was written, but some cases failed (see the summary); --allow-failures: 0
STORED = " Default: the value the dataset was built with (stored in its manifest.json), else "

SPLITS_OPTION = typer.Option(None, help="Patient shares of train,validation,test (salted hash of the pseudonymous "
                             "patient id; one patient never spans splits)." + STORED + "0.8,0.1,0.1.")
NEGATIVE_OPTION = typer.Option(None, min=0.0, max=0.95, help="Target share of negative records (organs without "
                               "lesions) among presence, count and organ-report records." + STORED + "0.5.")
MC_OPTION = typer.Option(None, min=0.0, max=1.0, help="Share of closed-answer questions asked as multiple choice."
                         + STORED + "0.5.")
INTERLEAVE_OPTION = typer.Option(None, "--interleave/--no-interleave", help="Give organ-level reasoning records "
                                 "the 'attend to <organ>' turn structure (first pass, organ ROI, re-reasoning)."
                                 + STORED + "on.")

MIX_OPTION = typer.Option(None, "--mix", help="Target family mix of every split: 'tumorcot' (TumorCoT's "
                          "published attributes=60,report=19,localization=11,tnm=10), group=share pairs of those "
                          "four groups, or 'off' (publish every record). Each split keeps its records in these "
                          "proportions, scaled to its scarcest group (one with less than half of what the "
                          "others allow keeps all it has instead); organ boxes are capped at 4 per case. "
                          "Applied when shards are written: a change rewrites shards only."
                          + STORED + "tumorcot.")


def _options(splits: str | None, negative_share: float | None, mc_share: float | None,
             interleave: bool | None, mix: str | None = None) -> dict:
    """The generation options given on the command line (the others come from the dataset)."""
    from tumorcot.errors import ManifestError
    from tumorcot.schemas import GenerationOptions

    given = {"negative_share": negative_share, "mc_share": mc_share, "interleave": interleave}
    if splits is not None:
        try:
            given["split_ratios"] = GenerationOptions.parse_ratios(splits)
        except ManifestError as exc:
            raise typer.BadParameter(str(exc)) from None
    given = {k: v for k, v in given.items() if v is not None}
    if mix is not None:
        try:
            given["family_mix"] = GenerationOptions.parse_mix(mix)
        except ManifestError as exc:
            raise typer.BadParameter(str(exc)) from None
    return given


def _segmentation(backend: str | None, device: str, fast: bool | None, subtasks: str | None, gpus: int) -> dict:
    """The segmentation settings given (device and GPU slots always: they do not change the masks)."""
    from pydantic import ValidationError

    from tumorcot.flows.segment import SegmentationPlan

    given = {"backend": backend, "device": device, "fast": fast, "gpus": gpus,
             "subtasks": None if subtasks is None else tuple(s.strip() for s in subtasks.split(",") if s.strip())}
    given = {k: v for k, v in given.items() if v is not None}
    try:
        SegmentationPlan(**given)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None
    return given


def _fail(message: str, code: int = EXIT_ERROR):
    console.print(f"[red]error[/red] {escape(message)}", soft_wrap=True)   # one line per problem
    raise typer.Exit(code)


def _build(manifest: Path, out: Path, concurrency: int, force: bool, *, generator: str | None = None,
           task_runner: str = "threads", dask_address: str | None = None, options: dict | None = None,
           segmentation: dict | None = None, llm_concurrency: int = 16, allow_removal: bool = False) -> dict:
    """Check everything that can be checked, start (or reach) Prefect, then run the build."""
    _quiet_prefect()
    from tumorcot.errors import TumorcotError
    from tumorcot.flows.settings import resolve_settings
    from tumorcot.ops.preflight import build_problems, prefect_api

    try:
        settings = resolve_settings(out, generator, options, segmentation)
    except ValueError as exc:   # pydantic: a stored value the new options make invalid
        _fail(f"options: {exc}")
    check = build_problems(manifest, out, generator=settings.generator, task_runner=task_runner,
                           dask_address=dask_address, segmentation=settings.segmentation,
                           allow_removal=allow_removal)
    for problem in check.row_problems:
        console.print(f"[yellow]row problem[/yellow] {escape(problem)}", soft_wrap=True)
    for problem in check.errors:
        console.print(f"[red]error[/red] {escape(problem)}", soft_wrap=True)
    if check.errors:
        raise typer.Exit(EXIT_ERROR)
    for warning in settings.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(warning)}", soft_wrap=True)
    from tumorcot.flows.build import run_build

    _warm_workers(settings, task_runner, concurrency, check.cases)
    progress = CaseProgress()
    try:
        started = time.perf_counter()
        prefect_api()
        api_s = time.perf_counter() - started   # the temporary server's start-up, shown in the summary
        summary = run_build(manifest, out, concurrency=concurrency, force=force, progress=progress,
                            generator=generator, task_runner=task_runner, dask_address=dask_address,
                            options=options, segmentation=segmentation, llm_concurrency=llm_concurrency,
                            allow_removal=allow_removal)
        return {**summary, "api_startup_s": round(api_s, 2)}
    except TumorcotError as exc:
        progress.stop()
        _fail(str(exc))
    finally:
        progress.stop()


def _warm_workers(settings, task_runner: str, concurrency: int, cases: int) -> None:
    """An LLM build with threads measures in worker processes (``flows/measure_pool.py``): start
    them now, so they import while Prefect starts."""
    from tumorcot.flows.measure_pool import measurement_processes, warm

    if settings.generator != "llm":
        return
    try:
        processes = measurement_processes(concurrency, settings.segmentation, cases)
    except ValueError as exc:
        _fail(str(exc))
    if processes and task_runner == "threads":
        warm(processes)


def _exit_for(summary: dict, allow_failures: bool) -> None:
    if summary["ok"] + summary["unchanged"] + summary.get("degraded", 0) + summary.get("missing", 0) == 0:
        raise typer.Exit(EXIT_ERROR if not summary["failed"] else EXIT_CASES_FAILED)
    problems = summary["failed"] + summary.get("missing", 0) + summary.get("degraded", 0)
    if problems and not allow_failures:
        console.print(f"[red]{problems} case(s) failed, missing or degraded[/red] (listed above); the dataset "
                      f"holds the others (a degraded case's records are those it could make; the next build "
                      f"retries it). Exit code {EXIT_CASES_FAILED}; --allow-failures accepts this.")
        raise typer.Exit(EXIT_CASES_FAILED)


def _print_summary(summary: dict) -> None:
    from tumorcot.store.shards import read_manifest, read_records

    out = Path(summary["dataset"])
    records = read_records(out).select(["task", "subtask", "split"]).to_pylist()
    table = Table(title=f"tumorcot dataset {out}  (run {summary['run_id']})")
    for col in ("task", "subtask", "train", "validation", "test", "total"):
        table.add_column(col, justify="right" if col not in ("task", "subtask") else "left")
    counts = Counter((r["task"], r["subtask"], r["split"]) for r in records)
    for task, subtask in sorted({(t, s) for t, s, _ in counts}):
        row = [counts[(task, subtask, sp)] for sp in ("train", "validation", "test")]
        table.add_row(task, subtask, *map(str, row), str(sum(row)))
    console.print(table)
    missing = f", missing {summary['missing']} (kept)" if summary.get("missing") else ""
    missing += f", degraded {summary['degraded']} (LLM stage incomplete)" if summary.get("degraded") else ""
    console.print(f"cases ok {summary['ok']}, unchanged {summary['unchanged']}, failed {summary['failed']}{missing}; "
                  f"{summary.get('measured', 0)} CTs measured (the others' facts reused); "
                  f"{summary['records']} records; {summary['rejected']} rejected by the calibrator")
    for o in summary["outcomes"]:
        if o["status"] in ("failed", "missing", "degraded"):
            console.print(f"[red]{o['status']}[/red] {escape(o['case_label'])} ({o['case_id'] or '-'}): "
                          f"{o['error_type']}: {escape(o['reason'] or '')}")
    _print_llm_stage(summary)
    manifest = read_manifest(out)
    shards = [f["path"] for f in manifest["files"] if f["kind"] == "records"]
    console.print(f"shards: {out / 'data'} ({len(shards)} files); manifest: {out / 'manifest.json'}")
    print_stats_table(console, load_stats(out))


def _print_llm_stage(summary: dict) -> None:
    """Start-up cost and, for --generator llm, what the LLM scheduler did."""
    if "startup_s" in summary:
        temporary = summary.get("prefect_server") != "configured"
        api = (f"Prefect API {summary.get('api_startup_s', 0.0):.1f} s ("
               + ("temporary server; set PREFECT_API_URL to reuse a running one" if temporary else "configured")
               + "), ")
        console.print(f"start-up: {api}flow engine {summary['startup_s']:.1f} s before the first case")
    llm = summary.get("llm")
    for stats in llm if isinstance(llm, list) else [llm] if llm else []:
        rate = stats["requests"] / stats["busy_s"] if stats["busy_s"] else 0.0
        console.print(f"LLM: {stats['requests']} requests ({stats['cached']} answered from the cache), "
                      f"{rate:.1f} requests/s; in flight mean {stats['mean_in_flight']:.1f}, max "
                      f"{stats['max_in_flight']} of {stats['ceiling']}; throttled (429) {stats['throttled']}x, "
                      f"limit down to {stats['min_limit']:g}; cache: {stats['cache_writes']} answers in "
                      f"{stats['cache_batches']} fsynced batches"
                      + (f"; measured and checked in {stats['worker_processes']} worker processes"
                         if stats.get("worker_processes") else ""))


@app.command()
def build(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Case manifest (CSV or JSONL): patient_id, study_id, ct, "
                                  "and optional organ_mask, lesion_mask, lesion_labels, report, pathology, source."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (created or updated incrementally)."),
    concurrency: int = typer.Option(2, help="Cases processed at once."),
    force: bool = typer.Option(False, help="Reprocess every case even when its inputs are unchanged."),
    allow_failures: bool = typer.Option(False, help=f"Exit 0 even when some cases failed or are missing "
                                        f"(default: exit {EXIT_CASES_FAILED})."),
    allow_removal: bool = typer.Option(False, help="Let this build remove the published cases its manifest no "
                                       "longer lists even when they are most of the dataset, and the cases whose "
                                       "input files are missing (default: refuse; keep them, reported missing)."),
    generator: str = typer.Option(None, help="'offline' (KG-grounded templates) or 'llm' (multi-agent engine on "
                                  "OPENAI_BASE_URL / OPENAI_API_KEY / TUMORCOT_MODEL)." + STORED + "offline."),
    llm_timeout: float = typer.Option(None, min=1, help="Seconds per LLM request before it counts as a fault "
                                      "(default 60; env TUMORCOT_LLM_TIMEOUT_S)."),
    llm_attempts: int = typer.Option(None, min=1, help="Attempts per LLM request over faults, HTTP errors, "
                                     "refusals and empty replies (default 5; env TUMORCOT_LLM_MAX_ATTEMPTS)."),
    llm_concurrency: int = typer.Option(16, min=1, help="LLM requests in flight at once for the whole build "
                                        "(one scheduler: every case's agents share this limit; it halves on HTTP "
                                        "429 and grows back). With a Dask cluster: per worker process."),
    task_runner: str = typer.Option("threads", help="'threads' or 'dask' (prefect-dask)."),
    dask_address: str = typer.Option(None, help="Dask scheduler (tcp://host:8786); default: a local cluster."),
    splits: str = SPLITS_OPTION,
    negative_share: float = NEGATIVE_OPTION,
    mc_share: float = MC_OPTION,
    interleave: bool = INTERLEAVE_OPTION,
    mix: str = MIX_OPTION,
    segmentation: str = typer.Option(None, help="'precomputed' (masks from the manifest) or "
                                     "'totalsegmentator' (run it, in its own process, for rows without organ_mask; "
                                     "executable $TUMORCOT_TOTALSEG_BIN, weights in $TOTALSEG_HOME_DIR)."
                                     + STORED + "precomputed."),
    seg_device: str = typer.Option("gpu", help="TotalSegmentator device: 'gpu' (one job per GPU, Prefect tag "
                                   "limit 'tumorcot-gpu') or 'cpu'."),
    seg_fast: bool = typer.Option(None, "--seg-fast/--no-seg-fast", help="TotalSegmentator --fast (3 mm model)."
                                  + STORED + "off."),
    seg_subtasks: str = typer.Option(None, help="Extra TotalSegmentator tasks, comma-separated: liver_segments "
                                     "(Couinaud segments instead of the geometric approximation); liver_vessels, "
                                     "lung_nodules, kidney_cysts (their tumour / nodule / cyst labels become "
                                     "model-predicted lesions for rows without a lesion_mask)." + STORED + "none."),
    gpus: int = typer.Option(1, min=1, help="Slots of the 'tumorcot-gpu' limit when the build creates it."),
):
    """Build a dataset: measure every case, generate KG-grounded records, write validated shards.

    Incremental: a case whose inputs, versions and options are unchanged is not reprocessed; a new
    KG, prompt or option regenerates records from the stored facts (no CT decoded); --splits only
    rewrites the shards. The manifest, paths and options are checked before anything starts (one
    line per problem). A rebuild keeps the generator and options the dataset was built with unless given here.

    Exit codes: 0 every case built; 1 nothing built (bad manifest, paths or options, no Prefect
    API, dataset locked, the manifest would remove most published cases); 2 bad command-line usage;
    3 the dataset was written but some cases failed, are missing their inputs (their published
    records are kept) or are degraded (their LLM stage did not complete: the next build retries
    exactly the missing work) (--allow-failures: 0)."""
    for variable, value in (("TUMORCOT_LLM_TIMEOUT_S", llm_timeout), ("TUMORCOT_LLM_MAX_ATTEMPTS", llm_attempts)):
        if value is not None:   # read by every process's LLM client (LLMConfig.from_env), Dask workers' too
            os.environ[variable] = str(value)
    summary = _build(manifest, out, concurrency, force, generator=generator, llm_concurrency=llm_concurrency,
                     task_runner=task_runner, dask_address=dask_address, allow_removal=allow_removal,
                     options=_options(splits, negative_share, mc_share, interleave, mix),
                     segmentation=_segmentation(segmentation, seg_device, seg_fast, seg_subtasks, gpus))
    _print_summary(summary)
    _exit_for(summary, allow_failures)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Dataset folder. The phantom cases (inputs, with "
                             "their raw ids) go beside it in OUT.inputs/, never inside: OUT is safe to publish."),
    cases: int = typer.Option(4, "--cases", "-n", min=1, help="Number of synthetic phantom cases."),
    seed: int = typer.Option(0, help="Phantom generator seed (same seed, same cases)."),
    splits: str = SPLITS_OPTION,
    negative_share: float = NEGATIVE_OPTION,
    mc_share: float = MC_OPTION,
    interleave: bool = INTERLEAVE_OPTION,
    mix: str = MIX_OPTION,
):
    """Generate synthetic abdominal phantom cases and build a dataset from them."""
    from tumorcot.imaging.phantom import write_phantom_cases

    options = _options(splits, negative_share, mc_share, interleave, mix)
    inputs = demo_inputs(out)
    console.print(f"writing {cases} synthetic phantom case(s) to {inputs} ...")
    manifest = write_phantom_cases(inputs, cases, seed=seed)
    summary = _build(manifest, out, concurrency=2, force=False, options=options)
    _print_summary(summary)
    _exit_for(summary, allow_failures=False)
    console.print(f"rebuild the same cases with: tumorcot build --manifest {manifest} --out {out}")


def demo_inputs(out: Path) -> Path:
    """Where ``demo`` writes its phantom inputs: ``OUT.inputs`` beside the dataset folder."""
    out = Path(out).absolute()
    return out.with_name(out.name + ".inputs")


@app.command()
def validate(dataset: Path = typer.Argument(..., help="Dataset folder written by tumorcot build/demo.")):
    """Re-check every shard's checksum, row count and schema, and every row; exit 1 on any problem."""
    from tumorcot.ops.validate import validate_dataset

    problems, counts = validate_dataset(dataset)
    for problem in problems:
        console.print(f"[red]invalid[/red] {escape(problem)}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]ok[/green] {dataset}: {counts['files']} files, {counts['records']} records, "
                  f"{counts['log']} log rows, {counts['facts']} cases")


register_ops_commands(app, console, _quiet_prefect)
register_export_commands(app, console)
register_ingest_commands(app, console)
register_review_commands(app, console)

if __name__ == "__main__":
    app()
