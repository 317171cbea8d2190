"""SIGINT and SIGTERM as a request to stop at the next safe point, not an exception anywhere.

Raising from a signal handler would interrupt whatever runs at that moment, e.g. a Python callback
inside a compiled kernel, which then surfaces as a ``SystemError`` instead of an interrupt; and a
scheduler's SIGTERM would kill the process before it writes what it computed. So the first signal
is only noted: loops ask :meth:`StopSignals.check` (raises ``KeyboardInterrupt``) or
:func:`requested` (experiments, which stop early and keep their rows) between steps. A second
signal raises ``KeyboardInterrupt`` at once, unless it comes within :data:`SAME_REQUEST_S` of the
first: a terminal's Ctrl-C reaches every process of a sweep, a scheduler's SIGTERM often too, and
the sweep passes its own on to its workers; those are one request.

Handlers nest: a run inside a sequential sweep passes its first signal on to the sweep's handler,
so the sweep stops too instead of going on with its next job.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable, Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT)
SAME_REQUEST_S = 2.0
_active: list["StopSignals"] = []  # installed handlers, outermost first


class StopSignals:
    """Context manager: while active (main thread only), SIGINT/SIGTERM set :attr:`signum`.

    ``on_first`` runs once, at the first signal (e.g. to pass the signal on to a sweep's workers).
    """

    def __init__(self, on_first: Optional[Callable[[int], None]] = None) -> None:
        self.signum: Optional[int] = None
        self._first_at = 0.0
        self._on_first = on_first
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self) for sig in SIGNALS}
            _active.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self in _active:
            _active.remove(self)

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if time.monotonic() - self._first_at < SAME_REQUEST_S:
                return
            raise KeyboardInterrupt(signal_name(signum))
        self.signum, self._first_at = signum, time.monotonic()
        outer = self._previous.get(signum)
        if isinstance(outer, StopSignals):
            outer(signum, frame)
        if self._on_first is not None:
            self._on_first(signum)

    @property
    def requested(self) -> bool:
        """Whether this handler, or one it is nested in, got a signal."""
        return self.signum is not None or requested()

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` (naming the signal) if a stop was requested."""
        signum = next((s.signum for s in (self, *_active) if s.signum is not None), None)
        if signum is not None:
            raise KeyboardInterrupt(signal_name(signum))


def requested() -> bool:
    """Whether any active :class:`StopSignals` of this process has received a signal."""
    return any(s.signum is not None for s in _active)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
