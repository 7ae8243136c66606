"""The pipeline's results as the public contract (inpaint.v1): responses and progress events. Pure functions.

Requests go the other way through `orchestrator.requests` (one parse step to a validated task).
"""

from __future__ import annotations

import json

from google.protobuf.duration_pb2 import Duration
from inpaint.v1 import inpaint_pb2

from orchestrator.imaging.encode import png_message
from orchestrator.pipeline import InpaintOutcome
from orchestrator.search import CandidateStatus, EventKind, GenerationMode, ProgressEvent, Stage

_STAGES = {Stage.GLOBAL: inpaint_pb2.STAGE_GLOBAL, Stage.LOCAL: inpaint_pb2.STAGE_LOCAL}
_MODES = {
    GenerationMode.RAW_SWAP: inpaint_pb2.CANDIDATE_MODE_RAW_SWAP,
    GenerationMode.REFINE: inpaint_pb2.CANDIDATE_MODE_REFINE,
    GenerationMode.NOISE_NEIGHBOURHOOD: inpaint_pb2.CANDIDATE_MODE_NOISE_NEIGHBOURHOOD,
    GenerationMode.RENOISE: inpaint_pb2.CANDIDATE_MODE_RENOISE,
}
_STATUSES = {
    CandidateStatus.SCORED: inpaint_pb2.CANDIDATE_STATUS_SCORED,
    CandidateStatus.NOT_SCORED: inpaint_pb2.CANDIDATE_STATUS_NOT_SCORED,
    CandidateStatus.SKIPPED: inpaint_pb2.CANDIDATE_STATUS_SKIPPED,
    CandidateStatus.GENERATION_FAILED: inpaint_pb2.CANDIDATE_STATUS_GENERATION_FAILED,
}


def duration(seconds: float) -> Duration:
    message = Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


_KINDS = {
    EventKind.STAGE_STARTED: inpaint_pb2.PROGRESS_KIND_STAGE_STARTED,
    EventKind.CANDIDATE_GENERATED: inpaint_pb2.PROGRESS_KIND_CANDIDATE_GENERATED,
    EventKind.CANDIDATE_SCORED: inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED,
    EventKind.STAGE_SKIPPED: inpaint_pb2.PROGRESS_KIND_STAGE_SKIPPED,
    EventKind.STAGE_FAILED: inpaint_pb2.PROGRESS_KIND_STAGE_FAILED,
    EventKind.DONE: inpaint_pb2.PROGRESS_KIND_DONE,
}


def response(outcome: InpaintOutcome) -> inpaint_pb2.InpaintResponse:
    """The result without candidate images: those are kept and fetched one by one (GetCandidateImage)."""
    ledger = outcome.ledger
    candidates = []
    for record in ledger.candidates:
        candidate = inpaint_pb2.Candidate(
            candidate_id=record.candidate_id,
            stage=_STAGES.get(record.stage, inpaint_pb2.STAGE_UNSPECIFIED),
            parent_id=record.parent_id or "",
            seed=record.seed,
            mode=_MODES.get(record.settings.mode, inpaint_pb2.CANDIDATE_MODE_UNSPECIFIED),
            status=_STATUSES.get(record.status, inpaint_pb2.CANDIDATE_STATUS_UNSPECIFIED),
            degraded=record.any_fallback,
            scores=[
                inpaint_pb2.Score(
                    signal=s.signal, value=s.value, source=s.source, fallback=s.fallback, reason=s.reason or ""
                )
                for s in record.scores
            ],
        )
        if record.potential is not None:
            candidate.potential = record.potential
        candidates.append(candidate)
    return inpaint_pb2.InpaintResponse(
        request_id=outcome.request_id,
        image=png_message(outcome.image),
        refined_mask=png_message(outcome.mask.mask),
        mask_refinement=inpaint_pb2.MaskRefinement(refined=outcome.mask.refined, reason=outcome.mask.reason),
        best_candidate_id=ledger.best_id or "",
        candidates=candidates,
        ledger_json=json.dumps(ledger.to_dict()),
        timings={name: duration(seconds) for name, seconds in outcome.timings_s.items()},
        stand_in_models=outcome.stand_in_models,
        degraded=outcome.degraded,
        notes=outcome.notes,
    )


def progress(event: ProgressEvent) -> inpaint_pb2.ProgressEvent:
    message = inpaint_pb2.ProgressEvent(
        kind=_KINDS[event.kind],
        stage=_STAGES.get(event.stage, inpaint_pb2.STAGE_UNSPECIFIED) if event.stage else inpaint_pb2.STAGE_UNSPECIFIED,
        candidate_id=event.candidate_id or "",
        planned=event.planned,
        generated=event.generated,
        scored=event.scored,
        elapsed=duration(event.elapsed_s),
        detail=event.detail or "",
    )
    if event.potential is not None:
        message.potential = event.potential
    return message
