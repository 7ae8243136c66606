"""Mask refinement: the target face's landmark hull united with the given mask, hair excluded.

How hair is excluded (no segmentation model is needed):
1. `hull` is the convex hull of the face's landmarks (for the 106-point model it runs along the jaw
   and the brows, so it holds skin, eyes, nose and mouth and never the hair above the brows).
2. A skin colour model is fitted on the hull's interior in CIE Lab: the median and a robust
   covariance of the pixels of the hull shrunk by 15 %, with the darkest and brightest 10 % dropped
   (eyes, nostrils, mouth, specular highlights).
3. Every pixel of the given mask *outside* the hull whose Mahalanobis distance to that skin model
   exceeds `hair_distance` is hair (or hat, or background): it is removed. Pixels inside the hull are
   never removed.
4. Pixels outside the hull farther from it than `max_extension` times the hull's height are not
   face either (a forehead reaches about 0.4 of the brow-to-chin height above the brows; lighter
   hair highlights can pass the colour test, so this bounds how far they could reach).
5. Speckle is cleaned (morphological opening of the hair map), and only the connected part of the
   result that touches the hull is kept.

Refinement falls back to the given mask, with the reason recorded, when no landmarks are given or
when the detected face barely overlaps the given mask (the user meant another face).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskRefinementConfig:
    enabled: bool = True
    exclude_hair: bool = True
    # Mahalanobis distance in Lab beyond which a pixel outside the hull is not skin.
    hair_distance: float = 3.0
    # The face is the intended one when hull and given mask share at least this fraction of the
    # smaller of the two (a small mask on the nose and a large one over the head both qualify).
    min_hull_overlap: float = 0.3
    # How far beyond the hull (in hull heights) the refined mask may reach.
    max_extension: float = 0.4


@dataclass(frozen=True)
class MaskRefinement:
    mask: np.ndarray  # bool (H, W)
    refined: bool
    reason: str
    hull_px: int = 0
    hair_px_removed: int = 0


def landmark_hull(points: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of the points, clipped to the image; bool (H, W)."""
    hull = cv2.convexHull(np.round(points).astype(np.int32).reshape(-1, 1, 2))
    canvas = np.zeros(hw, dtype=np.uint8)
    cv2.fillConvexPoly(canvas, hull, 1)
    return canvas.astype(bool)


def _shrink(mask: np.ndarray, fraction: float) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    size = max(int(min(np.ptp(ys), np.ptp(xs)) * fraction / 2), 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    shrunk = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    return shrunk if shrunk.sum() >= 50 else mask


def skin_distance(image: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Mahalanobis distance (H, W) of every pixel's Lab colour to the skin colours under `sample`."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float64)
    pixels = lab[sample]
    lightness = pixels[:, 0]
    lo, hi = np.quantile(lightness, [0.1, 0.9])
    core = pixels[(lightness >= lo) & (lightness <= hi)]
    if len(core) < 20:
        core = pixels
    center = np.median(core, axis=0)
    covariance = np.cov((core - center).T) + np.eye(3) * 4.0  # floor: flat skin must not make every pixel "far"
    inverse = np.linalg.inv(covariance)
    diff = lab - center
    distance: np.ndarray = np.sqrt(np.einsum("hwi,ij,hwj->hw", diff, inverse, diff))
    return distance


def _component_touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seed & mask])
    keep = keep[keep != 0]
    return np.isin(labels, keep) if count > 1 else mask


def refine_mask(
    image: np.ndarray,
    given: np.ndarray,
    landmarks: np.ndarray | None,
    config: MaskRefinementConfig = MaskRefinementConfig(),
) -> MaskRefinement:
    """Refine the given mask around the target face's landmarks; fall back to it with a reason."""
    if not config.enabled:
        return MaskRefinement(given.copy(), False, "mask refinement is disabled in the configuration")
    if landmarks is None or len(landmarks) < 3:
        return MaskRefinement(given.copy(), False, "no face landmarks in init_image: kept the given mask")
    hull = landmark_hull(landmarks, given.shape)
    hull_px = int(hull.sum())
    if hull_px == 0:
        return MaskRefinement(given.copy(), False, "the face landmarks lie outside init_image: kept the given mask")
    overlap = float((hull & given).sum()) / min(hull_px, int(given.sum()))
    if overlap < config.min_hull_overlap:
        return MaskRefinement(
            given.copy(),
            False,
            f"the detected face overlaps the given mask by {overlap:.0%} "
            f"(< {config.min_hull_overlap:.0%}): kept the given mask",
            hull_px=hull_px,
        )
    union = hull | given
    removed = 0
    if config.exclude_hair:
        distance = skin_distance(image, _shrink(hull, 0.15))
        outside = union & ~hull
        hull_height = float(np.ptp(np.nonzero(hull)[0]) + 1)
        reach = cv2.distanceTransform((~hull).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        hair = outside & ((distance > config.hair_distance) | (reach > config.max_extension * hull_height))
        hair = cv2.morphologyEx(hair.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        candidate = union & ~hair
        refined = _component_touching(candidate, hull)
        removed = int(union.sum() - refined.sum())
    else:
        refined = union
    return MaskRefinement(
        refined,
        True,
        f"landmark hull united with the given mask; {removed} px of hair or non-skin excluded",
        hull_px=hull_px,
        hair_px_removed=removed,
    )


# insightface's 2d106det mark-up (alignment/coordinate_reg, 2d106markup.jpg): 0-32 jaw contour, 33-42 and
# 87-96 the eyes, 43-51 and 97-105 the brows, 52-71 the lips, 72-86 the nose.
LANDMARK_106_FEATURES: dict[str, tuple[int, int]] = {
    "left_eye": (33, 43),
    "right_eye": (87, 97),
    "left_brow": (43, 52),
    "right_brow": (97, 106),
    "mouth": (52, 72),
}


def face_mask_from_landmarks(
    landmarks: np.ndarray, kps: np.ndarray, hw: tuple[int, int], reach: float = MaskRefinementConfig.max_extension
) -> np.ndarray:
    """The mask to start from when the request has none: the landmark hull swept up to the forehead.

    The 106-point hull ends at the brows; the forehead above it is face too. "Up" is from the mouth
    to the eyes (the 5 keypoints), and the sweep reaches `reach` hull heights, the same limit the
    refinement keeps: refining this mask then drops hair by colour, exactly as for a drawn mask.
    """
    points = np.asarray(landmarks, np.float64).reshape(-1, 2)
    eyes, mouth = kps[:2].mean(axis=0), kps[3:5].mean(axis=0)
    up = eyes - mouth
    length = float(np.linalg.norm(up))
    hull = landmark_hull(points, hw)
    if length == 0.0 or not hull.any():
        return hull
    height = float(np.ptp(np.nonzero(hull)[0]) + 1)
    swept = np.concatenate([points, points + up / length * reach * height])
    return landmark_hull(swept, hw)


def features_mask(landmarks: np.ndarray, hw: tuple[int, int], grow_px: int = 3) -> np.ndarray:
    """Eyes, brows and lips (the 106-point groups' hulls, grown by `grow_px`): not skin. bool (H, W)."""
    mask = np.zeros(hw, dtype=bool)
    if len(landmarks) != 106:
        return mask
    for start, stop in LANDMARK_106_FEATURES.values():
        mask |= landmark_hull(landmarks[start:stop], hw)
    if grow_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
        mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    return mask


def keep_from_init(refinement: MaskRefinement, kept: np.ndarray, source: str) -> MaskRefinement:
    """The refinement less what must stay the init photo's (hair, hat, glasses, occluders, from `source`).

    The given mask was refined without the skin-colour hair model, which this replaces.
    """
    mask = refinement.mask & ~kept
    removed = int(refinement.mask.sum() - mask.sum())
    head = refinement.reason.split("; ")[0]
    return MaskRefinement(
        mask,
        refinement.refined,
        f"{head}; {removed} px of hair, hat, glasses or occluders kept from init_image ({source})",
        hull_px=refinement.hull_px,
        hair_px_removed=removed,
    )
