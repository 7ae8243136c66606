"""The ledger: every candidate the search tried, how it was made, how it scored, and what was skipped.

Plain frozen dataclasses; `to_dict()` gives JSON-serialisable data (no images, no secrets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.search.contracts import GenerationMode, Scalar, Stage


class CandidateStatus(StrEnum):
    SCORED = "scored"
    # Generated but never scored (the deadline had passed before scoring could start).
    NOT_SCORED = "not_scored"
    # Planned, then not attempted: the deadline had passed before its stage.
    SKIPPED = "skipped"
    # Requested but never produced (the generator raised or stopped early); kept so the ledger is complete.
    GENERATION_FAILED = "generation_failed"


@dataclass(frozen=True)
class GenerationSettings:
    mode: GenerationMode
    seed: int
    parent_seed: int | None = None
    noise_cosine: float | None = None
    strength: float | None = None


@dataclass(frozen=True)
class ScoreRecord:
    """One signal's score as recorded: the scorer's answer, or the fallback that replaced it."""

    signal: str
    value: float
    source: str
    fallback: bool
    scorer: str
    elapsed_s: float
    reason: str | None = None
    details: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class PotentialTerm:
    """One weighted signal of the potential and where its value came from.

    `source_signal` differs from `signal` when a stand-in supplied the value (`stood_in` is then True);
    `fallback` is True when neither the signal nor a stand-in was usable and a constant was used.
    """

    signal: str
    weight: float
    value: float
    source_signal: str
    source: str
    stood_in: bool
    fallback: bool
    reason: str | None = None


@dataclass(frozen=True)
class CandidateTimings:
    """Seconds. `generation_s` is the generator's own figure; the `*_at_s` offsets are from search start."""

    generation_s: float
    generated_at_s: float | None
    scored_at_s: float | None

    @property
    def scoring_s(self) -> float | None:
        if self.generated_at_s is None or self.scored_at_s is None:
            return None
        return self.scored_at_s - self.generated_at_s


@dataclass(frozen=True)
class CandidateRecord:
    candidate_id: str
    index: int  # order of planning; ties in potential go to the lower index
    stage: Stage
    parent_id: str | None
    settings: GenerationSettings
    status: CandidateStatus
    scores: tuple[ScoreRecord, ...]
    potential: float | None
    potential_terms: tuple[PotentialTerm, ...]
    timings: CandidateTimings
    generator_info: dict[str, Scalar] = field(default_factory=dict)
    failure_reason: str | None = None
    selected_as_parent: bool = False

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def any_fallback(self) -> bool:
        return any(term.fallback or term.stood_in for term in self.potential_terms)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seed"] = self.seed
        data["timings"]["scoring_s"] = self.timings.scoring_s
        return data


@dataclass(frozen=True)
class SkippedWork:
    """Work the search chose not to do, and why (deadline, a failed stage)."""

    stage: Stage
    reason: str
    parent_ids: tuple[str, ...] = ()  # the parents whose children were not generated
    candidates_not_generated: int = 0


@dataclass(frozen=True)
class StageFailure:
    stage: Stage
    reason: str


@dataclass(frozen=True)
class SearchTimings:
    """Seconds on the injected clock."""

    total_s: float
    global_s: float | None
    local_s: float | None
    local_estimate_s: float | None  # what the deadline check expected the local stage to cost


@dataclass(frozen=True)
class Ledger:
    request_id: str
    request_seed: int
    config: dict[str, Any]
    candidates: tuple[CandidateRecord, ...]
    best_id: str | None
    skipped: tuple[SkippedWork, ...]
    failures: tuple[StageFailure, ...]
    timings: SearchTimings

    @property
    def complete(self) -> bool:
        """True when nothing was skipped and no stage failed."""
        return not self.skipped and not self.failures

    @property
    def degraded(self) -> bool:
        """True when the answer rests on less than the full search or on stood-in/fallback signals."""
        return not self.complete or any(c.any_fallback for c in self.candidates)

    def candidate(self, candidate_id: str) -> CandidateRecord:
        for record in self.candidates:
            if record.candidate_id == candidate_id:
                return record
        raise KeyError(candidate_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "request_seed": self.request_seed,
            "config": self.config,
            "best_id": self.best_id,
            "complete": self.complete,
            "degraded": self.degraded,
            "skipped": [asdict(s) for s in self.skipped],
            "failures": [asdict(f) for f in self.failures],
            "timings": asdict(self.timings),
            "candidates": [c.to_dict() for c in self.candidates],
        }
