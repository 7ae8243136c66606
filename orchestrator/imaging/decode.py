"""Turn request bytes into the arrays the pipeline works on, or a clear error naming the field.

Images become RGB uint8 arrays (H, W, 3); masks become boolean arrays (H, W). Accepted: PNG, JPEG
and WebP; RGBA (composited over white, so a transparent background reads as background), palette,
grayscale and 16-bit inputs; EXIF orientation is applied so that the array is what a viewer shows.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from orchestrator.errors import InvalidInputError
from servers.common.images import DEFAULT_MAX_PIXELS

SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP")


def _open(data: bytes, field: str, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidInputError(field, "is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns or raises at its global limit; ours is per call and exact.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(field, f"is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(field, "is not a decodable image (expected PNG, JPEG or WebP)") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise InvalidInputError(field, f"has format {image.format}; supported: PNG, JPEG, WebP")
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidInputError(
            field,
            f"is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} (decompression bomb guard)",
        )
    if width == 0 or height == 0:
        raise InvalidInputError(field, f"has no pixels ({width}x{height})")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(field, f"is truncated or corrupt ({exc})") from exc
    try:
        transposed = ImageOps.exif_transpose(image)
    except Exception as exc:  # a broken EXIF block must not take the request down with a 500
        raise InvalidInputError(field, f"has an unreadable EXIF block ({exc})") from exc
    return transposed if transposed is not None else image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer/float grayscale modes, scaled (not clipped) to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.round(values * (255.0 / peak)), 0, 255).astype(np.uint8), mode="L")
    return image


# Smaller than this on either side, no face detector finds a face (SCRFD's smallest anchors are 16 px).
DEFAULT_MIN_SIDE = 32


def decode_image(
    data: bytes, field: str, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE
) -> np.ndarray:
    """Decode an image field to RGB uint8 (H, W, 3); one too small to hold a face is refused, naming the field."""
    image = _to_8bit(_open(data, field, max_pixels))
    if min(image.size) < min_side:
        width, height = image.size
        raise InvalidInputError(
            field, f"is {width}x{height}: too small to hold a face (each side must be at least {min_side} px)"
        )
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def decode_mask(
    data: bytes, field: str, expected_hw: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode a mask field to bool (H, W): white (>=128) marks the region to replace.

    A mask with a meaningful alpha channel (not fully opaque) is read from its alpha; otherwise from
    its luminance. The mask must have the init image's size and at least one set pixel.
    """
    image = _to_8bit(_open(data, field, max_pixels))
    height, width = image.size[1], image.size[0]
    if (height, width) != expected_hw:
        raise InvalidInputError(
            field, f"is {width}x{height} but init_image is {expected_hw[1]}x{expected_hw[0]}; they must match"
        )
    gray: np.ndarray
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        gray = alpha if alpha.min() < 255 else np.asarray(image.convert("L"))
    else:
        gray = np.asarray(image.convert("L"))
    mask = gray >= 128
    if not mask.any():
        raise InvalidInputError(field, "is empty: no pixel is set (white marks the region to replace)")
    return mask
