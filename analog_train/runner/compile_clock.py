"""The time numba spends compiling kernels or loading them from its cache, kept apart from training time.

A run's first mini-batches compile (about two minutes on 2 cores without a cache) or load (seconds)
the kernels they call; counted as training, that time would make the first epoch look slow and
the samples per second meaningless. numba holds its compiler lock exactly while it compiles or
loads, and reports that as the ``numba:compiler_lock`` event.
"""

from __future__ import annotations

from typing import Any

from numba.core import event


class CompileClock:
    """Context manager: :attr:`seconds` the compiler lock was held in this process while active."""

    def __init__(self) -> None:
        self._timer = event.TimingListener()

    def __enter__(self) -> "CompileClock":
        event.register("numba:compiler_lock", self._timer)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.unregister("numba:compiler_lock", self._timer)

    @property
    def seconds(self) -> float:
        return self._timer.duration if self._timer.done else 0.0
