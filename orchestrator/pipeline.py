"""One inpainting task from a validated `Task` to its result: face stage, EACPS search, blend, ledger.

    outcome = await pipeline.run(task, on_event=print)

The pipeline owns the long-lived model clients (Triton, Qwen-Edit, Moondream, the Gemini SDK client),
one of each per process, and builds the per-task generate and score functions the search is given.
The task's one deadline reaches every call. It raises the domain errors of `orchestrator.errors`; a
down Qwen-Edit server, Moondream server or Gemini does not fail the task but degrades it, and the
outcome says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from opentelemetry import trace

from orchestrator.config import OrchestratorConfig
from orchestrator.errors import DeadlineExceededError
from orchestrator.faces.analysis import FaceAnalyzer
from orchestrator.faces.applied import with_edge_colour
from orchestrator.faces.stage import FaceStage
from orchestrator.faces.triton_client import TritonModels
from orchestrator.imaging.decode import decode_image
from orchestrator.imaging.encode import encode_png
from orchestrator.imaging.masks import MaskRefinement
from orchestrator.refine.qwen_client import QwenEditClient
from orchestrator.refine.qwen_generator import QwenEditGenerator, TaskGeometry
from orchestrator.requests import Task
from orchestrator.scoring.gemini import GeminiRealismScorer
from orchestrator.scoring.moondream_client import MoondreamJudge
from orchestrator.scoring.search_scorers import ScoringTask, face_crop, gemini_scorer, local_scorer, moondream_scorer
from orchestrator.search import GenerateFn, Ledger, ProgressCallback, Scorer, SearchRequest, run_search
from orchestrator.search.memo import ImageCodec, ImagesStored, MemoStore, remembered_generate, remembered_scorer
from orchestrator.timing import WaitLog
from orchestrator.tracing import child_span, task_span, traced_events, traced_generate, traced_scorer
from servers.triton.contracts import INSWAPPER_128
from servers.triton.provenance import read_provenance

log = logging.getLogger("orchestrator.pipeline")

# Candidates are kept losslessly (PNG) in the durable store, and come back as the same arrays.
PNG_CODEC: ImageCodec[np.ndarray] = ImageCodec(encode=encode_png, decode=lambda data: decode_image(data, "memo"))


@dataclass
class InpaintOutcome:
    request_id: str
    image: np.ndarray
    mask: MaskRefinement
    ledger: Ledger
    images: Mapping[str, np.ndarray] = field(repr=False)
    timings_s: dict[str, float]
    stand_in_models: list[str]
    degraded: bool
    notes: list[str]


def _triton_standins(config: OrchestratorConfig) -> list[str]:
    if config.triton.repository is None:
        return []
    provenance = read_provenance(config.triton.repository) or []
    return [f"triton:{m.name}" for m in provenance if m.standin]


class InpaintPipeline:
    """Runs tasks; one per process, shared by concurrent requests."""

    def __init__(self, config: OrchestratorConfig, *, gemini_api_key: str | None = None) -> None:
        self.config = config
        self.triton = TritonModels(config.triton)
        self._analyzer: FaceAnalyzer | None = None  # made once Triton answers (it may start after us)
        self.qwen_edit = QwenEditClient(config.qwen_edit)
        self.judge = MoondreamJudge(config.moondream)
        self.gemini = GeminiRealismScorer(config.gemini, api_key=gemini_api_key)
        self.triton_standins = _triton_standins(config)

    async def aclose(self) -> None:
        await self.qwen_edit.aclose()
        await self.gemini.aclose()
        self.judge.close()
        self.triton.close()

    def check_ready(self) -> None:
        """Raise ModelUnavailableError when Triton's face models are not ready (the one hard dependency)."""
        self.triton.check_ready()
        _ = self.analyzer

    async def probe_models(self, wait_s: float = 120.0) -> dict[str, str]:
        """Ask each model server once (a tiny request) what it serves: real weights or a stand-in.

        Doubles as a warm-up. A server that does not answer is reported, not fatal: tasks then run
        degraded until it is back.
        """
        found = {name: "stand-in" for name in self.triton_standins}
        if not self.triton_standins and self.config.triton.repository is not None:
            found["triton"] = "real weights"
        found["qwen_edit"] = await self.qwen_edit.probe(wait_s)
        probe = np.full((32, 32, 3), 128, np.uint8)
        deadline = time.monotonic() + wait_s
        while True:
            parts, standin = await asyncio.to_thread(self.judge.score, [(probe, "warm-up: rate 0 to 10")])
            failed = bool(parts) and parts[0].method == "fallback" and "call failed" in parts[0].reason
            if not failed:
                found["moondream"] = "stand-in" if standin else "real"
                break
            if time.monotonic() > deadline:
                found["moondream"] = f"unavailable ({parts[0].reason})"
                break
            await asyncio.sleep(1.0)
        return found

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            self._analyzer = FaceAnalyzer(self.triton, self.config.detection)
        return self._analyzer

    async def run(
        self, task: Task, on_event: ProgressCallback | None = None, memo: MemoStore | None = None
    ) -> InpaintOutcome:
        """The task; with `memo` (a durable store of this attempt), candidates generated and scores given in an
        earlier run of it (a replica that died) are taken from the store instead of being made again."""
        with task_span(task.request_id) as span:
            return await self._run(task, on_event, memo, span)

    async def _run(
        self, task: Task, on_event: ProgressCallback | None, memo: MemoStore | None, span: trace.Span
    ) -> InpaintOutcome:
        started = time.monotonic()
        config, deadline, request_id = task.config, task.deadline, task.request_id
        images = task.images
        analyzer = self.analyzer.for_request(request_id)  # every Triton call carries the request id
        stage = FaceStage(analyzer, config.face_stage(), standin=bool(self.triton_standins))
        photos, mask = images.identity_photos(), images.mask
        face_span = child_span(span, "inpaint.face_stage")
        try:
            face = await asyncio.to_thread(stage.run, images.init, mask, photos, deadline, task.face, images.reference)
        finally:
            face_span.end()
        face_done = time.monotonic()
        if deadline.expired():
            raise DeadlineExceededError(f"the deadline passed during the face stage ({face_done - started:.1f} s)")

        geometry = TaskGeometry.around(images.init, face.blended, face.mask.mask, config.refinement, config.blend)
        # Its crops and the feather are whole-photo work: built in a worker thread, off the event loop.
        generator = await asyncio.to_thread(QwenEditGenerator, self.qwen_edit, config.refinement, geometry)
        scoring = ScoringTask(
            init=images.init,
            mask=face.mask.mask,
            box=geometry.box,
            character=images.character,
            character_face=replace(face.character, embedding=face.identity),  # every photo's mean identity
            character_crop=face_crop(images.character, face.character),
        )
        # Gemini first: its answer takes longest, so its work is started before the other scorers' (and its
        # realism comes first in the ledger's scores).
        scorers: list[Scorer[np.ndarray]] = [gemini_scorer(self.gemini, geometry.box)] if self.gemini.has_key else []
        scorers += [
            local_scorer(analyzer, scoring, config.detection.crop_input_size),
            moondream_scorer(self.judge, scoring),
        ]
        waits = WaitLog()
        scorers = [replace(s, score=waits.timed("scoring", s.score)) for s in scorers]  # type: ignore[arg-type]
        generate: GenerateFn[np.ndarray] = waits.timed_stream("generation", generator)  # type: ignore[assignment]
        if memo is not None:
            stored = ImagesStored()
            generate = remembered_generate(generate, memo, PNG_CODEC, stored)
            scorers = [remembered_scorer(s, memo, stored) for s in scorers]
        generate = traced_generate(generate, span)
        scorers = [traced_scorer(s, span) for s in scorers]

        result = await run_search(
            SearchRequest(
                request_seed=task.settings.seed,
                raw_swap=face.blended,
                raw_swap_elapsed_s=face_done - started,
                raw_swap_info={
                    "swapper": INSWAPPER_128.triton_name,
                    "stand_in": bool(self.triton_standins),
                    **face.applied,
                },
                config=config.search,
                deadline=deadline,
                request_id=request_id,
            ),
            generate=generate,
            scorers=scorers,
            on_event=traced_events(on_event, span),
        )
        finished = time.monotonic()
        ring_px = config.blend.erosion_px + config.blend.feather_px
        # A distance transform once and a blur and a Lab conversion per candidate around the mask: CPU work kept
        # off the event loop that serves the other tasks' streams and scorers.
        ledger = await asyncio.to_thread(
            with_edge_colour, result.ledger, result.images, images.init, face.mask.mask, ring_px
        )
        stand_ins = list(self.triton_standins)
        if generator.standin:
            stand_ins.append("qwen_edit")
        if any(s.source.endswith("stand-in") for c in ledger.candidates for s in c.scores):
            stand_ins.append("moondream")
        notes = [f"{s.stage} stage skipped: {s.reason}" for s in ledger.skipped]
        notes += [f"{f.stage} stage failed: {f.reason}" for f in ledger.failures]
        fallbacks = sorted(
            {f"{s.signal} ({s.scorer}): {s.reason}" for c in ledger.candidates for s in c.scores if s.fallback}
        )
        notes += [f"fallback {text}" for text in fallbacks]
        if not face.mask.refined:
            notes.append(f"mask not refined: {face.mask.reason}")
        search_s = finished - face_done
        waiting = waits.covered()
        timings = {
            "face": face_done - started,
            "search": search_s,
            # Wall time spent waiting on the Qwen-Edit server, on scorers, and on either (they overlap).
            "generation": waits.covered("generation"),
            "scoring": waits.covered("scoring"),
            "waiting": waiting,
            # The orchestrator's own work during the search: decoding and blending every edited crop
            # (which overlaps the waiting above, so this bounds the latency it adds) plus bookkeeping.
            "overhead": max(search_s - waiting, 0.0) + generator.own_work_s,
            "total": finished - started,
            **{f"face.{k}": v for k, v in face.timings_s.items()},
        }
        return InpaintOutcome(
            request_id=request_id,
            image=result.best_image,
            mask=face.mask,
            ledger=ledger,
            images=result.images,
            timings_s=timings,
            stand_in_models=stand_ins,
            degraded=ledger.degraded or not face.mask.refined,
            notes=notes,
        )
