"""Segmentation backends: ``precomputed`` (mask from the manifest) and ``totalsegmentator``.

TotalSegmentator runs as its own process (it can live in its own venv; it pulls CUDA PyTorch and
a PyPI ``argparse`` that breaks Prefect): the executable is ``$TUMORCOT_TOTALSEG_BIN`` or
``TotalSegmentator`` on PATH. Its weights are never downloaded from here: before launching, the
weights folder (``$TOTALSEG_HOME_DIR``, default ``~/.totalsegmentator``) must hold files under
``nnunet/results``, else ``SegmentationError`` is raised at once. The subprocess has a timeout
and no stdin. Results are cached under ``cache_dir`` keyed by the CT's content hash and the
options, and written atomically (temporary name, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tumorcot.errors import SegmentationError
from tumorcot.imaging.io import content_sha256
from tumorcot.store.atomic import atomic_path

Backend = Literal["precomputed", "totalsegmentator"]
TASKS = ("total", "liver_segments", "liver_vessels", "lung_nodules", "kidney_cysts")
DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class SegmentOptions:
    task: str = "total"
    fast: bool = False
    device: Literal["cpu", "gpu"] = "cpu"
    roi_subset: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    def cache_key(self, ct_sha256: str) -> str:
        """Hash of the CT content and every option that changes the output (not the timeout)."""
        options = {k: v for k, v in asdict(self).items() if k != "timeout_s"}
        text = json.dumps({"ct": ct_sha256, "options": options}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def totalseg_executable() -> str:
    return os.environ.get("TUMORCOT_TOTALSEG_BIN", "TotalSegmentator")


def weights_dir() -> Path:
    return Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator"))


def check_weights(*, case: str | None = None) -> Path:
    """Raise unless the TotalSegmentator weights folder holds files; return it."""
    results = weights_dir() / "nnunet" / "results"
    if not results.is_dir() or not any(p.is_file() for p in results.rglob("*")):
        raise SegmentationError(
            f"TotalSegmentator weights not found under {results} (set TOTALSEG_HOME_DIR to a "
            "folder with downloaded weights; tumorcot never downloads them)",
            case=case,
        )
    return results


def command(exe: str, ct_path: Path, out_path: Path, options: SegmentOptions) -> list[str]:
    """The TotalSegmentator command line for ``options``."""
    if options.task not in TASKS:
        raise ValueError(f"unknown TotalSegmentator task {options.task!r}; one of {TASKS}")
    cmd = [exe, "-i", str(ct_path), "-o", str(out_path), "--ml", "--device", options.device]
    if options.fast:
        cmd.append("--fast")
    if options.roi_subset:
        cmd += ["--roi_subset", *options.roi_subset]
    if options.task != "total":
        cmd += ["-ta", options.task]
    return cmd


def run_totalsegmentator(
    ct_path: Path,
    cache_dir: Path,
    *,
    case: str,
    options: SegmentOptions = SegmentOptions(),
    ct_sha256: str | None = None,
) -> Path:
    """Path of the multilabel mask for ``ct_path`` (from the cache, or made by the CLI)."""
    ct_path = Path(ct_path)
    key = options.cache_key(ct_sha256 or content_sha256(ct_path))
    out = Path(cache_dir) / f"{key}_{options.task}.nii.gz"
    if out.is_file():
        return out
    check_weights(case=case)
    exe = shutil.which(totalseg_executable())
    if exe is None:
        raise SegmentationError(
            f"TotalSegmentator executable {totalseg_executable()!r} not found "
            "(set TUMORCOT_TOTALSEG_BIN)",
            case=case,
        )
    env = {**os.environ, "TOTALSEG_HOME_DIR": str(weights_dir())}
    with atomic_path(out, suffix=".nii.gz") as partial:   # nothing at ``out`` unless it succeeds
        try:
            done = subprocess.run(
                command(exe, ct_path, Path(partial), options), env=env, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=options.timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SegmentationError(
                f"TotalSegmentator timed out after {options.timeout_s:g} s", case=case
            ) from exc
        if done.returncode != 0 or os.path.getsize(partial) == 0:
            tail = (done.stderr or done.stdout or "").strip()[-500:]
            raise SegmentationError(
                f"TotalSegmentator failed (exit {done.returncode}, output "
                f"{'missing' if done.returncode == 0 else 'discarded'}): {tail}",
                case=case,
            )
    return out


def segmentation_path(
    backend: Backend,
    *,
    ct_path: Path,
    precomputed: Path | None,
    cache_dir: Path,
    case: str,
    options: SegmentOptions = SegmentOptions(),
    ct_sha256: str | None = None,
) -> Path | None:
    """The organ-mask file a case uses: the manifest's (``precomputed``, may be None) or one
    made by TotalSegmentator."""
    if backend == "precomputed":
        return Path(precomputed) if precomputed is not None else None
    if backend == "totalsegmentator":
        return run_totalsegmentator(
            ct_path, cache_dir, case=case, options=options, ct_sha256=ct_sha256
        )
    raise ValueError(f"unknown segmentation backend {backend!r}")
