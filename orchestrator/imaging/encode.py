"""Arrays to encoded images: the one PNG encoder of the orchestrator, its clients, tools and tests."""

from __future__ import annotations

import cv2
import numpy as np
from inpaint.v1 import image_pb2

_PNG_PARAMS = [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image (H, W, 3), a grayscale one (H, W), or a bool mask (white = True)."""
    array = image.astype(np.uint8) * 255 if image.dtype == bool else image
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected uint8 (H, W[, 3]) or a bool mask, got {image.dtype} {image.shape}")
    # zlib's run-length strategy: about half the time of OpenCV's default level for files a few percent larger
    # on photos (0.2% on the 512 px astronaut, 12% on a 2048 px one; every candidate is encoded for the memo
    # and the judges; still lossless). OpenCV writes BGR.
    ok, data = cv2.imencode(".png", array[..., ::-1] if array.ndim == 3 else array, _PNG_PARAMS)
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(data.tobytes())


def png_message(image: np.ndarray) -> image_pb2.Image:
    """The same, as the contracts' Image message."""
    return image_pb2.Image(data=encode_png(image), mime_type="image/png")
