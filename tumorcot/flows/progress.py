"""The progress display of the process that runs a flow (the CLI's bar), kept out of the flow.

Not a flow parameter (parameters must serialise to JSON) and not a global of ``flows/build.py``:
with a Dask task runner Prefect ships the flow run's context, flow function included, to the
workers; cloudpickle copies that function by value with the module globals it names, so a
progress object (a rich console with its locks) held there would travel too and fail to pickle.
Functions of this module are pickled by reference, so the display stays in this process.
"""

from __future__ import annotations

from contextlib import contextmanager

_ACTIVE: list = []


@contextmanager
def showing(progress):
    """Make ``progress`` (``start(total)``, ``advance(outcome)``) the current display; None: no-op."""
    if progress is not None:
        _ACTIVE.append(progress)
    try:
        yield
    finally:
        if progress is not None:
            _ACTIVE.remove(progress)


def current():
    return _ACTIVE[-1] if _ACTIVE else None
