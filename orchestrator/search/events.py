"""Progress events the search emits through an injected callback (the streaming RPC and the CLI's bar)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from orchestrator.search.contracts import Stage


class EventKind(StrEnum):
    STAGE_STARTED = "stage_started"
    CANDIDATE_GENERATED = "candidate_generated"
    CANDIDATE_SCORED = "candidate_scored"
    STAGE_SKIPPED = "stage_skipped"
    STAGE_FAILED = "stage_failed"
    DONE = "done"


@dataclass(frozen=True)
class ProgressEvent:
    """One progress event.

    Attributes:
        kind: what happened.
        elapsed_s: seconds since the search started, on the injected clock.
        planned: candidates the search plans in total so far (it shrinks when work is skipped).
        generated: candidates generated so far.
        scored: candidates scored so far.
        stage: the stage concerned, when one is.
        candidate_id: the candidate concerned, when one is.
        potential: the candidate's potential (candidate_scored) or the best's (done).
        detail: a human-readable note (why a stage was skipped or failed).
    """

    kind: EventKind
    elapsed_s: float
    planned: int
    generated: int
    scored: int
    stage: Stage | None = None
    candidate_id: str | None = None
    potential: float | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressCallback: TypeAlias = Callable[[ProgressEvent], None]
