"""Stopping on SIGINT (Ctrl-C) and SIGTERM alike: inside ``StopSignals`` either signal raises
``Interrupted`` in the main thread, so the program unwinds as it would from an error (atomic writes drop
their temporaries, the last checkpoint stays whole, the logdir lock is released, a study marks its group
interrupted) and the CLI exits with status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).

The signal is handled between Python bytecodes, so a jitted chunk in flight finishes first. A second
signal while unwinding stops the process at once (the default action): nothing is lost that a resume
needs, since every file is replaced atomically.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, as KeyboardInterrupt: ``except Exception`` lets it
    through)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Context manager: while inside it, SIGINT and SIGTERM raise ``Interrupted`` (see the module
    docstring); the previous handlers come back on exit. Outside the main thread it does nothing (Python
    delivers signals to the main thread only). A child forked inside it that inherits the handler gets the
    signal's default action instead."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.pid = os.getpid()

    def __enter__(self) -> StopSignals:
        self.pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        for other in self.SIGNALS:  # a second signal stops at once
            signal.signal(other, signal.SIG_DFL)
        if os.getpid() != self.pid:  # a forked child: the default action, as if never installed
            os.kill(os.getpid(), signum)
            return
        raise Interrupted(signum)
