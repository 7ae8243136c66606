"""Colour match of a swapped face to the target's skin, and the colour difference across a mask's edge. Pure.

- `match_colour`: the swapped pixels' CIE Lab mean and standard deviation moved to the target's skin
  (Reinhard's statistics transfer), both measured over the same skin region of the face.
- `edge_delta_e`: the mean CIE76 colour difference (delta E) between a candidate and the init photo in
  the ring inside the mask's edge where the blend feathers: the init photo is continuous across the
  edge, so a difference there is what a viewer sees as a seam. Below about 2.3 a difference is hard
  to see; skin-tone mismatches are typically 5-15.

Lab conversions are OpenCV's on float32 (sRGB, D65: L 0..100; within 0.5 of scikit-image's rgb2lab and
an order of magnitude faster); CIE76 delta E is the Euclidean distance in Lab.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

# The spread of a channel may grow or shrink at most this much: a flat or noisy region must not
# make the transfer amplify noise.
MAX_STD_RATIO = 2.0
MIN_REGION_PX = 50


@dataclass(frozen=True)
class ColourMatch:
    image: np.ndarray  # the swapped image with its colours matched inside `region`
    applied: bool
    reason: str
    shift_lab: tuple[float, float, float] = (0.0, 0.0, 0.0)  # target mean - swapped mean


def _lab(image: np.ndarray) -> np.ndarray:
    """RGB (uint8, or float in 0..1) -> float32 CIE Lab."""
    rgb = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    lab: np.ndarray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2Lab)
    return lab


def _rgb(lab: np.ndarray) -> np.ndarray:
    """float CIE Lab -> RGB uint8 (out-of-gamut colours clipped)."""
    rgb = cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    out: np.ndarray = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return out


def _bounds(mask: np.ndarray) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    return slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)


def match_colour(swapped: np.ndarray, target: np.ndarray, skin: np.ndarray, region: np.ndarray) -> ColourMatch:
    """Move the Lab statistics of `swapped` over `skin` to those of `target` over `skin`, inside `region`.

    `skin` is where both images show the face's skin (eyes, brows, lips, hair left out); `region` is
    where the swapped face was pasted. Pixels outside `region` are returned unchanged.
    """
    if int(skin.sum()) < MIN_REGION_PX:
        return ColourMatch(swapped, False, f"too little skin to measure ({int(skin.sum())} px)")
    if not region.any():
        return ColourMatch(swapped, False, "nothing was pasted")
    box = _bounds(region | skin)
    source_lab = _lab(swapped[box])
    target_lab = _lab(target[box])
    inner = skin[box]
    source_pixels, target_pixels = source_lab[inner], target_lab[inner]
    source_mean, target_mean = source_pixels.mean(axis=0), target_pixels.mean(axis=0)
    source_std, target_std = source_pixels.std(axis=0), target_pixels.std(axis=0)
    ratio = np.clip(target_std / np.maximum(source_std, 1e-3), 1.0 / MAX_STD_RATIO, MAX_STD_RATIO)
    moved = (source_lab - source_mean) * ratio + target_mean
    rgb = _rgb(moved)
    out = swapped.copy()
    where = region[box]
    out[box][where] = rgb[where]
    shift = target_mean - source_mean
    return ColourMatch(out, True, "Lab mean and spread matched to the target's skin", tuple(float(v) for v in shift))  # type: ignore[arg-type]


@dataclass(frozen=True)
class EdgeRing:
    """The init photo's side of `edge_delta_e` for one mask: measured once, compared with many candidates."""

    box: tuple[slice, slice]  # the window of the photo the ring and its blur need
    where: np.ndarray | None  # bool: the ring inside the window; None when the mask has no ring
    init_lab: np.ndarray | None  # the init photo's window, smoothed, in Lab
    shape: tuple[int, ...]
    smooth_px: float

    @classmethod
    def of(cls, init: np.ndarray, mask: np.ndarray, width_px: float = 28.0, smooth_px: float = 2.0) -> EdgeRing:
        if not mask.any() or mask.all():
            return cls((slice(0, 0), slice(0, 0)), None, None, init.shape, smooth_px)
        pad = int(np.ceil(3 * smooth_px))
        # Only the mask's box matters: one background pixel past it keeps the distances inside it exact, `pad`
        # more feeds the blur. On a 12 MP photo this is 0.09 s instead of 1.7 s for the whole frame.
        rows, cols = _bounds(mask)
        margin = pad + 1
        outer = (
            slice(max(rows.start - margin, 0), rows.stop + margin),
            slice(max(cols.start - margin, 0), cols.stop + margin),
        )
        inside = mask[outer]
        depth = ndimage.distance_transform_edt(inside)
        ring = inside & (depth <= width_px)
        rows, cols = _bounds(ring)
        rows = slice(max(rows.start - pad, 0), rows.stop + pad)
        cols = slice(max(cols.start - pad, 0), cols.stop + pad)
        box = (
            slice(outer[0].start + rows.start, outer[0].start + rows.stop),
            slice(outer[1].start + cols.start, outer[1].start + cols.stop),
        )
        return cls(box, ring[rows, cols], _smooth_lab(init[box], smooth_px), init.shape, smooth_px)

    def delta_e(self, image: np.ndarray) -> float:
        """Mean CIE76 delta E between `image` and the init photo over the ring; NaN when there is no ring."""
        if image.shape != self.shape:
            raise ValueError(f"image shape {image.shape} differs from init shape {self.shape}")
        if self.where is None or self.init_lab is None:
            return float("nan")
        lab = _smooth_lab(image[self.box], self.smooth_px)
        return float(np.mean(np.linalg.norm(lab[self.where] - self.init_lab[self.where], axis=-1)))


def _smooth_lab(window: np.ndarray, smooth_px: float) -> np.ndarray:
    return _lab(ndimage.gaussian_filter(window.astype(np.float32) / 255.0, sigma=(smooth_px, smooth_px, 0)))


def edge_delta_e(
    image: np.ndarray, init: np.ndarray, mask: np.ndarray, width_px: float = 28.0, smooth_px: float = 2.0
) -> float:
    """Mean CIE76 delta E between `image` and `init` over the ring of the mask within `width_px` of its edge.

    The init photo is continuous across the mask's edge, so where a candidate's colours differ from it
    in this ring (the feathered band, by default the blend's 3 px erosion + 25 px feather) a seam shows.
    Both images are smoothed first (Gaussian, `smooth_px`) so that texture and the new face's features
    are not counted as colour. NaN when the mask has no such ring (empty, or the whole image). Many
    candidates against one init photo: `EdgeRing`.
    """
    if image.shape != init.shape:
        raise ValueError(f"image shape {image.shape} differs from init shape {init.shape}")
    return EdgeRing.of(init, mask, width_px, smooth_px).delta_e(image)
