"""Where a task's time went: intervals spent waiting on model servers, merged. Pure bookkeeping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


def union_length(intervals: Sequence[tuple[float, float]]) -> float:
    """Total length covered by the intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


@dataclass
class WaitLog:
    """Intervals (monotonic seconds) during which the task waited on each kind of remote work."""

    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, kind: str, start: float, stop: float) -> None:
        self.intervals.setdefault(kind, []).append((start, stop))

    def covered(self, *kinds: str) -> float:
        chosen = [i for k in (kinds or tuple(self.intervals)) for i in self.intervals.get(k, [])]
        return union_length(chosen)

    def timed(self, kind: str, call: Callable[[T], Awaitable[list[object]]]) -> Callable[[T], Awaitable[list[object]]]:
        async def wrapped(argument: T) -> list[object]:
            start = time.monotonic()
            try:
                return await call(argument)
            finally:
                self.add(kind, start, time.monotonic())

        return wrapped

    def timed_stream(
        self, kind: str, stream: Callable[[T], AsyncIterator[object]]
    ) -> Callable[[T], AsyncIterator[object]]:
        async def wrapped(argument: T) -> AsyncIterator[object]:
            start = time.monotonic()
            try:
                async for item in stream(argument):
                    yield item
            finally:
                self.add(kind, start, time.monotonic())

        return wrapped
