"""Every kind of input image is normalised; every bad one gets a typed error naming its field."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from orchestrator.errors import InvalidInputError
from orchestrator.imaging.decode import decode_image, decode_mask


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo(astronaut: np.ndarray) -> Image.Image:
    return Image.fromarray(astronaut[100:164, 180:260])  # 80 x 64, the face


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_webp_decode_to_rgb_uint8(photo: Image.Image, fmt: str) -> None:
    array = decode_image(_encode(photo, fmt, quality=95) if fmt != "PNG" else _encode(photo, fmt), "init_image")
    assert array.shape == (64, 80, 3) and array.dtype == np.uint8
    tolerance = 0 if fmt == "PNG" else 12
    assert np.abs(array.astype(int) - np.asarray(photo, dtype=int)).mean() <= tolerance


def test_rgba_is_composited_over_white(photo: Image.Image) -> None:
    rgba = photo.convert("RGBA")
    alpha = np.full((64, 80), 255, np.uint8)
    alpha[:, :40] = 0
    rgba.putalpha(Image.fromarray(alpha))
    array = decode_image(_encode(rgba, "PNG"), "character_image")
    assert array.shape == (64, 80, 3)
    assert (array[:, :40] == 255).all()
    np.testing.assert_array_equal(array[:, 40:], np.asarray(photo)[:, 40:])


def test_grayscale_becomes_three_equal_channels(photo: Image.Image) -> None:
    array = decode_image(_encode(photo.convert("L"), "PNG"), "init_image")
    assert array.shape == (64, 80, 3)
    assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    ramp = np.repeat(np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16), 2, axis=0).repeat(2, axis=1)
    array = decode_image(_encode(Image.fromarray(ramp), "PNG"), "init_image")
    assert array[0, 0, 0] == 0 and array[-1, -1, 0] == 255
    assert 120 <= array[16, 0, 0] <= 135  # mid-grey stays mid-grey


def test_exif_orientation_is_applied(photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was rotated: display rotated 90 degrees clockwise
    array = decode_image(_encode(photo, "JPEG", quality=95, exif=exif), "init_image")
    assert array.shape == (80, 64, 3)
    expected = np.asarray(photo.transpose(Image.Transpose.ROTATE_270), dtype=int)
    assert np.abs(array.astype(int) - expected).mean() < 12


def test_empty_bytes_name_the_field() -> None:
    with pytest.raises(InvalidInputError, match=r"^character_image: is empty") as info:
        decode_image(b"", "character_image")
    assert info.value.field == "character_image"


def test_corrupt_bytes_name_the_field() -> None:
    with pytest.raises(InvalidInputError, match=r"^init_image: is not a decodable image"):
        decode_image(b"\x89PNG\r\n\x1a\n garbage that is not a png", "init_image")


def test_truncated_file_is_reported_as_corrupt(photo: Image.Image) -> None:
    data = _encode(photo, "PNG")
    with pytest.raises(InvalidInputError, match=r"^init_image: is truncated or corrupt"):
        decode_image(data[: len(data) // 2], "init_image")


def test_unsupported_format_is_named(photo: Image.Image) -> None:
    with pytest.raises(InvalidInputError, match=r"^init_image: has format GIF; supported: PNG, JPEG, WebP"):
        decode_image(_encode(photo, "GIF"), "init_image")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _encode(Image.new("1", (12000, 12000)), "PNG")  # 144 Mpx in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(InvalidInputError, match=r"^init_image: is 12000x12000 = 144000000 pixels, over the limit"):
        decode_image(bomb, "init_image")


def test_mask_reads_white_as_the_region(photo: Image.Image) -> None:
    mask = np.zeros((64, 80), np.uint8)
    mask[10:30, 20:50] = 255
    decoded = decode_mask(_encode(Image.fromarray(mask), "PNG"), "mask", (64, 80))
    assert decoded.dtype == bool and decoded.sum() == 20 * 30 and decoded[15, 25]


def test_mask_with_alpha_is_read_from_its_alpha() -> None:
    rgba = np.zeros((64, 80, 4), np.uint8)  # black everywhere; the alpha carries the region
    rgba[20:40, 10:30, 3] = 255
    decoded = decode_mask(_encode(Image.fromarray(rgba, "RGBA"), "PNG"), "mask", (64, 80))
    assert decoded.sum() == 400 and decoded[25, 15]


def test_mask_of_another_size_is_refused() -> None:
    data = _encode(Image.new("L", (80, 60), 255), "PNG")
    with pytest.raises(InvalidInputError, match=r"^mask: is 80x60 but init_image is 80x64; they must match"):
        decode_mask(data, "mask", (64, 80))


def test_empty_mask_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"^mask: is empty: no pixel is set"):
        decode_mask(_encode(Image.new("L", (80, 64), 0), "PNG"), "mask", (64, 80))


@pytest.mark.parametrize("size", [(1, 1), (31, 400), (400, 8)])
def test_an_image_too_small_to_hold_a_face_is_refused_naming_it(size: tuple[int, int]) -> None:
    """Before: a 1x1 init image was accepted and came back unchanged with 40 notes."""
    data = _encode(Image.new("RGB", size, (90, 90, 90)), "PNG")
    with pytest.raises(InvalidInputError, match=r"init_image: is \d+x\d+: too small to hold a face"):
        decode_image(data, "init_image")
    assert decode_image(_encode(Image.new("RGB", (32, 32)), "PNG"), "init_image").shape == (32, 32, 3)
