"""Every invalid field gets INVALID_ARGUMENT with a message that starts with the field's name."""

from __future__ import annotations

import io
from typing import Any

import grpc
import numpy as np
import pytest
from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from tests.qwen_edit.conftest import MAX_SEEDS, MAX_STEPS, edit_request, encode, photo, rpc_error


def _mask_png(height: int, width: int) -> image_pb2.Image:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), 255, dtype=np.uint8)).save(buffer, format="PNG")
    return image_pb2.Image(data=buffer.getvalue(), mime_type="image/png")


def _gif() -> image_pb2.Image:
    buffer = io.BytesIO()
    Image.fromarray(photo()).save(buffer, format="GIF")
    return image_pb2.Image(data=buffer.getvalue())


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("image", {"image": None}),
    ("image.data", {"image": image_pb2.Image(data=b"", mime_type="image/png")}),
    ("image.data", {"image": image_pb2.Image(data=b"not an image at all", mime_type="image/png")}),
    ("image.data", {"image": _gif()}),
    ("image.data", {"image": image_pb2.Image(data=encode(photo()).data[:200], mime_type="image/png")}),
    ("image.mime_type", {"image": image_pb2.Image(data=encode(photo()).data, mime_type="image/gif")}),
    ("image.mime_type", {"image": image_pb2.Image(data=encode(photo(), "JPEG").data, mime_type="image/png")}),
    ("mask.data", {"mask": image_pb2.Image(data=b"junk")}),
    ("mask", {"mask": _mask_png(10, 10)}),
    ("mask", {"mask": encode(np.zeros((96, 80, 3), dtype=np.uint8))}),
    ("prompt", {"prompt": ""}),
    ("prompt", {"prompt": "   "}),
    ("num_inference_steps", {"num_inference_steps": MAX_STEPS + 1}),
    ("true_cfg_scale", {"true_cfg_scale": 0.5}),
    ("true_cfg_scale", {"true_cfg_scale": 21.0}),
    ("true_cfg_scale", {"true_cfg_scale": float("nan")}),
    ("width", {"width": 100_000}),
    ("height", {"height": 100_000}),
    ("width", {"width": 4}),
    ("width", {"width": 50}),
    ("height", {"height": 27}),
    ("seeds", {"seeds": []}),
    ("seeds", {"seeds": list(range(MAX_SEEDS + 1))}),
    ("strength", {"strength": 0.0}),
    ("strength", {"strength": -0.1}),
    ("strength", {"strength": 1.5}),
    ("strength", {"strength": float("inf")}),
    (
        "neighbourhood.parent_weight",
        {"neighbourhood": qwen_edit_pb2.NoiseNeighbourhood(parent_seed=1, parent_weight=1.0)},
    ),
    (
        "neighbourhood.parent_weight",
        {"neighbourhood": qwen_edit_pb2.NoiseNeighbourhood(parent_seed=1, parent_weight=-0.5)},
    ),
    ("output_format", {"output_format": 42}),
]


@pytest.mark.parametrize(("field", "overrides"), INVALID, ids=[f"{field}-{i}" for i, (field, _) in enumerate(INVALID)])
def test_invalid_field_is_named_in_invalid_argument(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub, field: str, overrides: dict[str, Any]
) -> None:
    seeds = overrides.pop("seeds", [1])
    request = edit_request(seeds=seeds, **{k: v for k, v in overrides.items() if v is not None})
    if "image" in overrides and overrides["image"] is None:
        request.ClearField("image")

    error = rpc_error(lambda: stub.Edit(request, timeout=30))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"{field}:"), error.details()


@pytest.mark.parametrize(("field", "value", "nearest"), [("width", 900, 904), ("height", 61, 64), ("width", 3, 16)])
def test_a_size_that_is_not_allowed_is_refused_naming_the_nearest_allowed(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub, field: str, value: int, nearest: int
) -> None:
    request = edit_request()
    setattr(request, field, value)

    error = rpc_error(lambda: stub.Edit(request, timeout=30))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"{field}:")
    assert f"nearest allowed: {nearest}" in (error.details() or "")


def test_valid_edges_are_accepted(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    request = edit_request(
        seeds=list(range(MAX_SEEDS)),
        num_inference_steps=1,
        strength=1.0,
        true_cfg_scale=1.0,
        neighbourhood=qwen_edit_pb2.NoiseNeighbourhood(parent_seed=2**64 - 1, parent_weight=0.0),
    )

    assert len(stub.Edit(request, timeout=120).images) == MAX_SEEDS
