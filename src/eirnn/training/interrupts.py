"""SIGTERM (a cluster scheduler at the wall-time limit) and SIGINT (Ctrl-C) as requests to stop.

During the epoch loop a signal only sets a flag: the epoch finishes, a resumable checkpoint is
written and training raises `TrainingInterrupted`. Elsewhere (loading data, writing artifacts)
`raising_on_signals` turns the signal into that exception at once, so that the caller can end
its bookkeeping (the MLflow run) cleanly instead of dying mid-way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from eirnn.training.errors import TrainingInterrupted

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _installable() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler) -> Iterator[None]:
    if not _installable():  # signal handlers live in the main thread only
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def raising_on_signals() -> Iterator[None]:
    """SIGTERM/SIGINT raise TrainingInterrupted where the program is."""

    def raise_interrupted(signum: int, _frame) -> None:
        raise TrainingInterrupted(signum)

    with _handlers(raise_interrupted):
        yield


class StopRequest:
    """Records SIGTERM/SIGINT while installed; `signum` is the first one received."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _record(self, signum: int, _frame) -> None:
        if self.signum is None:
            self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        with _handlers(self._record):
            yield self
