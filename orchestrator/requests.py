"""The request boundary: one parse step from a public `InpaintRequest` to a validated `Task`.

    task = parse_request(request, config, store, time_remaining_s=context.time_remaining())

Everything a request can get wrong is found here and raised as InvalidInputError naming the field:
the request id, the images (inline or from the task store), the per-request settings (bounds from
`orchestrator.config.OVERRIDES`). The task carries the configuration with its overrides applied and
the one deadline every later step uses.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import numpy as np
from inpaint.v1 import inpaint_pb2

from orchestrator.config import OVERRIDES, OrchestratorConfig, RequestSettings
from orchestrator.errors import InvalidInputError
from orchestrator.faces.options import SWAP_SIZES, FaceDefaults, FaceOptions, TargetChoice
from orchestrator.imaging.decode import DEFAULT_MIN_SIDE, decode_image, decode_mask
from orchestrator.search import Deadline
from orchestrator.tasks import TaskStore

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class TaskImages:
    init: np.ndarray = field(repr=False)  # RGB uint8 (H, W, 3)
    mask: np.ndarray | None = field(repr=False)  # bool (H, W), the given mask; None: build it from the face
    character: np.ndarray = field(repr=False)  # RGB uint8, the main (first) photo of the identity
    # Every photo of the identity (the main one first) when the request listed `character_images`;
    # empty when it gave the single `character_image`.
    characters: tuple[np.ndarray, ...] = field(default=(), repr=False)
    reference: np.ndarray | None = field(default=None, repr=False)  # `images.reference_face`, RGB uint8

    def identity_photos(self) -> np.ndarray | tuple[np.ndarray, ...]:
        """What the face stage takes: the one photo, or the listed photos (errors then name list items)."""
        return self.characters or self.character


@dataclass(frozen=True)
class Task:
    """A validated request, ready to run."""

    request_id: str
    images: TaskImages
    settings: RequestSettings
    config: OrchestratorConfig  # the service's, with this request's overrides applied
    deadline: Deadline  # when the search must answer (the caller's deadline less a margin)
    return_candidate_images: bool = False
    face: FaceOptions = field(default_factory=FaceOptions)  # the face stage's choices, defaults filled in


def check_request_id(request_id: str) -> None:
    if request_id and not REQUEST_ID.fullmatch(request_id):
        shown = request_id if len(request_id) <= 40 else f"{request_id[:40]}... ({len(request_id)} characters)"
        raise InvalidInputError("request_id", f"must be 1-128 letters, digits, '.', '-' or '_', got {shown!r}")


def request_settings(settings: inpaint_pb2.SearchSettings) -> RequestSettings:
    """The request's overrides, each checked against its bounds (InvalidInputError names the field)."""
    values = {o.name: getattr(settings, o.name) for o in OVERRIDES if settings.HasField(o.name)}
    return RequestSettings.checked(values, seed=settings.seed if settings.HasField("seed") else 0)


def decode_images(
    init: bytes,
    mask: bytes | None,
    character: bytes | None,
    max_pixels: int,
    characters: tuple[bytes, ...] = (),
    reference: bytes | None = None,
    min_side: int = DEFAULT_MIN_SIDE,
) -> TaskImages:
    """Decode the images; InvalidInputError names the field that is wrong.

    `character` is the single `character_image`; `characters` the listed `character_images` (one of the two).
    """
    init_rgb = decode_image(init, "init_image", max_pixels, min_side)
    photos = tuple(
        decode_image(data, f"images.character_images[{i}]", max_pixels, min_side) for i, data in enumerate(characters)
    )
    if character is None and not photos:
        raise InvalidInputError("images.character_image", "is required (or images.character_images)")
    return TaskImages(
        init=init_rgb,
        mask=None if mask is None else decode_mask(mask, "mask", init_rgb.shape[:2], max_pixels),
        character=photos[0] if photos else decode_image(character or b"", "character_image", max_pixels, min_side),
        characters=photos,
        reference=None if reference is None else decode_image(reference, "images.reference_face", max_pixels, min_side),
    )


@dataclass(frozen=True)
class ImageBytes:
    init: bytes
    mask: bytes | None
    character: bytes | None
    characters: tuple[bytes, ...] = ()
    reference: bytes | None = None


def _image_bytes(request: inpaint_pb2.InpaintRequest, store: TaskStore, max_characters: int) -> ImageBytes:
    which = request.WhichOneof("task")
    if which == "task_id":
        return ImageBytes(*store.find(request.task_id).read())
    if which == "images":
        images = request.images
        if not images.HasField("init_image"):
            raise InvalidInputError("images.init_image", "is required")
        listed = tuple(photo.data for photo in images.character_images)
        if images.HasField("character_image") and listed:
            raise InvalidInputError("images.character_images", "give either character_image or character_images")
        if not images.HasField("character_image") and not listed:
            raise InvalidInputError("images.character_image", "is required (or images.character_images)")
        if len(listed) > max_characters:
            raise InvalidInputError(
                "images.character_images", f"holds {len(listed)} photos, at most {max_characters} are allowed"
            )
        return ImageBytes(
            init=images.init_image.data,
            mask=images.mask.data if images.HasField("mask") else None,
            character=images.character_image.data if images.HasField("character_image") else None,
            characters=listed,
            reference=images.reference_face.data if images.HasField("reference_face") else None,
        )
    raise InvalidInputError("task", "give either images or task_id")


_TARGETS = {
    inpaint_pb2.FACE_TARGET_UNSPECIFIED: TargetChoice.AUTO,
    inpaint_pb2.FACE_TARGET_MASK_OVERLAP: TargetChoice.MASK_OVERLAP,
    inpaint_pb2.FACE_TARGET_INDEX: TargetChoice.INDEX,
    inpaint_pb2.FACE_TARGET_LARGEST: TargetChoice.LARGEST,
    inpaint_pb2.FACE_TARGET_REFERENCE: TargetChoice.REFERENCE,
}


def _cosine(settings: inpaint_pb2.FaceSettings, name: str, default: float) -> float:
    if not settings.HasField(name):
        return default
    value = float(getattr(settings, name))
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise InvalidInputError(f"face.{name}", f"must be within 0..1, got {value:g}")
    return value


def face_options(settings: inpaint_pb2.FaceSettings, defaults: FaceDefaults) -> FaceOptions:
    """The request's face-stage choices, each checked (InvalidInputError names the field)."""
    if settings.target not in _TARGETS:
        raise InvalidInputError("face.target", f"is not a known FaceTarget ({settings.target})")
    target = _TARGETS[settings.target]
    index = settings.target_index if settings.HasField("target_index") else None
    if target is TargetChoice.INDEX and index is None:
        raise InvalidInputError("face.target_index", "is required with target FACE_TARGET_INDEX")
    if target is not TargetChoice.INDEX and index is not None:
        raise InvalidInputError("face.target_index", "is read only with target FACE_TARGET_INDEX")
    swap_size = settings.swap_size if settings.HasField("swap_size") else defaults.swap_size
    if swap_size not in SWAP_SIZES:
        raise InvalidInputError("face.swap_size", f"must be one of {', '.join(map(str, SWAP_SIZES))}, got {swap_size}")
    return FaceOptions(
        target=target,
        target_index=index,
        min_identity_cosine=_cosine(settings, "min_identity_cosine", defaults.min_identity_cosine),
        min_reference_cosine=_cosine(settings, "min_reference_cosine", defaults.min_reference_cosine),
        colour_match=settings.colour_match if settings.HasField("colour_match") else defaults.colour_match,
        swap_size=swap_size,
    )


def check_face_inputs(options: FaceOptions, images: TaskImages) -> None:
    """What the chosen target needs from the images."""
    if options.target is TargetChoice.MASK_OVERLAP and images.mask is None:
        raise InvalidInputError("images.mask", "is required with target FACE_TARGET_MASK_OVERLAP")
    if options.target is TargetChoice.REFERENCE and images.reference is None:
        raise InvalidInputError("images.reference_face", "is required with target FACE_TARGET_REFERENCE")


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
    defaults = task_config.face_stage().faces
    face = face_options(request.face, defaults)
    found = _image_bytes(request, store, defaults.max_character_images)
    images = decode_images(
        found.init,
        found.mask,
        found.character,
        max_pixels=config.max_image_pixels,
        characters=found.characters,
        reference=found.reference,
        min_side=config.min_image_side,
    )
    check_face_inputs(face, images)
    return Task(
        request_id=request_id,
        images=images,
        settings=settings,
        config=task_config,
        deadline=task_deadline(config, time_remaining_s),
        return_candidate_images=request.return_candidate_images,
        face=face,
    )
