"""Crop geometry of the refinement path. Pure functions over arrays.

Refinement edits a square crop around the refined mask (with a margin for context), resized to the
edit model's working size; the edited crop is resized back into the box and feathered into the
init image. Cheaper and sharper than editing the whole photo, and nothing outside the mask can
change.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A square region of the image, [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def crop_box(mask: np.ndarray, margin: float = 0.35, min_size: int = 64) -> CropBox:
    """The square around the mask's bounding box, grown by `margin` of its side, inside the image.

    Square so that resizing to the model's square working size keeps the aspect ratio. Where the
    image is too small for the square, the box is as large as the image allows.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("mask is empty")
    height, width = mask.shape
    side = max(int(np.ceil(max(np.ptp(xs) + 1, np.ptp(ys) + 1) * (1 + 2 * margin))), min_size)
    side = min(side, width, height)
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return CropBox(x0, y0, x0 + side, y0 + side)


def extract(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """The crop resized to size x size (area interpolation when shrinking, cubic when growing)."""
    crop = image[box.slices()]
    interpolation = cv2.INTER_AREA if box.width > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interpolation))


def put_back(image: np.ndarray, edited: np.ndarray, box: CropBox) -> np.ndarray:
    """A copy of the image with the edited crop resized into the box (to be blended by the mask)."""
    interpolation = cv2.INTER_AREA if edited.shape[0] > box.width else cv2.INTER_CUBIC
    resized = cv2.resize(edited, (box.width, box.height), interpolation=interpolation)
    out = image.copy()
    out[box.slices()] = resized
    return out
