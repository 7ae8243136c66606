"""Encoded images in and out: round trips, and errors that name the request field."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from servers.common.errors import InvalidArgument
from servers.common.images import decode_image, encode_image


def _array() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_lossless_round_trip(image_format: str) -> None:
    data, mime = encode_image(Image.fromarray(_array()), image_format)

    decoded = decode_image(data, mime, "image")

    np.testing.assert_array_equal(np.asarray(decoded.convert("RGB")), _array())


def test_jpeg_round_trip_is_close() -> None:
    data, mime = encode_image(Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8)), "JPEG")

    assert mime == "image/jpeg"
    assert np.abs(np.asarray(decode_image(data, "", "image")).astype(int) - 128).max() <= 2


@pytest.mark.parametrize(
    ("data", "mime", "field"),
    [
        (b"", "image/png", "mask.data"),
        (b"\x89PNG\r\n\x1a\nbroken", "image/png", "mask.data"),
        (b"GIF89a", "", "mask.data"),
        (None, "image/tiff", "mask.mime_type"),
        (None, "image/jpeg", "mask.mime_type"),
    ],
)
def test_errors_name_the_field(data: bytes | None, mime: str, field: str) -> None:
    if data is None:
        data, _ = encode_image(Image.fromarray(_array()), "PNG")

    with pytest.raises(InvalidArgument) as raised:
        decode_image(data, mime, "mask")

    assert raised.value.field == field


def test_pixel_limit_refuses_oversized_images() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buffer, format="PNG")

    with pytest.raises(InvalidArgument, match="more than 10000"):
        decode_image(buffer.getvalue(), "image/png", "image", max_pixels=10_000)
