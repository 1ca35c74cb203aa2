"""Graceful stops: the first SIGINT/SIGTERM becomes a flag the host loop checks."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks between chunks.

    A second signal raises ``KeyboardInterrupt`` at once (abort without the checkpoint).
    Handlers are only installed from the main thread (Ray workers run elsewhere).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"\njaxlab: {name} received: finishing the current chunk and writing a checkpoint "
            "(send it again to abort without one)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
