"""The search's generate function: candidates from the Qwen-Image-Edit server.

One search stage becomes one EditRequest per group of candidates that share an input (all global
refinements edit the raw swap's crop; a parent's noise-neighbourhood children share its seed; a
parent's re-noised children share its image); the client splits a group larger than the server takes.
Crops are edited at their own size (see `orchestrator.refine.crop`); the edited crops are put back
into the init image and feathered in with the refined mask, so a candidate is always a full image that
differs from the init image only inside the mask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Ge, Gt, Le
from inpaint.v1 import qwen_edit_pb2

from orchestrator.imaging.blend import BlendConfig, Feather
from orchestrator.imaging.decode import decode_image
from orchestrator.imaging.encode import png_message
from orchestrator.refine.crop import CropBox, crop_box, edit_size, extract, fit_box, put_back
from orchestrator.refine.qwen_client import EditFailedError, QwenEditClient
from orchestrator.search import GeneratedImage, GenerationMode, GenerationRequest, StageRequest

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
class RefinementConfig:
    """How refinements are asked for; the defaults are the product's (12 steps, true CFG 2.0).

    Attributes:
        num_inference_steps: denoising steps; at most the Qwen-Edit server's `max_steps`.
        true_cfg_scale: classifier-free guidance (runs only above 1, with the negative prompt).
        min_edit_size, max_edit_size: the range of sides a crop is edited at; a crop inside it is edited
            at its own size (rounded to `size_multiple`), one outside is resized to the nearest end.
        size_multiple: what the model needs the side to be a multiple of (VAE factor 8 x 2x2 patches).
        crop_margin: context around the mask's bounding box, as a fraction of its side.
        send_mask: edit only inside the refined mask (the server's inpainting path).
    """

    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    num_inference_steps: Annotated[int, Ge(1)] = 12
    true_cfg_scale: Annotated[float, Ge(1.0)] = 2.0
    min_edit_size: Annotated[int, Ge(16)] = 512
    max_edit_size: Annotated[int, Ge(16)] = 1024
    size_multiple: Annotated[int, Ge(1)] = 16
    crop_margin: Annotated[float, Ge(0.0), Le(2.0)] = 0.35
    send_mask: bool = True

    def __post_init__(self) -> None:
        if self.max_edit_size < self.min_edit_size:
            raise ValueError(f"max_edit_size: must be at least min_edit_size ({self.min_edit_size})")


@dataclass(frozen=True)
class TaskGeometry:
    """What every refinement of one task shares: where the crop is and the size it is edited at."""

    init: np.ndarray
    raw_swap: np.ndarray  # the raw swap blended into init: candidate g0 and the global stage's input
    mask: np.ndarray  # the refined mask
    box: CropBox
    size: Annotated[int, Gt(0)]  # the side the crop is edited at
    blend: BlendConfig

    @classmethod
    def around(
        cls, init: np.ndarray, raw_swap: np.ndarray, mask: np.ndarray, config: RefinementConfig, blend: BlendConfig
    ) -> TaskGeometry:
        """The crop around the mask, fitted to the size the model edits it at (no resampling when it fits)."""
        box = crop_box(mask, config.crop_margin)
        size = edit_size(box.width, config.min_edit_size, config.max_edit_size, config.size_multiple)
        box = fit_box(box, size, mask.shape[:2])
        return cls(init, raw_swap, mask, box, size, blend)


class QwenEditGenerator:
    """A `GenerateFn` over the Qwen-Edit server for one task. Use one per request."""

    def __init__(self, client: QwenEditClient, settings: RefinementConfig, task: TaskGeometry) -> None:
        self.client = client
        self.settings = settings
        self.task = task
        self.standin: bool | None = None  # learnt from the first response
        self.own_work_s = 0.0  # time spent here decoding, putting back and blending edited crops
        self._raw_crop = extract(task.raw_swap, task.box, task.size)
        self._feather = Feather.of(task.mask, task.blend)  # the same for every candidate of the task
        self._mask_crop = (
            png_message(extract(task.mask.astype(np.uint8) * 255, task.box, task.size)) if settings.send_mask else None
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
                source = extract(first.parent_image, self.task.box, self.task.size)
            else:
                source = self._raw_crop
            edit = qwen_edit_pb2.EditRequest(
                image=png_message(source),
                prompt=s.prompt,
                negative_prompt=s.negative_prompt,
                num_inference_steps=s.num_inference_steps,
                true_cfg_scale=s.true_cfg_scale,
                width=self.task.size,
                height=self.task.size,
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

    def _candidate(self, encoded: bytes) -> np.ndarray:
        task = self.task
        edited = decode_image(encoded, "qwen_edit response")
        return self._feather.apply(task.init, put_back(task.init, edited, task.box))

    async def _edit(
        self, edit: qwen_edit_pb2.EditRequest, stage: StageRequest[np.ndarray]
    ) -> tuple[qwen_edit_pb2.EditResponse, float]:
        """One group's response and how long the server took."""
        started = time.perf_counter()
        response = await self.client.edit(edit, stage.deadline, stage.request_id)
        self.standin = response.stand_in
        return response, time.perf_counter() - started

    async def _candidates(
        self,
        edit: qwen_edit_pb2.EditRequest,
        members: list[Candidate],
        response: qwen_edit_pb2.EditResponse,
        elapsed: float,
    ) -> AsyncIterator[GeneratedImage[np.ndarray]]:
        """A group's candidates, each put back and blended, and handed on as soon as it is."""
        by_seed = {image.seed: image for image in response.images}
        for member in members:
            edited = by_seed.get(member.seed)
            if edited is None:
                raise EditFailedError(f"qwen-edit returned no image for seed {member.seed}")
            work_started = time.perf_counter()
            candidate = await asyncio.to_thread(self._candidate, edited.image.data)
            self.own_work_s += time.perf_counter() - work_started
            yield GeneratedImage(
                candidate_id=member.candidate_id,
                image=candidate,
                elapsed_s=elapsed / len(members),
                info={
                    "model": response.model,
                    "pipeline": response.pipeline,
                    "stand_in": response.stand_in,
                    "steps": response.denoising_steps,
                    "true_cfg_scale": edit.true_cfg_scale,
                    "edit_size": self.task.size,
                    "condition_size": f"{response.condition_width}x{response.condition_height}",
                    # A few-step LoRA changes what the steps mean: the ledger says which one served.
                    "lora": f"{response.lora.name} (scale {response.lora.scale:g})"
                    if response.HasField("lora") and response.lora.name
                    else "none",
                    "noise_cosine_to_parent": round(edited.noise_cosine_to_parent, 4),
                },
            )

    async def __call__(self, stage: StageRequest[np.ndarray]) -> AsyncIterator[GeneratedImage[np.ndarray]]:
        if stage.deadline.expired():
            raise EditFailedError("no time left for the stage")
        groups = self._group(stage.requests)
        pending = {asyncio.ensure_future(self._edit(edit, stage)): (edit, members) for edit, members in groups}
        failures: list[str] = []
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    edit, members = pending.pop(finished)
                    try:
                        response, elapsed = finished.result()
                        async for image in self._candidates(edit, members, response, elapsed):
                            yield image
                    except EditFailedError as error:
                        failures.append(str(error))  # the other groups may still succeed: keep going
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)  # retrieved, so none is reported as lost
        if failures:
            # The search records the candidates that never came, with this reason.
            raise EditFailedError("; ".join(sorted(set(failures))))
