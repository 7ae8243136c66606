"""Fake generate and score functions, and a fake clock, for testing the EACPS search without servers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from orchestrator.search import (
    CandidateImage,
    GeneratedImage,
    GenerationMode,
    Scorer,
    SignalScore,
    Stage,
    StageRequest,
)
from orchestrator.search.signals import CONSISTENCY, IDENTITY, REALISM


class FakeClock:
    """A clock that moves only when told to (the fake generator advances it per candidate)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class FakeImage:
    """Stands for a picture: enough to see how it was made."""

    candidate_id: str
    mode: GenerationMode
    seed: int
    parent: FakeImage | None = None


def hashed_score(*parts: object) -> float:
    """A stable pseudo-random score in 0..10 from the given parts."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1001 / 100.0


@dataclass
class FakeGenerator:
    """Yields every requested candidate in order, advancing the clock by `cost_s` per candidate.

    `fail_in_stage` + `fail_after`: in that stage, raise (as a down model server would) after yielding
    `fail_after` candidates. `before_yield` is awaited before each candidate (tests use it to interleave).
    """

    clock: FakeClock | None = None
    cost_s: float = 1.0
    fail_in_stage: Stage | None = None
    fail_after: int = 0
    before_yield: Callable[[int], Awaitable[None]] | None = None
    calls: list[StageRequest[FakeImage]] = field(default_factory=list)
    remaining_at_call: list[float] = field(default_factory=list)  # each stage's time left when it was asked for

    async def __call__(self, stage: StageRequest[FakeImage]) -> AsyncIterator[GeneratedImage[FakeImage]]:
        self.calls.append(stage)
        self.remaining_at_call.append(stage.deadline.remaining())
        for n, request in enumerate(stage.requests):
            if stage.stage is self.fail_in_stage and n >= self.fail_after:
                raise ConnectionError("qwen-edit server unavailable")
            # A real generator awaits I/O between candidates; this lets the event loop run scoring meanwhile.
            await asyncio.sleep(0)
            if self.before_yield is not None:
                await self.before_yield(n)
            if self.clock is not None:
                self.clock.advance(self.cost_s)
            image = FakeImage(
                candidate_id=request.candidate_id,
                mode=request.mode,
                seed=request.seed,
                parent=request.parent_image,
            )
            yield GeneratedImage(
                candidate_id=request.candidate_id,
                image=image,
                elapsed_s=self.cost_s,
                info={"model": "fake-qwen-edit", "stand_in": True},
            )


def table_scorer(
    table: Mapping[str, Mapping[str, float]],
    *,
    name: str = "fake-model",
    signals: tuple[str, ...] = (REALISM, IDENTITY, CONSISTENCY),
    yields_before_answer: Callable[[str], int] | None = None,
) -> Scorer[FakeImage]:
    """Scores from `table[candidate_id][signal]`, else a stable hash of (candidate, seed, signal).

    `yields_before_answer(candidate_id)` hands control back to the event loop that many times first,
    so tests can make answers arrive in a different order without sleeping.
    """

    async def score(candidate: CandidateImage[FakeImage]) -> list[SignalScore]:
        if yields_before_answer is not None:
            for _ in range(yields_before_answer(candidate.candidate_id)):
                await asyncio.sleep(0)
        row = table.get(candidate.candidate_id, {})
        return [
            SignalScore(
                signal=signal,
                value=row.get(signal, hashed_score(candidate.candidate_id, candidate.seed, signal)),
                source=name,
            )
            for signal in signals
        ]

    return Scorer(name=name, signals=signals, score=score)


def failing_scorer(name: str, signals: tuple[str, ...], error: Exception) -> Scorer[FakeImage]:
    async def score(candidate: CandidateImage[FakeImage]) -> list[SignalScore]:
        raise error

    return Scorer(name=name, signals=signals, score=score)
