"""The gRPC face of the adapter: validate and decode a request, queue the work, encode the response."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Protocol

import grpc.aio
from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from servers.common.cancellation import CancelToken
from servers.common.errors import InvalidArgument
from servers.common.images import decode_image, encode_image
from servers.common.server import ModelServer, token_for
from servers.qwen_edit.config import QwenEditConfig
from servers.qwen_edit.jobs import (
    DEFAULT_STEPS,
    DEFAULT_TRUE_CFG_SCALE,
    EditJob,
    EditResult,
    LoraUsed,
    NoiseNeighbourhood,
    SizeRule,
)

SERVICE_NAME: str = qwen_edit_pb2.DESCRIPTOR.services_by_name["QwenEditService"].full_name
MAX_TRUE_CFG_SCALE = 20.0
FORMAT_NAMES = {
    qwen_edit_pb2.IMAGE_FORMAT_UNSPECIFIED: "PNG",
    qwen_edit_pb2.IMAGE_FORMAT_PNG: "PNG",
    qwen_edit_pb2.IMAGE_FORMAT_JPEG: "JPEG",
    qwen_edit_pb2.IMAGE_FORMAT_WEBP: "WEBP",
}


class EditModel(Protocol):
    """What the servicer needs of the adapter (servers.qwen_edit.adapter.QwenEditModel)."""

    name: str
    stand_in: bool
    max_batch: int
    lora: LoraUsed | None

    @property
    def size_rule(self) -> SizeRule: ...

    def edit(self, job: EditJob, token: CancelToken | None = None) -> EditResult: ...


def _check_range(
    field: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or below or above:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidArgument(field, f"must be in {interval}, got {value:g}")


def job_from_request(
    request: qwen_edit_pb2.EditRequest, config: QwenEditConfig, size_rule: SizeRule | None = None
) -> EditJob:
    """Validate every field and decode the images; InvalidArgument names the first bad field. With the
    model's `size_rule`, a width or height it cannot generate is refused here, before any queueing."""
    if not request.HasField("image"):
        raise InvalidArgument("image", "is required")
    image = decode_image(request.image.data, request.image.mime_type, "image", config.max_input_pixels)
    mask: Image.Image | None = None
    if request.HasField("mask"):
        mask = decode_image(request.mask.data, request.mask.mime_type, "mask", config.max_input_pixels)
        if mask.size != image.size:
            raise InvalidArgument("mask", f"is {mask.width}x{mask.height} but image is {image.width}x{image.height}")
        mask = mask.convert("L").point(lambda v: 255 if v > 0 else 0)
        if mask.getbbox() is None:
            raise InvalidArgument("mask", "is empty (all zero): nothing may change")
    if not request.prompt.strip():
        raise InvalidArgument("prompt", "is required")
    steps = request.num_inference_steps or DEFAULT_STEPS
    if steps > config.max_steps:
        raise InvalidArgument("num_inference_steps", f"must be in [1, {config.max_steps}], got {steps}")
    cfg = request.true_cfg_scale if request.HasField("true_cfg_scale") else DEFAULT_TRUE_CFG_SCALE
    _check_range("true_cfg_scale", cfg, 1.0, MAX_TRUE_CFG_SCALE)
    for name in ("width", "height"):
        value = getattr(request, name)
        if value > config.max_output_side:
            raise InvalidArgument(name, f"must be at most {config.max_output_side}, got {value}")
        if value and size_rule is not None:
            size_rule.check(name, value)
    if not request.seeds:
        raise InvalidArgument("seeds", "at least one seed is required (one output per seed)")
    if len(request.seeds) > config.max_seeds:
        raise InvalidArgument("seeds", f"at most {config.max_seeds} seeds per request, got {len(request.seeds)}")
    strength: float | None = None
    if request.HasField("strength"):
        strength = request.strength
        _check_range("strength", strength, 0.0, 1.0, low_open=True)
    neighbourhood: NoiseNeighbourhood | None = None
    if request.HasField("neighbourhood"):
        weight = request.neighbourhood.parent_weight
        _check_range("neighbourhood.parent_weight", weight, 0.0, 1.0, high_open=True)
        neighbourhood = NoiseNeighbourhood(request.neighbourhood.parent_seed, weight)
    if request.output_format not in FORMAT_NAMES:
        raise InvalidArgument("output_format", f"unknown value {request.output_format}")
    return EditJob(
        image=image,
        mask=mask,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        num_inference_steps=steps,
        true_cfg_scale=cfg,
        width=request.width or None,
        height=request.height or None,
        seeds=tuple(request.seeds),
        strength=strength,
        neighbourhood=neighbourhood,
    )


def response_from_result(result: EditResult, model: EditModel, image_format: str) -> qwen_edit_pb2.EditResponse:
    images = []
    for output in result.outputs:
        data, mime = encode_image(output.image, image_format)
        images.append(
            qwen_edit_pb2.EditedImage(
                image=image_pb2.Image(data=data, mime_type=mime),
                seed=output.seed,
                batch_seconds=output.batch_seconds,
                batch_size=output.batch_size,
                noise_cosine_to_parent=output.noise_cosine_to_parent,
            )
        )
    return qwen_edit_pb2.EditResponse(
        images=images,
        stand_in=model.stand_in,
        model=model.name,
        pipeline=result.pipeline,
        prompt_encoding_seconds=result.prompt_encoding_seconds,
        total_seconds=result.total_seconds,
        denoising_steps=result.denoising_steps,
        seconds_per_step=result.seconds_per_step,
        lora=(
            qwen_edit_pb2.LoraInfo(name=model.lora.name, path=str(model.lora.path), scale=model.lora.scale)
            if model.lora is not None
            else None
        ),
        condition_width=result.condition_size[0],
        condition_height=result.condition_size[1],
    )


class QwenEditServicer(qwen_edit_pb2_grpc.QwenEditServiceServicer):
    def __init__(self, server: ModelServer, model: EditModel, config: QwenEditConfig) -> None:
        self.server = server
        self.model = model
        self.config = config

    async def Edit(
        self, request: qwen_edit_pb2.EditRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> qwen_edit_pb2.EditResponse:
        self.server.require_ready()
        token = token_for(context)
        job = await asyncio.to_thread(job_from_request, request, self.config, self.model.size_rule)
        image_format = FORMAT_NAMES[request.output_format]

        def work() -> qwen_edit_pb2.EditResponse:
            result = self.model.edit(job, token)
            return response_from_result(result, self.model, image_format)

        seeds = len(job.seeds)
        for start in range(0, seeds, self.model.max_batch):
            self.server.metrics.batch_size.observe(min(self.model.max_batch, seeds - start))
        response: qwen_edit_pb2.EditResponse = await self.server.work.run(work, token)
        return response
