"""Feature-preserving feathered blend of a candidate into the init image.

The mask is eroded by `erosion_px`; alpha rises with the distance from the eroded mask's edge and
reaches 1 at `feather_px`: only an edge band is feathered, the interior keeps the candidate's full
texture (no blur over the face), and outside the eroded mask alpha is exactly 0, so every pixel
there equals the init image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BlendConfig:
    erosion_px: int = 3
    feather_px: float = 25.0

    def __post_init__(self) -> None:
        if self.erosion_px < 0:
            raise ValueError(f"erosion_px must be >= 0, got {self.erosion_px}")
        if self.feather_px <= 0:
            raise ValueError(f"feather_px must be > 0, got {self.feather_px}")


def erode(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Erode a boolean mask by a disc of the given radius (pixels beyond the image count as outside)."""
    if radius_px == 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))
    padded = np.pad(mask.astype(np.uint8), radius_px)
    return cv2.erode(padded, kernel)[radius_px:-radius_px, radius_px:-radius_px].astype(bool)


def feather_alpha(mask: np.ndarray, config: BlendConfig = BlendConfig()) -> np.ndarray:
    """Alpha in [0, 1] (float32, H x W): 0 outside the eroded mask, 1 deeper than feather_px inside it."""
    eroded = erode(mask.astype(bool), config.erosion_px)
    # Pad so that the image border counts as outside: a mask touching the border is feathered there too.
    padded = np.pad(eroded.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return np.clip(distance / np.float32(config.feather_px), 0.0, 1.0).astype(np.float32)


def feather_blend(
    init: np.ndarray, candidate: np.ndarray, mask: np.ndarray, config: BlendConfig = BlendConfig()
) -> np.ndarray:
    """Composite alpha*candidate + (1-alpha)*init; uint8 RGB in, uint8 RGB out."""
    if init.shape != candidate.shape:
        raise ValueError(f"candidate shape {candidate.shape} differs from init shape {init.shape}")
    if mask.shape != init.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {init.shape[:2]}")
    alpha = feather_alpha(mask, config)[..., None]
    base = init.astype(np.float32)
    out = base + alpha * (candidate.astype(np.float32) - base)
    blended: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return blended
