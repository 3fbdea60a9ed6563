"""A dataset's private state folder: everything that must never be published, outside the dataset.

Everything inside a dataset folder ``DIR`` is safe to upload as is. What is not lives in the
dataset's *state folder*:

    STATE/salt                      the pseudonymisation salt (0600)
    STATE/cases/<case_id>/          per-case results: records, full generation log (prompts with
                                    report text), facts, ``input.json`` (raw ids, input paths)
    STATE/segmentations/            TotalSegmentator masks cached by CT content
    STATE/llm-cache/                LLM answers cached by request
    STATE/lock                      the one-writer lock
    STATE/assembling, paused-*      crash-safety marker, crash-test hooks
    STATE/dataset.json              which dataset folder this state serves (one state, one dataset)

Where it is, first match wins: the folder bound in this process for ``DIR`` (``bind``: the flows
pass it to their tasks, so Dask workers on other machines use the same folder), then
``$TUMORCOT_STATE_DIR`` (``tumorcot --state-dir``), then ``DIR.private`` beside ``DIR`` (a
sibling, never inside). It is created 0700. A dataset written before the state folder existed
(``DIR/.tumorcot/`` and ``DIR/llm-cache/``) is migrated into it on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tumorcot.errors import StateDirError

ENV = "TUMORCOT_STATE_DIR"
OWNER = "dataset.json"   # {"dataset": absolute path of the dataset folder this state serves}
SUFFIX = ".private"
LEGACY = {".tumorcot": None, "llm-cache": "llm-cache"}   # old folder inside DIR -> place in STATE (None: STATE)

_BOUND: dict[str, str] = {}      # absolute DIR -> absolute STATE (this process)
_RESOLVED: dict[tuple[str, str | None], Path] = {}
_ROOTS: set[str] = set()         # every state folder resolved in this process (for file modes)


def _absolute(path: Path | str) -> str:
    return os.path.abspath(os.path.expanduser(str(path)))


def default_state_dir(dataset_dir: Path | str) -> Path:
    """``DIR.private``: beside the dataset folder."""
    path = Path(_absolute(dataset_dir))
    return path.with_name(path.name + SUFFIX)


def bind(dataset_dir: Path | str, state_dir: Path | str | None) -> None:
    """Use ``state_dir`` for ``dataset_dir`` in this process (no-op for None)."""
    if state_dir:
        _BOUND[_absolute(dataset_dir)] = _absolute(state_dir)


def state_dir(dataset_dir: Path | str, *, create: bool = True) -> Path:
    """The dataset's private state folder (see the module docstring); created 0700 unless
    ``create=False``. A legacy ``DIR/.tumorcot`` or ``DIR/llm-cache`` is moved into it."""
    dataset = _absolute(dataset_dir)
    env = os.environ.get(ENV) or None
    key = (dataset, _BOUND.get(dataset) or env)
    cached = _RESOLVED.get(key)
    if cached is not None:
        return cached
    state = Path(key[1] or default_state_dir(dataset))
    state_abs = _absolute(state)
    if state_abs == dataset or state_abs.startswith(dataset.rstrip(os.sep) + os.sep):
        raise StateDirError(f"state folder {state_abs} is inside the dataset folder {dataset}: private state "
                            f"must live outside what is published (choose another --state-dir / ${ENV})")
    legacy = [Path(dataset) / name for name in LEGACY if (Path(dataset) / name).exists()]
    if not create and not legacy:
        return Path(state_abs)   # not created, not remembered: a later call may create it
    _make_private_folder(Path(state_abs))
    for old in legacy:
        _migrate(old, Path(state_abs) / (LEGACY[old.name] or ""))
    _claim(Path(state_abs), dataset, shared=Path(state_abs) != default_state_dir(dataset))
    _ROOTS.add(state_abs)
    _RESOLVED[key] = Path(state_abs)
    return Path(state_abs)


def _claim(state: Path, dataset: str, shared: bool) -> None:
    """Record which dataset the state folder serves (``OWNER``). A folder placed by the user
    (``shared``: not the default sibling) that serves another dataset still in place is refused:
    this dataset's builds would prune that one's per-case results. A default sibling copied
    along with its dataset simply changes owner."""
    owner = state / OWNER
    try:
        recorded = json.loads(owner.read_text()).get("dataset")
    except (OSError, ValueError):
        recorded = None
    if shared and recorded and recorded != dataset and (Path(recorded) / "manifest.json").exists():
        raise StateDirError(f"state folder {state} belongs to the dataset {recorded}; give {dataset} its own "
                            f"(--state-dir / ${ENV}), or move the dataset rather than copying it")
    if recorded != dataset:
        owner.write_text(json.dumps({"dataset": dataset}) + "\n")
        owner.chmod(0o600)


def _make_private_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def _migrate(old: Path, new: Path) -> None:
    """Move a legacy private folder's entries into ``new`` (existing entries there win)."""
    new.mkdir(parents=True, exist_ok=True, mode=0o700)
    moved = 0
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists():
            if entry.is_dir() and target.is_dir():
                _migrate(entry, target)
            continue
        shutil.move(str(entry), str(target))
        moved += 1
    shutil.rmtree(old, ignore_errors=True)
    if moved:
        print(f"tumorcot: moved private state {old} -> {new} (outside the published dataset folder)",
              file=sys.stderr)


def is_private(path: Path | str) -> bool:
    """Whether ``path`` lies in a state folder (or a legacy ``.tumorcot`` folder): files there
    stay owner-only."""
    absolute = _absolute(path)
    if f"{os.sep}.tumorcot{os.sep}" in absolute:
        return True
    return any(absolute.startswith(root + os.sep) for root in _ROOTS)
