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


@dataclass(frozen=True)
class Feather:
    """A mask's feathering, computed once and applied to any number of candidates of the same size.

    Alpha is kept only inside the box around its non-zero pixels: outside it the result is the init image,
    so a candidate costs a blend of that box, not of the whole photo (the search blends every candidate).
    """

    shape: tuple[int, int]
    rows: slice
    cols: slice
    alpha: np.ndarray  # float32 (box height, box width, 1)

    @classmethod
    def of(cls, mask: np.ndarray, config: BlendConfig = BlendConfig()) -> Feather:
        alpha = feather_alpha(mask, config)
        rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
        if rows.size == 0:
            box = (slice(0, 0), slice(0, 0))
        else:
            box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        return cls(mask.shape[:2], box[0], box[1], np.ascontiguousarray(alpha[box][..., None]))

    def apply(self, init: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Composite alpha*candidate + (1-alpha)*init; uint8 RGB in, uint8 RGB out."""
        if init.shape != candidate.shape:
            raise ValueError(f"candidate shape {candidate.shape} differs from init shape {init.shape}")
        if init.shape[:2] != self.shape:
            raise ValueError(f"mask shape {self.shape} differs from image shape {init.shape[:2]}")
        out = init.copy()
        box = (self.rows, self.cols)
        base = init[box].astype(np.float32)
        blended = base + self.alpha * (candidate[box].astype(np.float32) - base)
        out[box] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out


def feather_blend(
    init: np.ndarray, candidate: np.ndarray, mask: np.ndarray, config: BlendConfig = BlendConfig()
) -> np.ndarray:
    """Composite alpha*candidate + (1-alpha)*init; uint8 RGB in, uint8 RGB out (`Feather` for many candidates)."""
    if init.shape != candidate.shape:
        raise ValueError(f"candidate shape {candidate.shape} differs from init shape {init.shape}")
    if mask.shape != init.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {init.shape[:2]}")
    return Feather.of(mask, config).apply(init, candidate)
