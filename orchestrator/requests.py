"""The request boundary: one parse step from a public `InpaintRequest` to a validated `Task`.

    task = parse_request(request, config, store, time_remaining_s=context.time_remaining())

Everything a request can get wrong is found here and raised as InvalidInputError naming the field:
the request id, the images (inline or from the task store), the per-request settings (bounds from
`orchestrator.config.OVERRIDES`). The task carries the configuration with its overrides applied and
the one deadline every later step uses.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field

import numpy as np
from inpaint.v1 import inpaint_pb2

from orchestrator.config import OVERRIDES, OrchestratorConfig, RequestSettings
from orchestrator.errors import InvalidInputError
from orchestrator.imaging.decode import decode_image, decode_mask
from orchestrator.search import Deadline
from orchestrator.tasks import TaskStore

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class TaskImages:
    init: np.ndarray = field(repr=False)  # RGB uint8 (H, W, 3)
    mask: np.ndarray = field(repr=False)  # bool (H, W), the given mask
    character: np.ndarray = field(repr=False)  # RGB uint8


@dataclass(frozen=True)
class Task:
    """A validated request, ready to run."""

    request_id: str
    images: TaskImages
    settings: RequestSettings
    config: OrchestratorConfig  # the service's, with this request's overrides applied
    deadline: Deadline  # when the search must answer (the caller's deadline less a margin)
    return_candidate_images: bool = False


def check_request_id(request_id: str) -> None:
    if request_id and not REQUEST_ID.fullmatch(request_id):
        shown = request_id if len(request_id) <= 40 else f"{request_id[:40]}... ({len(request_id)} characters)"
        raise InvalidInputError("request_id", f"must be 1-128 letters, digits, '.', '-' or '_', got {shown!r}")


def fingerprint(request: inpaint_pb2.InpaintRequest) -> str:
    """What a request asks for, without its id: a replayed id must carry the same request."""
    copy = inpaint_pb2.InpaintRequest()
    copy.CopyFrom(request)
    copy.request_id = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def request_settings(settings: inpaint_pb2.SearchSettings) -> RequestSettings:
    """The request's overrides, each checked against its bounds (InvalidInputError names the field)."""
    values = {o.name: getattr(settings, o.name) for o in OVERRIDES if settings.HasField(o.name)}
    return RequestSettings.checked(values, seed=settings.seed if settings.HasField("seed") else 0)


def decode_images(init: bytes, mask: bytes, character: bytes, max_pixels: int) -> TaskImages:
    """Decode the three images; InvalidInputError names the field that is wrong."""
    init_rgb = decode_image(init, "init_image", max_pixels)
    return TaskImages(
        init=init_rgb,
        mask=decode_mask(mask, "mask", init_rgb.shape[:2], max_pixels),
        character=decode_image(character, "character_image", max_pixels),
    )


def _image_bytes(request: inpaint_pb2.InpaintRequest, store: TaskStore) -> tuple[bytes, bytes, bytes]:
    which = request.WhichOneof("task")
    if which == "task_id":
        return store.find(request.task_id).read()
    if which == "images":
        images = request.images
        for name in ("init_image", "mask", "character_image"):
            if not images.HasField(name):
                raise InvalidInputError(f"images.{name}", "is required")
        return images.init_image.data, images.mask.data, images.character_image.data
    raise InvalidInputError("task", "give either images or task_id")


def task_deadline(config: OrchestratorConfig, time_remaining_s: float | None) -> Deadline:
    """The caller's deadline (or the default) less a margin for blending, encoding and the reply."""
    budget = config.default_deadline_s if time_remaining_s is None else time_remaining_s
    margin = min(max(1.0, 0.05 * budget), config.deadline_margin_s)
    return Deadline.after(budget - margin)


def parse_settings(request: inpaint_pb2.InpaintRequest) -> tuple[str, RequestSettings]:
    """The cheap part of parsing (no image decoded): the request id and the settings."""
    check_request_id(request.request_id)
    return request.request_id or uuid.uuid4().hex, request_settings(request.settings)


def parse_request(
    request: inpaint_pb2.InpaintRequest,
    config: OrchestratorConfig,
    store: TaskStore,
    time_remaining_s: float | None = None,
) -> Task:
    """The validated task (blocking: decodes images; run it in a worker thread)."""
    request_id, settings = parse_settings(request)
    task_config = settings.apply(config)
    images = decode_images(*_image_bytes(request, store), max_pixels=config.max_image_pixels)
    return Task(
        request_id=request_id,
        images=images,
        settings=settings,
        config=task_config,
        deadline=task_deadline(config, time_remaining_s),
        return_candidate_images=request.return_candidate_images,
    )
