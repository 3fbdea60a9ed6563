"""A stand-in ``TotalSegmentator`` executable that honours the CLI contract (-i, -o, --ml,
--fast, --device, --roi_subset, -ta), checks the weights folder like the real one needs it, copies
a reference segmentation from ../shared/data to -o (``STANDIN_SEG_<TASK>`` for a subtask, else
``STANDIN_SEG``), and logs each run (arguments, start, end).
``STANDIN_SLEEP`` makes it slow, ``STANDIN_FAIL`` makes it fail like a CUDA out-of-memory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = '''#!{python}
import argparse, json, os, shutil, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("-i", required=True)
parser.add_argument("-o", required=True)
parser.add_argument("--ml", action="store_true")
parser.add_argument("--fast", action="store_true")
parser.add_argument("--device", choices=["cpu", "gpu"], default="gpu")
parser.add_argument("--roi_subset", nargs="+")
parser.add_argument("-ta", default="total")
args = parser.parse_args()
assert args.ml and os.path.exists(args.i)
assert os.listdir(os.path.join(os.environ["TOTALSEG_HOME_DIR"], "nnunet", "results"))
start = time.time()
time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
if os.environ.get("STANDIN_FAIL"):
    sys.exit("simulated failure: CUDA out of memory")
shutil.copy(os.environ.get("STANDIN_SEG_" + args.ta.upper(), os.environ["STANDIN_SEG"]), args.o)
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(dict(vars(args), start=start, end=time.time())) + "\\n")
'''


def make_weights(home: Path) -> Path:
    """A TOTALSEG_HOME_DIR whose nnunet/results holds a file (the stand-in needs nothing more)."""
    results = home / "nnunet" / "results" / "Dataset291_fake" / "fold_0"
    results.mkdir(parents=True)
    (results / "checkpoint_final.pth").write_bytes(b"not really weights")
    return home


def install(folder: Path, monkeypatch, reference_seg: Path) -> Path:
    """Put the stand-in on $TUMORCOT_TOTALSEG_BIN; returns the path of its run log."""
    exe = folder / "bin" / "TotalSegmentator"
    exe.parent.mkdir(parents=True)
    exe.write_text(SCRIPT.format(python=sys.executable))
    exe.chmod(0o755)
    log = folder / "calls.jsonl"
    monkeypatch.setenv("TUMORCOT_TOTALSEG_BIN", str(exe))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.setenv("STANDIN_SEG", str(reference_seg))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
