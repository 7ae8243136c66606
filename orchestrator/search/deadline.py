"""A request's deadline: one value, passed explicitly from the service down to every remote call.

    deadline = Deadline.after(30.0)          # on time.monotonic
    stub.Edit(request, timeout=deadline.timeout(cap_s=600.0))

Python gRPC does not propagate deadlines, so each outgoing call gets `timeout(cap)`: the time left,
never more than that call's own cap. The clock is injectable so the search runs on a fake one in tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class DeadlinePassedError(Exception):
    """No time is left for the work that was about to start."""


@dataclass(frozen=True)
class Deadline:
    """An absolute time on `clock` (monotonic seconds) by which the answer is due; inf: no deadline."""

    at: float = math.inf
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    @classmethod
    def never(cls, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(math.inf, clock)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.at)

    def remaining(self) -> float:
        """Seconds left (negative once passed; inf without a deadline)."""
        return self.at - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def timeout(self, cap_s: float) -> float:
        """A per-call timeout: the time left, at most `cap_s`. Raises DeadlinePassedError when none is left."""
        left = min(self.remaining(), cap_s)
        if left <= 0:
            raise DeadlinePassedError(f"the deadline passed {-self.remaining():.3f} s ago")
        return left
