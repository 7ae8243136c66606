"""Arrays to encoded images: the one PNG encoder of the orchestrator, its clients, tools and tests."""

from __future__ import annotations

import cv2
import numpy as np
from inpaint.v1 import image_pb2


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image (H, W, 3), a grayscale one (H, W), or a bool mask (white = True)."""
    array = image.astype(np.uint8) * 255 if image.dtype == bool else image
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected uint8 (H, W[, 3]) or a bool mask, got {image.dtype} {image.shape}")
    ok, data = cv2.imencode(".png", array[..., ::-1] if array.ndim == 3 else array)  # OpenCV writes BGR
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(data.tobytes())


def png_message(image: np.ndarray) -> image_pb2.Image:
    """The same, as the contracts' Image message."""
    return image_pb2.Image(data=encode_png(image), mime_type="image/png")
