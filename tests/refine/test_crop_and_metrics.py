"""Crop geometry of the refinement path and the local metrics, on a real photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.imaging.blend import feather_blend
from orchestrator.refine.crop import crop_box, extract, put_back
from orchestrator.scoring.local_metrics import boundary_consistency, cosine, identity_score


def test_crop_box_is_a_square_around_the_mask_with_margin() -> None:
    mask = sample_photos.astronaut_face_mask()
    box = crop_box(mask, margin=0.25)
    ys, xs = np.nonzero(mask)
    assert box.width == box.height
    assert box.x0 <= xs.min() and box.x1 > xs.max() and box.y0 <= ys.min() and box.y1 > ys.max()
    assert box.width >= 1.5 * (np.ptp(ys) + 1) - 1


def test_crop_box_stays_inside_the_image_near_a_corner() -> None:
    mask = np.zeros((300, 400), bool)
    mask[0:40, 370:400] = True
    box = crop_box(mask)
    assert 0 <= box.x0 < box.x1 <= 400 and 0 <= box.y0 < box.y1 <= 300
    assert mask[box.slices()].sum() == mask.sum()


def test_crop_box_of_a_large_mask_is_limited_by_the_image() -> None:
    mask = np.ones((200, 300), bool)
    box = crop_box(mask)
    assert box.width == box.height == 200


def test_extract_then_put_back_round_trips(astronaut: np.ndarray) -> None:
    box = crop_box(sample_photos.astronaut_face_mask())
    for size in (128, 512):
        crop = extract(astronaut, box, size)
        assert crop.shape == (size, size, 3)
        restored = put_back(astronaut, crop, box)
        outside = np.ones(astronaut.shape[:2], bool)
        outside[box.slices()] = False
        np.testing.assert_array_equal(restored[outside], astronaut[outside])
        error = np.abs(restored[box.slices()].astype(int) - astronaut[box.slices()].astype(int)).mean()
        assert error < (4 if size >= box.width else 10)


def test_an_edited_crop_changes_nothing_outside_the_mask_after_blending(astronaut: np.ndarray) -> None:
    mask = sample_photos.astronaut_face_mask()
    box = crop_box(mask)
    edited = 255 - extract(astronaut, box, 256)
    out = feather_blend(astronaut, put_back(astronaut, edited, box), mask)
    np.testing.assert_array_equal(out[~mask], astronaut[~mask])
    assert (out[mask] != astronaut[mask]).any()


def test_identity_score_maps_cosine_to_ten() -> None:
    a = np.array([1.0, 2.0, 3.0])
    assert identity_score(a, 5 * a) == pytest.approx(10.0)
    assert identity_score(a, -a) == 0.0
    assert cosine(np.zeros(3), a) == 0.0


def test_a_seam_scores_worse_than_a_feathered_blend(astronaut: np.ndarray) -> None:
    mask = sample_photos.astronaut_face_mask()
    # A candidate whose face is a colour-shifted copy of the original: pasted hard, it leaves a seam.
    shifted = np.clip(astronaut.astype(int) + np.array([40, -20, -20]), 0, 255).astype(np.uint8)
    hard = astronaut.copy()
    hard[mask] = shifted[mask]
    feathered = feather_blend(astronaut, shifted, mask)
    untouched = boundary_consistency(astronaut, astronaut, mask)
    assert untouched == pytest.approx(10.0)
    assert boundary_consistency(hard, astronaut, mask) < boundary_consistency(feathered, astronaut, mask) < untouched


def test_a_mask_without_edges_scores_full() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    assert boundary_consistency(image, image, np.ones((50, 50), bool)) == 10.0
    blob = np.zeros((50, 50), np.uint8)
    cv2.circle(blob, (25, 25), 10, 1, -1)
    assert boundary_consistency(image, image, blob.astype(bool)) == pytest.approx(10.0)


def test_texture_realism_penalises_a_plastic_face(astronaut: np.ndarray) -> None:
    from orchestrator.scoring.local_metrics import texture_realism

    mask = sample_photos.astronaut_face_mask()
    plastic = astronaut.copy()
    plastic[mask] = cv2.GaussianBlur(astronaut, (0, 0), 4)[mask]  # over-smoothed skin
    noisy = astronaut.copy()
    grain = np.random.default_rng(0).normal(0, 40, astronaut.shape)
    noisy[mask] = np.clip(astronaut.astype(float) + grain, 0, 255).astype(np.uint8)[mask]
    original = texture_realism(astronaut, mask)
    assert original > 5.0
    assert texture_realism(plastic, mask) < original - 2
    assert texture_realism(noisy, mask) < original - 2


def _whole_frame_boundary(candidate: np.ndarray, init: np.ndarray, mask: np.ndarray, band_px: int = 6) -> float:
    """The boundary measure as its docstring defines it, on the whole frame (the way it was computed before)."""
    from orchestrator.imaging.blend import erode

    region = mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_px + 1, 2 * band_px + 1))
    outside = cv2.dilate(region.astype(np.uint8), kernel).astype(bool) & ~region
    inside = region & ~erode(region, band_px)
    lab_c = cv2.cvtColor(candidate, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_i = cv2.cvtColor(init, cv2.COLOR_RGB2LAB).astype(np.float32)

    def gradient(lab: np.ndarray) -> np.ndarray:
        return np.hypot(cv2.Sobel(lab[..., 0], cv2.CV_32F, 1, 0), cv2.Sobel(lab[..., 0], cv2.CV_32F, 0, 1))

    seam = float(np.maximum(gradient(lab_c) - gradient(lab_i), 0)[inside | outside].mean()) / 4.0
    colour = float(np.linalg.norm(lab_c[inside].mean(axis=0) - lab_i[inside].mean(axis=0)))
    return float(10.0 * np.exp(-(seam + colour) / 12.0))


def _whole_frame_texture(candidate: np.ndarray, mask: np.ndarray) -> float:
    from orchestrator.imaging.blend import erode

    region = erode(mask.astype(bool), 3)
    ys, xs = np.nonzero(region)
    size = max(int(max(np.ptp(ys), np.ptp(xs)) * 0.35), 3)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    ring = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask.astype(bool)
    laplacian = cv2.Laplacian(cv2.cvtColor(candidate, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F, ksize=3)
    ratio = np.log((laplacian[region].std() + 1.0) / (laplacian[ring].std() + 1.0))
    return float(10.0 * np.exp(-abs(ratio) / 0.6))


@pytest.mark.parametrize("where", ["inside", "top-left corner", "right edge", "bottom edge"])
def test_the_local_metrics_measured_near_the_mask_equal_the_whole_frame_ones(astronaut: np.ndarray, where: str) -> None:
    """The per-task parts (the rings, the init image's gradient) are computed once and every candidate is
    read only around the mask: the scores are the whole frame's, for masks inside the photo and touching
    its edges (a window one pixel too tight changes them)."""
    from orchestrator.scoring.local_metrics import (
        boundary_consistency_in,
        edge_bands,
        texture_realism_in,
        texture_rings,
    )

    rng = np.random.default_rng(3)
    candidate = np.clip(astronaut.astype(int) + rng.normal(0, 25, astronaut.shape), 0, 255).astype(np.uint8)
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    centre = {"inside": (260, 170), "top-left corner": (20, 15), "right edge": (505, 260), "bottom edge": (250, 508)}
    cv2.ellipse(mask, centre[where], (70, 95), 15, 0, 360, 1, -1)
    mask = mask.astype(bool)
    candidate[~mask] = astronaut[~mask]

    bands, rings = edge_bands(astronaut, mask), texture_rings(mask)
    assert bands is not None and rings is not None
    assert rings.region.size < mask.size / 2 and bands.ring.size < mask.size / 2  # only a window is read
    assert boundary_consistency_in(candidate, bands) == pytest.approx(
        _whole_frame_boundary(candidate, astronaut, mask), abs=1e-6
    )
    assert texture_realism_in(candidate, rings) == pytest.approx(_whole_frame_texture(candidate, mask), abs=1e-6)
    assert boundary_consistency_in(candidate, bands) < 9.5  # the noise shows at the edge: a real comparison
