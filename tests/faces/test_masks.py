"""Mask refinement on a real photo: hull united with the given mask, hair excluded, clear fallbacks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.imaging.masks import MaskRefinementConfig, landmark_hull, refine_mask
from tools.evaluation.dlib_faces import detect_faces


@pytest.fixture(scope="module")
def landmarks(astronaut: np.ndarray) -> np.ndarray:
    return detect_faces(astronaut)[0].landmarks68


@pytest.fixture(scope="module")
def hair(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's hair: the dark pixels of her head region (Lab lightness under 70)."""
    return cv2.cvtColor(astronaut, cv2.COLOR_RGB2LAB)[..., 0] < 70


def test_refined_mask_keeps_the_face_and_drops_the_hair(
    astronaut: np.ndarray, landmarks: np.ndarray, hair: np.ndarray
) -> None:
    given = sample_photos.astronaut_face_mask()
    result = refine_mask(astronaut, given, landmarks)
    assert result.refined, result.reason
    hull = landmark_hull(landmarks, given.shape)
    assert (result.mask >= hull).all(), "every pixel of the landmark hull stays in the mask"
    hair_in_given = int((hair & given).sum())
    assert hair_in_given > 2000  # the test means something: the drawn mask covers a lot of hair
    assert (hair & result.mask).sum() < 0.05 * hair_in_given
    assert result.hair_px_removed > 0 and "excluded" in result.reason


def test_the_forehead_above_the_brows_is_kept(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    given = sample_photos.astronaut_face_mask()
    result = refine_mask(astronaut, given, landmarks)
    brow_y = int(landmarks[17:27, 1].min())
    x = int(landmarks[27, 0])  # above the nose bridge
    assert result.mask[brow_y - 8, x], "skin just above the brows is face"


def test_hull_is_united_with_a_small_given_mask(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    given = np.zeros((512, 512), bool)
    given[120:140, 210:240] = True  # a patch on the nose only
    result = refine_mask(astronaut, given, landmarks, MaskRefinementConfig(exclude_hair=False))
    assert result.refined
    np.testing.assert_array_equal(result.mask, given | landmark_hull(landmarks, given.shape))


def test_without_landmarks_the_given_mask_is_kept_with_a_reason(astronaut: np.ndarray) -> None:
    given = sample_photos.astronaut_face_mask()
    result = refine_mask(astronaut, given, None)
    assert not result.refined and "no face landmarks" in result.reason
    np.testing.assert_array_equal(result.mask, given)


def test_a_face_outside_the_given_mask_falls_back(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    given = np.zeros((512, 512), bool)
    given[400:500, 20:120] = True  # far from her face
    result = refine_mask(astronaut, given, landmarks)
    assert not result.refined and "overlaps the given mask by 0%" in result.reason
    np.testing.assert_array_equal(result.mask, given)


def test_refinement_can_be_disabled(astronaut: np.ndarray, landmarks: np.ndarray) -> None:
    given = sample_photos.astronaut_face_mask()
    result = refine_mask(astronaut, given, landmarks, MaskRefinementConfig(enabled=False))
    assert not result.refined and "disabled" in result.reason
