"""A ``tumorcot build`` that stops at a crash point of the shard update, for the crash tests.

``python tests/crash_build.py MANIFEST OUT [POINT]`` builds like ``tumorcot build --concurrency 1``
and, when the update reaches ``POINT`` (``log``, ``manifest``, ``cleanup``, ``unmark``,
``summaries``), announces it in ``STATE/paused-POINT`` and sleeps until the test kills it. The
pause goes through ``run_build(pause=...)``: no hook in the package itself.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tumorcot.flows.build import run_build
from tumorcot.store.private import state_dir


def main(manifest: Path, out: Path, point: str | None) -> None:
    def pause(where: str) -> None:
        if where == point:
            (state_dir(out) / f"paused-{where}").write_text(str(os.getpid()))
            time.sleep(600)

    run_build(manifest, out, concurrency=1, pause=pause)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
