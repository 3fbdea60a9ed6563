"""CLI commands ``tumorcot export`` and ``tumorcot stats`` (added to the app), and the stats tables
the build summary prints."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tumorcot.errors import TumorcotError

EXPORT_HELP = "\n\n".join([
    "Export records as chat JSON / JSONL for training, with the path of each record's CT or with rendered "
    "images (--images slice|video|volume) that trainers load directly.",
    "--format llava: objects with id, image (the CT path), conversations (from human or gpt, "
    "value), roi, focus and meta. --format sharegpt: LLaMA-Factory's sharegpt layout with messages (role "
    "user or assistant, content) and images (the CT path); a folder OUT also gets the dataset_info.json "
    "that registers the files.",
    "--format swift: ms-swift's messages layout (role, content) with images / videos; turns keep roi_box, "
    "crop_ref and kind.",
    "--images chooses what each record points at: ct (default: the CT file or DICOM folder), slice (a windowed "
    "axial PNG of the key slice: a lesion's largest-diameter slice, an organ's central slice; window per organ "
    "(abdomen W400/L50, liver W150/L30, lung W1500/L-600, bone W1800/L400) stored in meta.media), video (8 "
    "windowed frames through the lesion, organ or CT, as a frame list in videos), volume (.npy float16 0..1, "
    "HU -1000..1000, resampled to 32x256x256 z, y, x, like M3D) or none (text only). In slice, video and volume "
    "modes every attend turn gets its crop file (its own token; crop_ref is the crop's path); --overlay draws "
    "the lesion / organ contour and box. Each CT is decoded once, in --workers processes; files that are "
    "already current are not rewritten. Media go to --media-dir (default OUT/media, or OUT_media beside a "
    ".json/.jsonl file) under pseudonymous names.",
    "OUT ending in .json or .jsonl is one file holding every selected split: .json a JSON array (the list "
    "LLaVA's training script loads), .jsonl one object per line. Any other OUT is a folder with one file per "
    "split: SPLIT.json arrays for llava, SPLIT.jsonl for sharegpt and swift. The first user turn starts with the <image> token; turns keep kind, "
    "focus_organ, roi_box and crop_ref where present. CT paths come from the dataset's private case rows "
    "(STATE/cases/CASE/input.json in the private state folder). Example: tumorcot export DIR out --format "
    "sharegpt --images slice --overlay",
])


class _ExportProgress:
    """A rich progress bar over images, then records, fed by ``export_chat``."""

    def __init__(self, console: Console):
        self.bar = Progress(TextColumn("[bold]{task.fields[what]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=True)
        self.task = None

    def start(self, total: int, what: str = "records") -> None:
        self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(what, total=total, what=what)

    def advance(self, n: int = 1) -> None:
        self.bar.update(self.task, advance=n)

    def stop(self) -> None:
        self.bar.stop()


def _pct(share) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def balance_table(stats: dict) -> Table:
    table = Table(title="multiple-choice answer positions")
    for col in ("options", "records", "per position (A, B, ...)", "max deviation"):
        table.add_column(col, justify="left" if col.startswith("per") else "right")
    for k, entry in stats["answer_positions"].items():
        table.add_row(k, str(entry["records"]), " / ".join(map(str, entry["counts"])),
                      _pct(entry["max_relative_deviation"]))
    return table


def print_stats_table(console: Console, stats: dict) -> None:
    """The short version, for the end of a build: shares, balance and patients in a few lines."""
    neg, syn, patients = stats["negatives"], stats["synthetic"], stats["patients"]
    console.print(f"negatives {neg['records']}/{neg['eligible']} ({_pct(neg['share'])}) of "
                  f"{', '.join(neg['subtasks'])}; synthetic {_pct(syn['share'])}; patients "
                  + ", ".join(f"{k} {v}" for k, v in patients.items())
                  + f"; families: {', '.join(stats['families']) or 'none'}")
    mix = stats.get("family_mix")
    if mix:
        target = mix.get("target") or {}
        console.print("family mix (achieved / target): " + ", ".join(
            f"{g} {_pct(mix['achieved'].get(g))} / {_pct(target.get(g)) if target else 'none'}" for g in mix["records"]))
        for split, entry in (mix.get("splits") or {}).items():
            console.print(f"  {split}: " + ", ".join(f"{g} {_pct(share)}" for g, share in entry["achieved"].items()))
    if stats["answer_positions"]:
        worst = max((e["max_relative_deviation"] or 0.0) for e in stats["answer_positions"].values())
        console.print(f"multiple-choice answer positions: max deviation from uniform {_pct(worst)} "
                      f"({', '.join(f'{k} options: ' + '/'.join(map(str, e['counts'])) for k, e in stats['answer_positions'].items())})")


def print_stats(console: Console, stats: dict) -> None:
    """Every table of ``tumorcot stats``."""
    splits = sorted(stats["by_split"])
    tasks = Table(title=f"records per task and split ({stats['records']} records)")
    for col in ("task", *splits, "total"):
        tasks.add_column(col, justify="left" if col == "task" else "right")
    for task, n in stats["by_task"].items():
        tasks.add_row(task, *[str(stats["by_task_split"][task].get(s, 0)) for s in splits], str(n))
    console.print(tasks)
    subtasks = Table(title="records per task and subtask")
    for col in ("task", "subtask", "records"):
        subtasks.add_column(col, justify="right" if col == "records" else "left")
    for task, subs in stats["by_task_subtask"].items():
        for sub, n in subs.items():
            subtasks.add_row(task, sub, str(n))
    console.print(subtasks)
    organs = Table(title="records per organ")
    organs.add_column("organ")
    organs.add_column("records", justify="right")
    for organ, n in stats["by_organ"].items():
        organs.add_row(organ, str(n))
    console.print(organs)
    per_split = Table(title="splits (by patient)")
    for col in ("split", "records", "patients"):
        per_split.add_column(col, justify="left" if col == "split" else "right")
    for split, n in stats["by_split"].items():
        per_split.add_row(split, str(n), str(stats["patients"].get(split, 0)))
    console.print(per_split)
    if stats["answer_positions"]:
        console.print(balance_table(stats))
    else:
        console.print("no multiple-choice records")
    print_stats_table(console, stats)


def load_stats(dataset: Path) -> dict:
    """``stats.json`` when it matches the manifest, else computed from the shards."""
    from tumorcot.store.stats import load_or_compute_stats

    return load_or_compute_stats(Path(dataset))[0]


def register(app: typer.Typer, console: Console) -> None:
    @app.command(help=EXPORT_HELP)
    def export(
        dataset: Path = typer.Argument(..., help="Dataset folder written by tumorcot build."),
        out: Path = typer.Argument(..., help="OUT.json (JSON array) or OUT.jsonl (one file), or a folder "
                                   "(one file per split)."),
        fmt: str = typer.Option(..., "--format", "-f", help="'llava', 'sharegpt' (LLaMA-Factory) or 'swift' (ms-swift)."),
        images: str = typer.Option("ct", "--images", help="ct, slice, video, volume or none (see above)."),
        overlay: bool = typer.Option(False, "--overlay", help="slice/video: draw the lesion or organ contour and box."),
        media_dir: Path = typer.Option(None, help="Folder for rendered media (default OUT/media or OUT_media)."),
        workers: int = typer.Option(None, min=1, help="Processes rendering media (default: one per CPU core)."),
        split: list[str] = typer.Option(None, "--split", "-s", help="Only this split (repeatable); default: all."),
        image_root: Path = typer.Option(None, help="Write CT paths relative to this folder (each CT must be under it)."),
        link_images: Path = typer.Option(None, help="Write CT paths as symlinks DIR/<case_id>.nii.gz made here: "
                                         "pseudonymous names, for CT paths that contain raw ids."),
        skip_missing: bool = typer.Option(False, help="Leave out records whose case row or CT file is missing "
                                          "(default: stop with an error naming the record)."),
    ):
        from tumorcot.exports.chat import FORMATS, export_chat
        from tumorcot.exports.media import MODES

        if fmt not in FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
        if images not in MODES:
            raise typer.BadParameter(f"--images must be one of {', '.join(MODES)}")
        bad = [s for s in split or [] if s not in ("train", "validation", "test")]
        if bad:
            raise typer.BadParameter(f"unknown split(s) {', '.join(bad)}: train, validation or test")
        if not (dataset / "manifest.json").exists():
            console.print(f"[red]error[/red] {escape(str(dataset))} is not a tumorcot dataset (no manifest.json)")
            raise typer.Exit(1)
        progress = _ExportProgress(console)
        try:
            summary = export_chat(dataset, out, fmt, splits=split or None, image_root=image_root,
                                  link_dir=link_images, skip_missing=skip_missing, progress=progress,
                                  images=images, overlay=overlay, media_dir=media_dir, workers=workers)
        except TumorcotError as exc:
            progress.stop()
            console.print(f"[red]error[/red] {escape(str(exc))}")
            raise typer.Exit(1)
        progress.stop()
        if not summary["files"]:
            console.print(f"[yellow]nothing to export[/yellow]: no records in {', '.join(split or ['any split'])}")
        for path, lines in summary["files"].items():
            console.print(f"wrote {lines} {fmt} records to {escape(path)}")
        if "media" in summary:
            m = summary["media"]
            console.print(f"media in {escape(m['folder'])}: {m['cases']} case(s), {m['decoded']} CT(s) decoded, "
                          f"{m['files_written']} file(s) written, {m['files_unchanged']} unchanged")
        if summary["skipped"]:
            console.print(f"[yellow]skipped[/yellow] {summary['skipped']} records of {len(summary['skipped_cases'])} "
                          f"case(s) without a stored case row or CT: {', '.join(summary['skipped_cases'])}")

    @app.command()
    def stats(
        dataset: Path = typer.Argument(..., help="Dataset folder written by tumorcot build."),
        as_json: bool = typer.Option(False, "--json", help="Print the stats as JSON."),
    ):
        """Records per task, subtask, organ and split; answer-position balance; negatives share."""
        if not (dataset / "manifest.json").exists():
            console.print(f"[red]error[/red] {escape(str(dataset))} is not a tumorcot dataset (no manifest.json)")
            raise typer.Exit(1)
        data = load_stats(dataset)
        if as_json:
            typer.echo(json.dumps(data, indent=1))
        else:
            print_stats(console, data)
