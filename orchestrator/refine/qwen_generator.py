"""The search's generate function: candidates from the Qwen-Image-Edit server.

One search stage becomes one EditRequest per group of candidates that share an input (all global
refinements edit the raw swap's crop; a parent's noise-neighbourhood children share its seed; a
parent's re-noised children share its image). The edited crops are put back into the init image and
feathered in with the refined mask, so a candidate is always a full image that differs from the init
image only inside the mask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
from inpaint.v1 import qwen_edit_pb2, qwen_edit_pb2_grpc

from orchestrator.imaging.blend import BlendConfig, feather_blend
from orchestrator.imaging.decode import decode_image
from orchestrator.imaging.encode import png_message
from orchestrator.refine.crop import CropBox, extract, put_back
from orchestrator.search import GeneratedImage, GenerationMode, GenerationRequest, StageRequest

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
Candidate = GenerationRequest[np.ndarray]

DEFAULT_PROMPT = (
    "Make the face photorealistic and seamlessly integrated into the photo: match the scene's lighting "
    "direction and softness, colour temperature, skin texture, focus and film grain. Keep the person's "
    "identity, expression and pose exactly as they are."
)
DEFAULT_NEGATIVE_PROMPT = (
    "CGI, 3D render, painting, illustration, cartoon, anime, plastic skin, waxy skin, airbrushed, over-smoothed, "
    "artifacts, seams, halo, blur, low resolution, noise, jpeg artifacts, deformed features, asymmetric eyes, "
    "distorted face, extra teeth, bad anatomy, watermark, text"
)


@dataclass(frozen=True)
class QwenEditSettings:
    """How refinements are asked for. Defaults are the product's (DESIGN section 1)."""

    target: str = "127.0.0.1:50051"
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    num_inference_steps: int = 12
    true_cfg_scale: float = 2.0
    working_size: int = 512  # the square the crop is edited at (a multiple of 16)
    crop_margin: float = 0.35
    send_mask: bool = True  # edit only inside the refined mask (the inpainting pipeline)
    timeout_s: float = 600.0


class EditFailedError(RuntimeError):
    """The Qwen-Edit server could not produce a stage's images; the message says why."""


@dataclass(frozen=True)
class TaskGeometry:
    """What every refinement of one task shares."""

    init: np.ndarray
    raw_swap: np.ndarray  # the raw swap blended into init: candidate g0 and the global stage's input
    mask: np.ndarray  # the refined mask
    box: CropBox
    blend: BlendConfig


class QwenEditGenerator:
    """A `GenerateFn` over the Qwen-Edit server for one task. Use one per request."""

    def __init__(self, channel: grpc.aio.Channel, settings: QwenEditSettings, task: TaskGeometry) -> None:
        self._stub = qwen_edit_pb2_grpc.QwenEditServiceStub(channel)
        self.settings = settings
        self.task = task
        self.standin: bool | None = None  # learnt from the first response
        self.own_work_s = 0.0  # time spent here decoding, putting back and blending edited crops
        size = settings.working_size
        self._raw_crop = extract(task.raw_swap, task.box, size)
        self._mask_crop = (
            png_message(extract(task.mask.astype(np.uint8) * 255, task.box, size)) if settings.send_mask else None
        )

    @staticmethod
    def open_channel(target: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # With a dns:/// target naming a headless Service, spread calls over every replica.
                ("grpc.lb_policy_name", "round_robin"),
            ],
        )

    def _group(
        self, requests: Sequence[GenerationRequest[np.ndarray]]
    ) -> list[tuple[qwen_edit_pb2.EditRequest, list[GenerationRequest[np.ndarray]]]]:
        """One EditRequest per set of candidates with the same input image and noise recipe."""
        groups: dict[tuple[object, ...], list[Candidate]] = {}
        for request in requests:
            if request.mode == GenerationMode.REFINE:
                key: tuple[object, ...] = ("refine",)
            elif request.mode == GenerationMode.NOISE_NEIGHBOURHOOD:
                key = ("neighbourhood", request.parent_seed, request.noise_cosine)
            elif request.mode == GenerationMode.RENOISE:
                key = ("renoise", request.parent_id, request.strength)
            else:
                raise EditFailedError(f"cannot generate a {request.mode} candidate")
            groups.setdefault(key, []).append(request)
        s = self.settings
        edits = []
        for members in groups.values():
            first = members[0]
            if first.mode == GenerationMode.RENOISE:
                assert first.parent_image is not None
                source = extract(first.parent_image, self.task.box, s.working_size)
            else:
                source = self._raw_crop
            edit = qwen_edit_pb2.EditRequest(
                image=png_message(source),
                prompt=s.prompt,
                negative_prompt=s.negative_prompt,
                num_inference_steps=s.num_inference_steps,
                true_cfg_scale=s.true_cfg_scale,
                width=s.working_size,
                height=s.working_size,
                seeds=[m.seed for m in members],
                output_format=qwen_edit_pb2.IMAGE_FORMAT_PNG,
            )
            if self._mask_crop is not None:
                edit.mask.CopyFrom(self._mask_crop)
            if first.mode == GenerationMode.RENOISE:
                assert first.strength is not None
                edit.strength = first.strength
            if first.mode == GenerationMode.NOISE_NEIGHBOURHOOD:
                assert first.parent_seed is not None and first.noise_cosine is not None
                edit.neighbourhood.parent_seed = first.parent_seed
                edit.neighbourhood.parent_weight = first.noise_cosine
            edits.append((edit, members))
        return edits

    def _candidate(self, edited: np.ndarray) -> np.ndarray:
        task = self.task
        return feather_blend(task.init, put_back(task.init, edited, task.box), task.mask, task.blend)

    async def _run(
        self, edit: qwen_edit_pb2.EditRequest, members: list[Candidate], timeout_s: float
    ) -> list[GeneratedImage[np.ndarray]]:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        backoff = 0.5
        while True:
            try:
                response: qwen_edit_pb2.EditResponse = await self._stub.Edit(
                    edit, timeout=max(deadline - time.monotonic(), 0.001)
                )
                break
            except grpc.aio.AioRpcError as error:
                # A full queue (several searches at once) is worth waiting out while time remains.
                busy = error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                if not busy or time.monotonic() + backoff >= deadline:
                    raise EditFailedError(f"qwen-edit {error.code().name}: {error.details()}") from error
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 8.0)
        self.standin = response.stand_in
        elapsed = time.perf_counter() - started
        by_seed = {image.seed: image for image in response.images}
        out = []
        for member in members:
            edited = by_seed.get(member.seed)
            if edited is None:
                raise EditFailedError(f"qwen-edit returned no image for seed {member.seed}")
            work_started = time.perf_counter()
            candidate = await asyncio.to_thread(self._candidate, decode_image(edited.image.data, "qwen_edit response"))
            self.own_work_s += time.perf_counter() - work_started
            out.append(
                GeneratedImage(
                    candidate_id=member.candidate_id,
                    image=candidate,
                    elapsed_s=elapsed / len(members),
                    info={
                        "model": response.model,
                        "pipeline": response.pipeline,
                        "stand_in": response.stand_in,
                        "steps": response.denoising_steps,
                        "true_cfg_scale": edit.true_cfg_scale,
                        "noise_cosine_to_parent": round(edited.noise_cosine_to_parent, 4),
                    },
                )
            )
        return out

    async def __call__(self, stage: StageRequest[np.ndarray]) -> AsyncIterator[GeneratedImage[np.ndarray]]:
        timeout = (
            self.settings.timeout_s
            if stage.time_remaining_s is None
            else min(self.settings.timeout_s, stage.time_remaining_s)
        )
        if timeout <= 0:
            raise EditFailedError("no time left for the stage")
        tasks = [
            asyncio.ensure_future(self._run(edit, members, timeout)) for edit, members in self._group(stage.requests)
        ]
        failures: list[str] = []
        try:
            for finished in asyncio.as_completed(tasks):
                try:
                    images = await finished
                except EditFailedError as error:
                    failures.append(str(error))  # the other groups may still succeed: keep going
                    continue
                for image in images:
                    yield image
        finally:
            for task in tasks:
                task.cancel()
        if failures:
            # The search records the candidates that never came, with this reason.
            raise EditFailedError("; ".join(sorted(set(failures))))
