"""Stopping a sync on SIGINT or SIGTERM: the first signal asks, the second exits at once.

The engine knows nothing of signals: it is given ``should_stop`` and asks it (and has the ports
ask it) between write calls. This module turns signals into that answer. After the first signal
the run sends nothing new, waits only for the requests in flight (a bulk job not seen to finish
is in doubt), saves the state and returns; a second signal
exits the process at once (the write journal, committed before every batch is sent, tells
the next run what may have landed).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

import structlog

log = structlog.get_logger()

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalStop:
    """While entered (on the main thread), SIGINT and SIGTERM ask the run to stop.

    ``event`` is set on the first signal, so a scheduler sleeping on it wakes at once;
    ``exit_code`` is the shell's convention, 128 + the signal number (130 for SIGINT, 143 for
    SIGTERM).
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()

    def should_stop(self) -> bool:
        """The engine's cancellation check."""
        return self.event.is_set()

    @property
    def exit_code(self) -> int:
        """128 + the first signal's number."""
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.event.is_set():
            # A second signal: the person wants out now. Nothing is lost that the journal
            # does not cover, so skip every cleanup (they could block on the network).
            os.write(sys.stderr.fileno(), b"interrupted again: exiting now\n")
            os._exit(128 + signum)
        self.signum = signum
        self.event.set()
        log.warning(
            "sync.interrupted",
            signal=signal.Signals(signum).name,
            action="sending nothing new; finishing the requests in flight and saving state",
        )

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
