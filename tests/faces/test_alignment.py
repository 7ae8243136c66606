"""Alignment, crop and paste-back round trips on real photos, with dlib's independent keypoints."""

from __future__ import annotations

import numpy as np
import pytest
from insightface.utils import face_align

from orchestrator.faces.analysis import align_crop, paste_back
from tools.evaluation.dlib_faces import detect_faces


def _faces(image: np.ndarray) -> list[np.ndarray]:
    return [f.kps5 for f in detect_faces(image)]


@pytest.mark.parametrize("size", [112, 128])
def test_keypoints_land_on_the_arcface_template(astronaut: np.ndarray, group_photo: np.ndarray, size: int) -> None:
    template = face_align.arcface_dst * (size / 112.0 if size % 112 == 0 else size / 128.0)
    if size % 128 == 0:
        template = template + np.array([8.0 * size / 128.0, 0.0])
    for image in (astronaut, group_photo):
        for kps in _faces(image):
            _, matrix = align_crop(image, kps, size)
            mapped = kps @ matrix[:, :2].T + matrix[:, 2]
            # A similarity transform cannot fit five points exactly; a few pixels is a good fit.
            assert np.abs(mapped - template).max() < 0.12 * size


@pytest.mark.parametrize("size", [112, 128])
def test_crop_then_paste_back_reproduces_the_face(astronaut: np.ndarray, group_photo: np.ndarray, size: int) -> None:
    for image in (astronaut, group_photo):
        for kps in _faces(image):
            crop, matrix = align_crop(image, kps, size)
            pasted, support = paste_back(image, crop, matrix)
            assert support.sum() > 0.5 * size * size * 0.5  # the face area, upsampled or not
            np.testing.assert_array_equal(pasted[~support], image[~support])
            error = np.abs(pasted[support].astype(int) - image[support].astype(int)).mean()
            assert error < 12, f"round trip error {error:.1f} on a {size} crop"
            # The support surrounds the keypoints it was aligned on.
            for x, y in kps.round().astype(int):
                assert support[y, x]


def test_a_different_crop_changes_only_the_support(astronaut: np.ndarray) -> None:
    kps = _faces(astronaut)[0]
    crop, matrix = align_crop(astronaut, kps, 128)
    pasted, support = paste_back(astronaut, np.full_like(crop, 200), matrix)
    assert (pasted[support] == 200).all()
    np.testing.assert_array_equal(pasted[~support], astronaut[~support])
