"""Conversions between the public contract (inpaint.v1) and the pipeline's types. Pure functions."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from inpaint.v1 import inpaint_pb2

from orchestrator.config import RequestSettings
from orchestrator.errors import InvalidInputError
from orchestrator.imaging.encode import png_message
from orchestrator.pipeline import InpaintOutcome
from orchestrator.search import EventKind, ProgressEvent, Stage

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

_STAGES = {Stage.GLOBAL: inpaint_pb2.STAGE_GLOBAL, Stage.LOCAL: inpaint_pb2.STAGE_LOCAL}
_KINDS = {
    EventKind.STAGE_STARTED: inpaint_pb2.PROGRESS_KIND_STAGE_STARTED,
    EventKind.CANDIDATE_GENERATED: inpaint_pb2.PROGRESS_KIND_CANDIDATE_GENERATED,
    EventKind.CANDIDATE_SCORED: inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED,
    EventKind.STAGE_SKIPPED: inpaint_pb2.PROGRESS_KIND_STAGE_SKIPPED,
    EventKind.STAGE_FAILED: inpaint_pb2.PROGRESS_KIND_STAGE_FAILED,
    EventKind.DONE: inpaint_pb2.PROGRESS_KIND_DONE,
}


def check_request_id(request_id: str) -> None:
    if request_id and not REQUEST_ID.fullmatch(request_id):
        raise InvalidInputError("request_id", "must be 1-128 letters, digits, '.', '-' or '_'")


def fingerprint(request: inpaint_pb2.InpaintRequest) -> str:
    """What a request asks for, without its id: a replayed id must carry the same request."""
    copy = inpaint_pb2.InpaintRequest()
    copy.CopyFrom(request)
    copy.request_id = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


# What one request may ask for: bounds that keep a request from monopolising the model servers or the
# orchestrator's memory. (low, high), inclusive.
SETTING_BOUNDS: dict[str, tuple[float, float]] = {
    "k_global": (1, 32),
    "m_global": (0, 8),
    "k_local": (0, 16),
    "weight_consistency": (0.0, 100.0),
    "weight_realism": (0.0, 100.0),
    "weight_identity": (0.0, 100.0),
    "num_inference_steps": (1, 100),
    "true_cfg_scale": (1.0, 20.0),
    "feather_px": (0.5, 256.0),
    "erosion_px": (0, 64),
}


def request_settings(settings: inpaint_pb2.SearchSettings) -> RequestSettings:
    """The request's overrides, each checked against SETTING_BOUNDS (InvalidInputError names the field)."""
    values: dict[str, Any] = {}
    for name, (low, high) in SETTING_BOUNDS.items():
        if not settings.HasField(name):
            continue
        value = getattr(settings, name)
        if not math.isfinite(value) or not low <= value <= high:
            raise InvalidInputError(f"settings.{name}", f"must be within {low}..{high}, got {value}")
        values[name] = value
    if "m_global" in values and values["m_global"] > values.get("k_global", SETTING_BOUNDS["k_global"][1]):
        raise InvalidInputError("settings.m_global", f"must be at most k_global, got {values['m_global']}")
    return RequestSettings(**values, seed=settings.seed if settings.HasField("seed") else 0)


def response(outcome: InpaintOutcome, with_candidate_images: bool = False) -> inpaint_pb2.InpaintResponse:
    ledger = outcome.ledger
    candidates = []
    for record in ledger.candidates:
        candidate = inpaint_pb2.Candidate(
            candidate_id=record.candidate_id,
            stage=_STAGES.get(record.stage, inpaint_pb2.STAGE_UNSPECIFIED),
            parent_id=record.parent_id or "",
            seed=record.seed,
            mode=str(record.settings.mode),
            status=str(record.status),
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
        timings_seconds=outcome.timings_s,
        stand_in_models=outcome.stand_in_models,
        degraded=outcome.degraded,
        notes=outcome.notes,
        candidate_images=[
            inpaint_pb2.CandidateImage(candidate_id=cid, image=png_message(image))
            for cid, image in outcome.images.items()
        ]
        if with_candidate_images
        else [],
    )


def progress(event: ProgressEvent) -> inpaint_pb2.ProgressEvent:
    message = inpaint_pb2.ProgressEvent(
        kind=_KINDS[event.kind],
        stage=str(event.stage) if event.stage else "",
        candidate_id=event.candidate_id or "",
        planned=event.planned,
        generated=event.generated,
        scored=event.scored,
        elapsed_seconds=event.elapsed_s,
        detail=event.detail or "",
    )
    if event.potential is not None:
        message.potential = event.potential
    return message
