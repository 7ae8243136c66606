"""Signals computed locally for every candidate, with no model server but Triton.

- identity: cosine similarity between the ArcFace embedding of the face in the candidate (the one
  overlapping the mask most) and the character's embedding, mapped to 0-10.
- boundary consistency: how continuous colour and texture are across the mask's edge, 0-10.

They stand in for Gemini's realism and Moondream's identity and consistency when those are down or
unconfigured, and are recorded in the ledger for every candidate either way.
"""

from __future__ import annotations

import cv2
import numpy as np

from orchestrator.imaging.blend import erode


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a.ravel(), b.ravel()) / denominator) if denominator > 0 else 0.0


def identity_score(candidate_embedding: np.ndarray, character_embedding: np.ndarray) -> float:
    """ArcFace cosine mapped to 0-10: 0 for unrelated faces (cosine <= 0), 10 for identical ones."""
    return float(np.clip(cosine(candidate_embedding, character_embedding), 0.0, 1.0) * 10.0)


def _detail(gray: np.ndarray, region: np.ndarray) -> float:
    """Fine detail of a region: the standard deviation of the Laplacian (sharpness plus grain)."""
    laplacian = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    return float(laplacian[region].std())


def texture_realism(
    candidate: np.ndarray, mask: np.ndarray, ring_fraction: float = 0.35, tolerance: float = 0.6
) -> float:
    """0-10: 10 when the face inside the mask has the photo's own sharpness and grain.

    A face that is smoother than its surroundings reads as plastic or painted; one that is noisier
    reads as an artefact. The score falls with |log(detail inside / detail in a ring around the
    mask)|: to 10/e at a factor of e**tolerance (about 1.8x) either way. It judges texture only; a CGI
    look with a photo's texture passes, which is why it only stands in for Gemini.
    """
    region = erode(mask.astype(bool), 3)
    ys, xs = np.nonzero(region)
    if len(ys) < 50:
        return 10.0
    size = max(int(max(np.ptp(ys), np.ptp(xs)) * ring_fraction), 3)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    ring = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask.astype(bool)
    if ring.sum() < 50:
        return 10.0
    gray = cv2.cvtColor(candidate, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inside, outside = _detail(gray, region), _detail(gray, ring)
    ratio = np.log((inside + 1.0) / (outside + 1.0))
    return float(10.0 * np.exp(-abs(ratio) / tolerance))


def _gradient(lab: np.ndarray) -> np.ndarray:
    gray = lab[..., 0]
    magnitude: np.ndarray = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    return magnitude


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
    region = mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    outside = cv2.dilate(region.astype(np.uint8), kernel).astype(bool) & ~region
    inside = region & ~erode(region, band_px)
    ring = inside | outside
    if inside.sum() < 10 or outside.sum() < 10:
        return 10.0  # no edge to judge (the mask fills the image or is a speck)
    lab_candidate = cv2.cvtColor(candidate, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_init = cv2.cvtColor(init, cv2.COLOR_RGB2LAB).astype(np.float32)
    seam = float(np.maximum(_gradient(lab_candidate) - _gradient(lab_init), 0)[ring].mean()) / 4.0
    colour = float(np.linalg.norm(lab_candidate[inside].mean(axis=0) - lab_init[inside].mean(axis=0)))
    return float(10.0 * np.exp(-(seam + colour) / scale))
