"""EACPS search: a pure algorithm over injected generate and score functions (docs/architecture.md, "The search").

Entry point: `run_search(SearchRequest(...), generate=..., scorers=[...], clock=..., on_event=...)`.
"""

from orchestrator.search.config import LocalMode, SearchConfig, SearchConfigError
from orchestrator.search.contracts import (
    CandidateImage,
    Clock,
    GeneratedImage,
    GenerateFn,
    GenerationMode,
    GenerationRequest,
    ScoreFn,
    Scorer,
    SignalScore,
    Stage,
    StageRequest,
)
from orchestrator.search.deadline import Deadline, DeadlinePassedError
from orchestrator.search.eacps import (
    SearchFailedError,
    SearchRequest,
    SearchResult,
    rank_key,
    run_search,
    select_parents,
)
from orchestrator.search.events import EventKind, ProgressCallback, ProgressEvent
from orchestrator.search.ledger import (
    CandidateRecord,
    CandidateStatus,
    CandidateTimings,
    GenerationSettings,
    Ledger,
    PotentialTerm,
    ScoreRecord,
    SearchTimings,
    SkippedWork,
    StageFailure,
)
from orchestrator.search.potential import compute_potential
from orchestrator.search.seeds import RAW_SWAP_SEED, SeedAllocator, derive_seed

__all__ = [
    "RAW_SWAP_SEED",
    "CandidateImage",
    "CandidateRecord",
    "CandidateStatus",
    "CandidateTimings",
    "Clock",
    "Deadline",
    "DeadlinePassedError",
    "EventKind",
    "GenerateFn",
    "GeneratedImage",
    "GenerationMode",
    "GenerationRequest",
    "GenerationSettings",
    "Ledger",
    "LocalMode",
    "PotentialTerm",
    "ProgressCallback",
    "ProgressEvent",
    "ScoreFn",
    "ScoreRecord",
    "Scorer",
    "SearchConfig",
    "SearchConfigError",
    "SearchFailedError",
    "SearchRequest",
    "SearchResult",
    "SearchTimings",
    "SeedAllocator",
    "SignalScore",
    "SkippedWork",
    "Stage",
    "StageFailure",
    "StageRequest",
    "compute_potential",
    "derive_seed",
    "rank_key",
    "run_search",
    "select_parents",
]
