"""A cancellation token that blocking model code checks between steps (for example between denoising steps).

It carries the caller's deadline and a flag set when the call is cancelled. It does not import gRPC: the
transport creates it (see `servers.common.server.token_for`) and the model adapter only calls `check()`.
"""

from __future__ import annotations

import threading
import time

from servers.common.errors import Cancelled, DeadlineExceeded


class CancelToken:
    """Thread-safe: the event loop cancels, the worker thread checks."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._cancelled = threading.Event()
        self._reason = ""

    def cancel(self, reason: str = "the call was cancelled") -> None:
        self._reason = reason
        self._cancelled.set()

    def remaining_s(self) -> float | None:
        """Seconds left before the deadline, or None when there is no deadline."""
        return None if self._deadline is None else self._deadline - time.monotonic()

    @property
    def stopped(self) -> bool:
        remaining = self.remaining_s()
        return self._cancelled.is_set() or (remaining is not None and remaining <= 0)

    def check(self) -> None:
        """Raise DeadlineExceeded or Cancelled when the work should stop; return otherwise."""
        remaining = self.remaining_s()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the work finished")
        if self._cancelled.is_set():
            raise Cancelled(self._reason)

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, woken early by a cancellation; then `check()` (simulated work uses it)."""
        remaining = self.remaining_s()
        self._cancelled.wait(seconds if remaining is None else max(min(seconds, remaining), 0.0))
        self.check()
