"""The mask built from the face when a request has none, and the landmark groups that are not skin."""

from __future__ import annotations

import numpy as np

from orchestrator.imaging.masks import LANDMARK_106_FEATURES, face_mask_from_landmarks, features_mask, landmark_hull


def _face_landmarks(center: tuple[float, float], rx: float, ry: float) -> np.ndarray:
    """106 points on and inside an ellipse (brows at the top, chin at the bottom), image y down."""
    angles = np.linspace(0, 2 * np.pi, 106, endpoint=False)
    radius = np.where(np.arange(106) % 2 == 0, 1.0, 0.5)
    return np.stack([center[0] + rx * radius * np.cos(angles), center[1] + ry * radius * np.sin(angles)], axis=1)


def _kps(center: tuple[float, float], ry: float, up: tuple[float, float]) -> np.ndarray:
    cx, cy = center
    ux, uy = up
    eyes = (cx + 0.3 * ry * ux, cy + 0.3 * ry * uy)
    mouth = (cx - 0.4 * ry * ux, cy - 0.4 * ry * uy)
    return np.array([eyes, eyes, center, mouth, mouth], np.float32)


def test_the_built_mask_is_the_hull_swept_up_to_the_forehead() -> None:
    landmarks = _face_landmarks((100, 120), 30, 40)
    hull = landmark_hull(landmarks, (240, 200))
    built = face_mask_from_landmarks(landmarks, _kps((100, 120), 40, (0.0, -1.0)), (240, 200), reach=0.4)
    assert (built | hull).sum() == built.sum(), "the hull is inside"
    hull_rows, built_rows = np.nonzero(hull)[0], np.nonzero(built)[0]
    height = hull_rows.max() - hull_rows.min() + 1
    assert built_rows.min() == hull_rows.min() - round(0.4 * height), "reaches 0.4 hull heights above"
    assert built_rows.max() == hull_rows.max(), "not below the chin"


def test_up_follows_the_face_not_the_image() -> None:
    """A face lying on its side: the forehead is to the right, and so is the sweep."""
    landmarks = _face_landmarks((100, 100), 40, 30)
    hull = landmark_hull(landmarks, (200, 240))
    built = face_mask_from_landmarks(landmarks, _kps((100, 100), 40, (1.0, 0.0)), (200, 240), reach=0.4)
    assert np.nonzero(built)[1].max() > np.nonzero(hull)[1].max() + 10
    assert np.nonzero(built)[1].min() == np.nonzero(hull)[1].min()


def test_eyes_brows_and_lips_are_not_skin() -> None:
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(20, 180, size=(106, 2))
    features = features_mask(landmarks, (200, 200), grow_px=0)
    for start, stop in LANDMARK_106_FEATURES.values():
        assert features[landmark_hull(landmarks[start:stop], (200, 200))].all()
    contour_only = np.ones(106, bool)
    for start, stop in LANDMARK_106_FEATURES.values():
        contour_only[start:stop] = False
    assert contour_only[:33].all() and contour_only[72:87].all(), "jaw contour and nose are skin"
    assert not features_mask(landmarks[:68], (200, 200)).any(), "other mark-ups are not guessed at"
