"""Encoded images in and out of the servers (PNG, JPEG, WebP), with errors that name the request field."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from servers.common.errors import InvalidArgument

MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
FORMAT_BY_MIME = {mime: fmt for fmt, mime in MIME_BY_FORMAT.items()} | {"image/jpg": "JPEG"}
# A 4K frame is 8.3 MP; this leaves room for 8K while refusing decompression bombs.
DEFAULT_MAX_PIXELS = 40_000_000


def decode_image(data: bytes, mime_type: str, field: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode and fully load an encoded image; `field` (e.g. "image") names the message in errors."""
    if not data:
        raise InvalidArgument(f"{field}.data", "is empty; an encoded PNG, JPEG or WebP image is required")
    declared = mime_type.strip().lower()
    if declared and declared not in FORMAT_BY_MIME:
        raise InvalidArgument(
            f"{field}.mime_type", f"{mime_type!r} is not supported (use {', '.join(MIME_BY_FORMAT.values())})"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in MIME_BY_FORMAT:
                raise InvalidArgument(f"{field}.data", f"is a {image.format} image; PNG, JPEG or WebP is required")
            if image.width * image.height > max_pixels:
                raise InvalidArgument(
                    f"{field}.data", f"has {image.width}x{image.height} pixels, more than {max_pixels}"
                )
            image.load()
    except InvalidArgument:
        raise
    except UnidentifiedImageError as e:
        raise InvalidArgument(f"{field}.data", "is not a decodable PNG, JPEG or WebP image (unrecognised bytes)") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidArgument(f"{field}.data", f"is not a decodable PNG, JPEG or WebP image ({e})") from e
    if declared and FORMAT_BY_MIME[declared] != image.format:
        raise InvalidArgument(
            f"{field}.mime_type", f"says {declared} but the bytes are {MIME_BY_FORMAT[str(image.format)]}"
        )
    return image


def encode_image(image: Image.Image, image_format: str = "PNG") -> tuple[bytes, str]:
    """(bytes, MIME type). PNG and WebP are lossless; JPEG uses quality 95."""
    fmt = image_format.upper()
    if fmt not in MIME_BY_FORMAT:
        raise ValueError(f"unsupported image format {image_format!r}")
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    elif fmt == "WEBP":
        image.save(buffer, format="WEBP", lossless=True)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue(), MIME_BY_FORMAT[fmt]
