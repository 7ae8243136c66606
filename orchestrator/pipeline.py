"""One inpainting task from images to result: face stage, EACPS search, blend, ledger.

    outcome = await pipeline.run(task, RequestSettings(seed=0), request_id="r1", deadline_s=600)

The pipeline owns the long-lived model clients (Triton, the Qwen-Edit and Moondream channels, the
Gemini SDK client) and builds the per-task generate and score functions the search is given. It
raises the domain errors of `orchestrator.errors`; a down Qwen-Edit server, Moondream server or
Gemini does not fail the task but degrades it, and the outcome says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import grpc
import numpy as np
from inpaint.v1 import qwen_edit_pb2, qwen_edit_pb2_grpc

from orchestrator.config import OrchestratorConfig, RequestSettings
from orchestrator.errors import DeadlineExceededError
from orchestrator.faces.analysis import FaceAnalyzer
from orchestrator.faces.stage import FaceStage
from orchestrator.faces.triton_client import TritonModels, request_deadline
from orchestrator.imaging.decode import decode_image, decode_mask
from orchestrator.imaging.encode import png_message
from orchestrator.imaging.masks import MaskRefinement
from orchestrator.refine.crop import crop_box
from orchestrator.refine.qwen_generator import QwenEditGenerator, TaskGeometry
from orchestrator.scoring.gemini import GeminiRealismScorer
from orchestrator.scoring.moondream_client import MoondreamJudge
from orchestrator.scoring.search_scorers import ScoringTask, face_crop, gemini_scorer, local_scorer, moondream_scorer
from orchestrator.search import Ledger, ProgressCallback, Scorer, SearchRequest, run_search
from orchestrator.timing import WaitLog
from tools.models.prepare import read_provenance

log = logging.getLogger("orchestrator.pipeline")


@dataclass(frozen=True)
class TaskInput:
    init: np.ndarray
    mask: np.ndarray
    character: np.ndarray


def decode_task(init: bytes, mask: bytes, character: bytes, max_pixels: int) -> TaskInput:
    """Decode the three images; InvalidInputError names the field that is wrong."""
    init_rgb = decode_image(init, "init_image", max_pixels)
    return TaskInput(
        init=init_rgb,
        mask=decode_mask(mask, "mask", init_rgb.shape[:2], max_pixels),
        character=decode_image(character, "character_image", max_pixels),
    )


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
    if config.triton_repository is None:
        return []
    provenance = read_provenance(config.triton_repository) or []
    return [f"triton:{m.name}" for m in provenance if m.standin]


class InpaintPipeline:
    """Runs tasks; one per process, shared by concurrent requests."""

    def __init__(self, config: OrchestratorConfig, *, gemini_api_key: str | None = None) -> None:
        self.config = config
        self.triton = TritonModels(config.triton_config())
        self._analyzer: FaceAnalyzer | None = None  # made once Triton answers (it may start after us)
        self.judge = (
            MoondreamJudge(config.moondream_target, timeout_s=config.moondream_timeout_s)
            if config.moondream_target
            else None
        )
        self.gemini = GeminiRealismScorer(config.gemini_config(), api_key=gemini_api_key)
        self.triton_standins = _triton_standins(config)
        self._qwen_channel: grpc.aio.Channel | None = None

    def _channel(self) -> grpc.aio.Channel:
        if self._qwen_channel is None:
            self._qwen_channel = QwenEditGenerator.open_channel(self.config.qwen_edit_target)
        return self._qwen_channel

    async def aclose(self) -> None:
        if self._qwen_channel is not None:
            await self._qwen_channel.close()
        await self.gemini.aclose()
        if self.judge is not None:
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
        if not self.triton_standins and self.config.triton_repository is not None:
            found["triton"] = "real weights"
        probe = np.full((32, 32, 3), 128, np.uint8)
        deadline = time.monotonic() + wait_s
        edit = qwen_edit_pb2.EditRequest(
            image=png_message(probe), prompt="warm-up", num_inference_steps=1, true_cfg_scale=1.0,
            width=32, height=32, seeds=[0],
        )  # fmt: skip
        stub = qwen_edit_pb2_grpc.QwenEditServiceStub(self._channel())
        while True:  # a model server may still be loading: UNAVAILABLE until it is ready
            try:
                answer = await stub.Edit(edit, timeout=120)
                found["qwen_edit"] = f"stand-in ({answer.model})" if answer.stand_in else f"real ({answer.model})"
                break
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    found["qwen_edit"] = f"unavailable ({error.code().name})"
                    break
                await asyncio.sleep(1.0)
        while self.judge is not None:
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
            self._analyzer = FaceAnalyzer(self.triton, self.config.face_stage_config().detection)
        return self._analyzer

    async def run(
        self,
        task: TaskInput,
        settings: RequestSettings | None = None,
        *,
        request_id: str,
        deadline_s: float | None = None,
        on_event: ProgressCallback | None = None,
    ) -> InpaintOutcome:
        started = time.monotonic()
        settings = settings or RequestSettings()
        config = settings.apply(self.config)
        budget = deadline_s if deadline_s is not None else config.default_deadline_s
        # The search must answer (with the best so far) before the caller gives up: keep a margin
        # for blending, encoding and the response's trip back.
        deadline = started + budget - min(max(1.0, 0.05 * budget), 30.0)

        with request_deadline(deadline):
            return await self._run(task, settings, config, request_id, started, deadline, on_event)

    async def _run(
        self,
        task: TaskInput,
        settings: RequestSettings,
        config: OrchestratorConfig,
        request_id: str,
        started: float,
        deadline: float,
        on_event: ProgressCallback | None,
    ) -> InpaintOutcome:
        search_config = config.search_config()
        stage = FaceStage(self.analyzer, config.face_stage_config(), standin=bool(self.triton_standins))
        face = await asyncio.to_thread(stage.run, task.init, task.mask, task.character)
        face_done = time.monotonic()
        if face_done >= deadline:
            raise DeadlineExceededError(f"the deadline passed during the face stage ({face_done - started:.1f} s)")

        box = crop_box(face.mask.mask, config.crop_margin)
        generator = QwenEditGenerator(
            self._channel(),
            config.qwen_settings(),
            TaskGeometry(task.init, face.blended, face.mask.mask, box, config.face_stage_config().blend),
        )
        scoring = ScoringTask(
            init=task.init,
            mask=face.mask.mask,
            box=box,
            character=task.character,
            character_face=face.character,
            character_crop=face_crop(task.character, face.character),
        )
        scorers: list[Scorer[np.ndarray]] = [local_scorer(self.analyzer, scoring)]
        if self.judge is not None:
            scorers.append(moondream_scorer(self.judge, scoring))
        if self.gemini.has_key:
            scorers.append(gemini_scorer(self.gemini, request_id))
        waits = WaitLog()
        scorers = [replace(s, score=waits.timed("scoring", s.score)) for s in scorers]  # type: ignore[arg-type]

        result = await run_search(
            SearchRequest(
                request_seed=settings.seed,
                raw_swap=face.blended,
                raw_swap_elapsed_s=face_done - started,
                raw_swap_info={"swapper": "inswapper_128", "stand_in": bool(self.triton_standins)},
                config=search_config,
                deadline=deadline,
                request_id=request_id,
            ),
            generate=waits.timed_stream("generation", generator),  # type: ignore[arg-type]
            scorers=scorers,
            on_event=on_event,
        )
        finished = time.monotonic()
        ledger = result.ledger
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
