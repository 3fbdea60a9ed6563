"""``InProcess``: an object of the calling process (the CLI's progress display, a crash test's
pause) passed to a flow explicitly, as a parameter, that never travels.

With a Dask task runner Prefect ships the flow run's context, its parameters included, to the
workers; a progress display (a rich console with its locks) would fail to pickle there. An
``InProcess`` pickles to an empty one, so the workers see ``value`` None and the display stays
where it was made; the Prefect API records only the parameter's type.
"""

from __future__ import annotations


class InProcess:
    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return InProcess, ()

    def __repr__(self) -> str:
        return f"InProcess({type(self.value).__name__})"
