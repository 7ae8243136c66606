"""Crop geometry of the refinement path. Pure functions over arrays.

Refinement edits a square crop around the refined mask (with a margin for context) at the crop's own
size: the box is grown or shrunk to the nearest size the edit model takes (a multiple of its patch
size, within a configured range), so a face is edited at the photo's own resolution with no resampling
round trip. Only a crop outside the range is resized (up to the smallest size, down to the largest).
The edited crop is put back into the box and feathered into the init image: cheaper and sharper
than editing the whole photo, and nothing outside the mask can change.
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


def edit_size(side: int, min_size: int, max_size: int, multiple: int) -> int:
    """The side the edit model works at for a crop of `side` px: the nearest multiple within the range."""
    low = -(-min_size // multiple) * multiple
    high = max(max_size // multiple * multiple, low)
    nearest = max(round(side / multiple), 1) * multiple
    return int(min(max(nearest, low), high))


def fit_box(box: CropBox, side: int, image_hw: tuple[int, int]) -> CropBox:
    """The box resized to `side` about its centre and kept inside the image (unchanged when it cannot fit)."""
    height, width = image_hw
    if side > min(height, width) or side == box.width:
        return box
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    x0 = int(np.clip(round(cx - side / 2), 0, width - side))
    y0 = int(np.clip(round(cy - side / 2), 0, height - side))
    return CropBox(x0, y0, x0 + side, y0 + side)


def extract(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """The crop at size x size (area interpolation when shrinking, cubic when growing, a copy when equal)."""
    crop = image[box.slices()]
    if box.width == size and box.height == size:
        return np.ascontiguousarray(crop)
    interpolation = cv2.INTER_AREA if box.width > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interpolation))


def put_back(image: np.ndarray, edited: np.ndarray, box: CropBox) -> np.ndarray:
    """A copy of the image with the edited crop (resized when its size differs) in the box, to be blended."""
    if edited.shape[:2] == (box.height, box.width):
        resized = edited
    else:
        interpolation = cv2.INTER_AREA if edited.shape[0] > box.width else cv2.INTER_CUBIC
        resized = cv2.resize(edited, (box.width, box.height), interpolation=interpolation)
    out = image.copy()
    out[box.slices()] = resized
    return out
