"""The feathered blend: init untouched outside the mask, full strength inside, a band in between."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from orchestrator.imaging.blend import BlendConfig, Feather, erode, feather_alpha, feather_blend


def _disc(hw: tuple[int, int], center: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros(hw, np.uint8)
    cv2.circle(mask, center, radius, 1, -1)
    return mask.astype(bool)


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


@pytest.fixture
def images(astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    candidate = np.ascontiguousarray(255 - astronaut)  # as different from init as can be
    return astronaut, candidate


@pytest.mark.parametrize("seed", range(5))
def test_outside_the_mask_the_output_is_the_init_image(images: tuple[np.ndarray, np.ndarray], seed: int) -> None:
    init, candidate = images
    rng = np.random.default_rng(seed)
    mask = np.zeros(init.shape[:2], np.uint8)
    for _ in range(3):
        cv2.ellipse(
            mask,
            (int(rng.integers(0, 512)), int(rng.integers(0, 512))),
            (int(rng.integers(10, 120)), int(rng.integers(10, 120))),
            float(rng.integers(0, 180)),
            0,
            360,
            1,
            -1,
        )
    out = feather_blend(init, candidate, mask.astype(bool))
    np.testing.assert_array_equal(out[~mask.astype(bool)], init[~mask.astype(bool)])


def test_interior_keeps_the_candidate_at_full_strength(images: tuple[np.ndarray, np.ndarray]) -> None:
    init, candidate = images
    mask = _disc((512, 512), (256, 256), 120)
    config = BlendConfig(erosion_px=3, feather_px=25)
    out = feather_blend(init, candidate, mask, config)
    deep = _distance_inside(mask) > config.erosion_px + config.feather_px + 1
    assert deep.sum() > 10_000
    np.testing.assert_array_equal(out[deep], candidate[deep])


def test_feather_band_has_the_configured_width(images: tuple[np.ndarray, np.ndarray]) -> None:
    mask = _disc((512, 512), (256, 256), 150)
    for erosion, feather in ((3, 25), (0, 10), (6, 40)):
        alpha = feather_alpha(mask, BlendConfig(erosion_px=erosion, feather_px=feather))
        depth = _distance_inside(mask)
        partial = (alpha > 0) & (alpha < 1)
        # Partial alpha only between the eroded edge and feather px further in (1 px of raster slack).
        assert depth[partial].min() >= erosion - 1
        assert depth[partial].max() <= erosion + feather + 1
        assert (alpha[depth <= erosion - 1] == 0).all(), "the erosion band must keep init exactly"
        # Along a ray from the edge inward, alpha grows steadily.
        ray = alpha[256, 106:256]
        assert (np.diff(ray) >= -1e-6).all()


def test_erosion_shrinks_by_the_radius() -> None:
    mask = _disc((200, 200), (100, 100), 50)
    eroded = erode(mask, 3)
    assert eroded.sum() < mask.sum()
    assert not (eroded & ~mask).any()
    depth = _distance_inside(mask)
    assert (eroded <= (depth > 2.0)).all() and (eroded >= (depth > 4.5)).all()


def test_a_mask_touching_the_border_is_feathered_there_too(images: tuple[np.ndarray, np.ndarray]) -> None:
    init, candidate = images
    mask = np.zeros((512, 512), bool)
    mask[:100, :100] = True
    out = feather_blend(init, candidate, mask)
    np.testing.assert_array_equal(out[0, 0], init[0, 0])


def test_bad_parameters_and_shapes_are_refused(images: tuple[np.ndarray, np.ndarray]) -> None:
    init, candidate = images
    with pytest.raises(ValueError, match="feather_px must be > 0"):
        BlendConfig(feather_px=0)
    with pytest.raises(ValueError, match="erosion_px must be >= 0"):
        BlendConfig(erosion_px=-1)
    with pytest.raises(ValueError, match="candidate shape"):
        feather_blend(init, candidate[:10], np.ones((512, 512), bool))
    with pytest.raises(ValueError, match="mask shape"):
        feather_blend(init, candidate, np.ones((10, 10), bool))


@pytest.mark.parametrize("seed", range(4))
def test_a_feather_applied_to_many_candidates_equals_the_whole_frame_blend(
    images: tuple[np.ndarray, np.ndarray], seed: int
) -> None:
    """`Feather` blends only the box around its alpha: the result must equal the whole-frame definition."""
    init, _ = images
    rng = np.random.default_rng(seed)
    mask = np.zeros(init.shape[:2], np.uint8)
    cv2.ellipse(mask, (int(rng.integers(0, 512)), int(rng.integers(0, 512))), (90, 60), 30.0, 0, 360, 1, -1)
    config = BlendConfig(erosion_px=int(rng.integers(0, 5)), feather_px=float(rng.integers(5, 40)))
    feather = Feather.of(mask.astype(bool), config)
    alpha = feather_alpha(mask.astype(bool), config)[..., None]
    for _ in range(3):
        candidate = rng.integers(0, 256, init.shape, dtype=np.uint8)
        whole = np.clip(np.rint(init + alpha * (candidate.astype(np.float32) - init)), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(feather.apply(init, candidate), whole)


def test_an_empty_feather_returns_the_init_image(images: tuple[np.ndarray, np.ndarray]) -> None:
    init, candidate = images
    out = Feather.of(np.zeros(init.shape[:2], bool)).apply(init, candidate)
    np.testing.assert_array_equal(out, init)
