"""How a run ended: its status, the exit code a shell or scheduler sees, and the error of a failed run.

=============  =========  ============================================================================
status         exit code  meaning
=============  =========  ============================================================================
completed      0          every epoch (or the experiment) ran
diverged       3          a non-finite loss stopped training (a legitimate outcome of a bad setting)
interrupted    130        SIGINT or SIGTERM; what was computed is kept (and a run can resume)
failed         4          an exception; ``summary.json`` has its type and message, the job log its traceback
failed         2          ... when the exception is a bad config value or data that cannot be read: one line
=============  =========  ============================================================================
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from analog_train.config import ConfigError
from analog_train.data import DataError
from analog_train.runner.logs import log_traceback

COMPLETED, DIVERGED, INTERRUPTED, FAILED = "completed", "diverged", "interrupted", "failed"
EXIT_CODES = {COMPLETED: 0, DIVERGED: 3, INTERRUPTED: 130, FAILED: 4}
EXIT_CONFIG_ERROR = 2
# Errors a user fixes in the command line or the data folder: one line, no traceback, exit 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError)


class Outcome:
    """Context manager around a run's work that turns how it ends into a status.

    ``KeyboardInterrupt`` (a signal, see :mod:`.signals`) -> interrupted; any other exception ->
    failed, with its traceback written to the job log (not for :data:`USER_ERRORS`). Both are
    swallowed, so the caller goes on to write its summary. ``stage`` says where the run is, for the
    reason of an interruption or failure.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.status = COMPLETED
        self.reason = ""
        self.stage = "start-up"
        self.exception: Optional[BaseException] = None

    def diverged(self, reason: str) -> None:
        self.status, self.reason = DIVERGED, reason

    def __enter__(self) -> "Outcome":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            self.status, self.exception = INTERRUPTED, exc
            self.reason = f"interrupted by {exc or 'SIGINT'} during {self.stage}"
            return True
        if isinstance(exc, Exception):
            self.status, self.exception = FAILED, exc
            message = str(exc).strip().splitlines()
            self.reason = f"{type(exc).__name__}: {message[0] if message else ''} (during {self.stage})"
            if not self.user_error:
                log_traceback(self.log, exc)
            return True
        return False

    @property
    def user_error(self) -> bool:
        return isinstance(self.exception, USER_ERRORS)

    def record(self) -> dict[str, Any]:
        """The summary fields: status, reason and, for a failed run, the exception's type and message."""
        error = None
        if self.status == FAILED and self.exception is not None:
            error = {"type": type(self.exception).__name__, "message": str(self.exception)}
        return {"status": self.status, "reason": self.reason, "error": error}


def exit_code_of(summary: dict[str, Any]) -> int:
    """The exit code of a run from its summary's status (and error type)."""
    error = summary.get("error") or {}
    if summary["status"] == FAILED and error.get("type") in {e.__name__ for e in USER_ERRORS}:
        return EXIT_CONFIG_ERROR
    return EXIT_CODES[summary["status"]]
