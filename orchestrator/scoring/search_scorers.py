"""The search's scorers for one task: local metrics, Moondream and Gemini, as `Scorer`s over arrays.

Every adapter from a scoring client to the search lives here, shaped alike; the clients know nothing of
the search.

Each scorer closes over the task (init image, refined mask, character face) and scores a candidate
(a full RGB image) as soon as it arrives. The blocking clients run in worker threads; Gemini's SDK is
async.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np

from orchestrator.faces.analysis import Face, FaceAnalyzer
from orchestrator.faces.selection import mask_overlap
from orchestrator.refine.crop import CropBox
from orchestrator.scoring.gemini import GeminiRealismScorer
from orchestrator.scoring.local_metrics import (
    EdgeBands,
    TextureRings,
    boundary_consistency_in,
    edge_bands,
    identity_score,
    texture_realism_in,
    texture_rings,
)
from orchestrator.scoring.moondream_client import (
    CONSISTENCY_QUESTION,
    MoondreamJudge,
    combine,
    identity_queries_of_panels,
    panel,
)
from orchestrator.search import CandidateImage, Deadline, Scorer, SignalScore
from orchestrator.search.signals import (
    CONSISTENCY,
    CONSISTENCY_LOCAL,
    IDENTITY,
    IDENTITY_LOCAL,
    REALISM,
    REALISM_LOCAL,
)


@dataclass(frozen=True)
class ScoringTask:
    init: np.ndarray
    mask: np.ndarray  # the refined mask
    box: CropBox  # the crop around the mask, the "result face" the judges look at
    character: np.ndarray
    character_face: Face  # with its embedding
    character_crop: np.ndarray


def face_crop(image: np.ndarray, face: Face, margin: float = 0.3) -> np.ndarray:
    """The face's box grown by `margin` on each side, clipped to the image."""
    x1, y1, x2, y2 = face.bbox
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = image.shape[:2]
    left, top = max(int(x1 - dx), 0), max(int(y1 - dy), 0)
    right, bottom = min(int(x2 + dx) + 1, width), min(int(y2 + dy) + 1, height)
    if right - left < 2 or bottom - top < 2:
        return image
    return np.ascontiguousarray(image[top:bottom, left:right])


def local_scorer(analyzer: FaceAnalyzer, task: ScoringTask, detect_size: int) -> Scorer[np.ndarray]:
    """ArcFace identity against the character, and boundary consistency against the init image.

    A candidate differs from the init image only inside the mask, so its face is looked for inside the crop
    around the mask (`task.box`), letterboxed to `detect_size`, not in the whole photo."""
    assert task.character_face.embedding is not None
    reference = task.character_face.embedding
    # What the metrics compare against is the task's, not the candidate's: measured once, on first use.
    regions: list[tuple[EdgeBands | None, TextureRings | None]] = []
    once = threading.Lock()

    def task_regions() -> tuple[EdgeBands | None, TextureRings | None]:
        with once:
            if not regions:
                regions.append((edge_bands(task.init, task.mask), texture_rings(task.mask)))
            return regions[0]

    def measure(image: np.ndarray, deadline: Deadline) -> list[SignalScore]:
        bands, rings = task_regions()
        scores = [
            SignalScore(CONSISTENCY_LOCAL, boundary_consistency_in(image, bands), "local:boundary"),
            SignalScore(REALISM_LOCAL, texture_realism_in(image, rings), "local:texture"),
        ]
        found = analyzer.detect_in(image, task.box.slices(), detect_size, deadline)
        faces = [f for f in found if mask_overlap(f, task.mask) > 0]
        if not faces:
            scores.append(SignalScore(IDENTITY_LOCAL, 0.0, "local:arcface", reason="no face detected inside the mask"))
            return scores
        face = max(faces, key=lambda f: (mask_overlap(f, task.mask), f.score))
        analyzer.add_embeddings(image, [face], deadline)
        assert face.embedding is not None
        scores.append(SignalScore(IDENTITY_LOCAL, identity_score(face.embedding, reference), "local:arcface"))
        return scores

    async def score(candidate: CandidateImage[np.ndarray]) -> list[SignalScore]:
        return await asyncio.to_thread(measure, candidate.image, candidate.deadline)

    return Scorer(name="local", signals=(CONSISTENCY_LOCAL, REALISM_LOCAL, IDENTITY_LOCAL), score=score)


def moondream_scorer(judge: MoondreamJudge, task: ScoringTask) -> Scorer[np.ndarray]:
    """Cross-validated identity (two composites, two phrasings) and consistency, in one Score call; a cancelled
    task cancels the call, and the server stops the work."""

    character_panel: list[np.ndarray] = []  # the same in every candidate's composites: made on first use

    def questions(image: np.ndarray) -> list[tuple[np.ndarray, str]]:
        if not character_panel:
            character_panel.append(panel(task.character_crop))  # two threads may both make it: same pixels
        result_face = np.ascontiguousarray(image[task.box.slices()])
        composites = identity_queries_of_panels(panel(result_face), character_panel[0])
        return [*composites, (result_face, CONSISTENCY_QUESTION)]

    async def score(candidate: CandidateImage[np.ndarray]) -> list[SignalScore]:
        queries = await asyncio.to_thread(questions, candidate.image)
        parts, standin = await judge.score_async(queries, candidate.deadline, request_id=candidate.request_id)
        source = "moondream:stand-in" if standin else "moondream"
        out = []
        for signal, judgement in (
            (IDENTITY, combine(parts[:2], standin=standin)),
            (CONSISTENCY, combine(parts[2:], standin=standin)),
        ):
            out.append(
                SignalScore(
                    signal,
                    judgement.score,
                    source,
                    fallback=judgement.fallback,
                    reason="; ".join(judgement.reasons) or None,
                    details={f"part{i}": p.score for i, p in enumerate(judgement.parts)},
                )
            )
        return out

    return Scorer(name="moondream", signals=(IDENTITY, CONSISTENCY), score=score)


def gemini_scorer(gemini: GeminiRealismScorer, box: CropBox) -> Scorer[np.ndarray]:
    """Realism from Gemini, which sees the face region (the refinement crop with context) and a small whole view."""
    views_of = gemini.views_for(box)

    async def score(candidate: CandidateImage[np.ndarray]) -> list[SignalScore]:
        views = await asyncio.to_thread(views_of, candidate.image)  # resizing and encoding: off the event loop
        result = await gemini.score_views(views, request_id=candidate.request_id, deadline=candidate.deadline)
        return [result.to_signal_score()]

    return Scorer(name="gemini", signals=(REALISM,), score=score, fallback_value=gemini.config.fallback_score)
