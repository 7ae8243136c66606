"""Signals computed locally for every candidate, with no model server but Triton.

- identity: cosine similarity between the ArcFace embedding of the face in the candidate (the one
  overlapping the mask most) and the character's embedding, mapped to 0-10.
- boundary consistency: how continuous colour and texture are across the mask's edge, 0-10.

They stand in for Gemini's realism and Moondream's identity and consistency when those are down or
unconfigured, and are recorded in the ledger for every candidate either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from orchestrator.imaging.blend import erode


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a.ravel(), b.ravel()) / denominator) if denominator > 0 else 0.0


def identity_score(candidate_embedding: np.ndarray, character_embedding: np.ndarray) -> float:
    """ArcFace cosine mapped to 0-10: 0 for unrelated faces (cosine <= 0), 10 for identical ones."""
    return float(np.clip(cosine(candidate_embedding, character_embedding), 0.0, 1.0) * 10.0)


def _window(masks: list[np.ndarray], margin: int) -> tuple[slice, slice]:
    """The box around every True pixel of `masks`, grown by `margin` and clipped to the image."""
    union = np.logical_or.reduce(masks)
    ys, xs = np.nonzero(union)
    height, width = union.shape
    return (
        slice(max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, height)),
        slice(max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, width)),
    )


# A 3x3 Sobel or Laplacian reads one pixel around each pixel: a window one pixel wider than the pixels
# measured gives the same values as the whole frame (at the image's own edges the border rule is the same).
KERNEL_MARGIN = 1


@dataclass(frozen=True)
class TextureRings:
    """Where `texture_realism` compares detail, fixed by the mask: the face (the mask eroded by 3 px) and a
    ring around the mask, both cut to `window`. None from `texture_rings` when either is too small to judge."""

    window: tuple[slice, slice]
    region: np.ndarray
    ring: np.ndarray


def texture_rings(mask: np.ndarray, ring_fraction: float = 0.35) -> TextureRings | None:
    """Once per mask (the dilation by a third of the face's size is the costly part)."""
    region = erode(mask.astype(bool), 3)
    ys, xs = np.nonzero(region)
    if len(ys) < 50:
        return None
    size = max(int(max(np.ptp(ys), np.ptp(xs)) * ring_fraction), 3)
    # Dilating by `size` reaches at most `size` beyond the mask's box: only that part is dilated.
    near = _window([mask.astype(bool)], size)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    ring = np.zeros(mask.shape, bool)
    ring[near] = cv2.dilate(mask[near].astype(np.uint8), kernel).astype(bool) & ~mask[near].astype(bool)
    if ring.sum() < 50:
        return None
    window = _window([region, ring], KERNEL_MARGIN)
    return TextureRings(window=window, region=region[window], ring=ring[window])


def texture_realism_in(candidate: np.ndarray, rings: TextureRings | None, tolerance: float = 0.6) -> float:
    """`texture_realism` with the mask's rings computed once (the same value)."""
    if rings is None:
        return 10.0
    gray = cv2.cvtColor(np.ascontiguousarray(candidate[rings.window]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Fine detail: the standard deviation of the Laplacian (sharpness plus grain).
    laplacian = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    inside, outside = float(laplacian[rings.region].std()), float(laplacian[rings.ring].std())
    ratio = np.log((inside + 1.0) / (outside + 1.0))
    return float(10.0 * np.exp(-abs(ratio) / tolerance))


def texture_realism(
    candidate: np.ndarray, mask: np.ndarray, ring_fraction: float = 0.35, tolerance: float = 0.6
) -> float:
    """0-10: 10 when the face inside the mask has the photo's own sharpness and grain.

    A face that is smoother than its surroundings reads as plastic or painted; one that is noisier
    reads as an artefact. The score falls with |log(detail inside / detail in a ring around the
    mask)|: to 10/e at a factor of e**tolerance (about 1.8x) either way. It judges texture only; a CGI
    look with a photo's texture passes, which is why it only stands in for Gemini.
    """
    return texture_realism_in(candidate, texture_rings(mask, ring_fraction), tolerance)


def _gradient(lab: np.ndarray) -> np.ndarray:
    gray = lab[..., 0]
    magnitude: np.ndarray = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    return magnitude


@dataclass(frozen=True)
class EdgeBands:
    """What `boundary_consistency` compares against, fixed by the init image and the mask: bands of band_px
    just inside the edge and on both sides of it, the init image's gradient there and its colour just inside,
    all cut to `window`. None from `edge_bands` when the mask has no edge to judge."""

    window: tuple[slice, slice]
    inside: np.ndarray
    ring: np.ndarray
    init_gradient: np.ndarray
    init_inside_lab: np.ndarray


def edge_bands(init: np.ndarray, mask: np.ndarray, band_px: int = 6) -> EdgeBands | None:
    """Once per task: everything of the boundary measure that does not depend on the candidate."""
    region = mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    outside = cv2.dilate(region.astype(np.uint8), kernel).astype(bool) & ~region
    inside = region & ~erode(region, band_px)
    if inside.sum() < 10 or outside.sum() < 10:
        return None  # no edge to judge (the mask fills the image or is a speck)
    window = _window([inside, outside], KERNEL_MARGIN)
    inside, ring = inside[window], (inside | outside)[window]
    lab_init = cv2.cvtColor(np.ascontiguousarray(init[window]), cv2.COLOR_RGB2LAB).astype(np.float32)
    return EdgeBands(window, inside, ring, _gradient(lab_init), lab_init[inside].mean(axis=0))


def boundary_consistency_in(candidate: np.ndarray, bands: EdgeBands | None, scale: float = 12.0) -> float:
    """`boundary_consistency` with the init image's part computed once (the same value)."""
    if bands is None:
        return 10.0
    lab = cv2.cvtColor(np.ascontiguousarray(candidate[bands.window]), cv2.COLOR_RGB2LAB).astype(np.float32)
    seam = float(np.maximum(_gradient(lab) - bands.init_gradient, 0)[bands.ring].mean()) / 4.0
    colour = float(np.linalg.norm(lab[bands.inside].mean(axis=0) - bands.init_inside_lab))
    return float(10.0 * np.exp(-(seam + colour) / scale))


def boundary_consistency(
    candidate: np.ndarray, init: np.ndarray, mask: np.ndarray, band_px: int = 6, scale: float = 12.0
) -> float:
    """0-10: 10 when the candidate continues the init image seamlessly across the mask's edge.

    Two kinds of break are measured in a ring of band_px on both sides of the edge, always against
    the init image at the same place, so that the photo's own edges (face against hair) cost
    nothing: a seam (gradient energy the init image did not have there) and a colour jump (the
    candidate's mean Lab colour just inside the edge against the init image's). `scale` is the
    distance at which the score falls to 10/e.
    """
    return boundary_consistency_in(candidate, edge_bands(init, mask, band_px), scale)
