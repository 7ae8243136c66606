"""Colour match and the colour difference across the mask's edge, on a real photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import color

from orchestrator import sample_photos
from orchestrator.imaging import colour as colour_module
from orchestrator.imaging.blend import BlendConfig, erode, feather_blend
from orchestrator.imaging.colour import EdgeRing, edge_delta_e, match_colour


def _tinted(image: np.ndarray, region: np.ndarray, shift_lab: tuple[float, float, float], gain: float) -> np.ndarray:
    """The image with `region` moved in Lab (a different skin tone, as a swap from another photo gives)."""
    lab = color.rgb2lab(image)
    mean = lab[region].mean(axis=0)
    lab[region] = (lab[region] - mean) * gain + mean + np.array(shift_lab)
    out = image.copy()
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)  # clips out-of-gamut colours quietly
    out[region] = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)[region]
    return out


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo and an ellipse over her face's skin (forehead to chin, no hair)."""
    mask = np.zeros((512, 512), np.uint8)
    cv2.ellipse(mask, (215, 125), (30, 40), 0, 0, 360, 1, -1)
    return sample_photos.astronaut(), mask.astype(bool)


def test_matching_moves_the_swapped_skin_statistics_to_the_target(face: tuple[np.ndarray, np.ndarray]) -> None:
    init, mask = face
    swapped = _tinted(init, mask, (-10.0, 6.0, 12.0), gain=1.3)
    skin = erode(mask, 4)
    matched = match_colour(swapped, init, skin, mask)
    assert matched.applied
    target, before, after = (color.rgb2lab(x)[skin] for x in (init, swapped, matched.image))
    assert np.abs(before.mean(axis=0) - target.mean(axis=0)).max() > 8
    np.testing.assert_allclose(after.mean(axis=0), target.mean(axis=0), atol=1.0)
    np.testing.assert_allclose(after.std(axis=0), target.std(axis=0), rtol=0.1, atol=0.5)
    assert (matched.image[~mask] == swapped[~mask]).all(), "nothing changes outside the pasted region"
    assert matched.shift_lab[2] == pytest.approx(-12.0, abs=1.5)


def test_matching_lowers_the_colour_difference_across_the_edge(face: tuple[np.ndarray, np.ndarray]) -> None:
    init, mask = face
    swapped = _tinted(init, mask, (-10.0, 6.0, 12.0), gain=1.0)
    matched = match_colour(swapped, init, erode(mask, 4), mask).image
    config = BlendConfig()
    unmatched_e = edge_delta_e(feather_blend(init, swapped, mask, config), init, mask)
    matched_e = edge_delta_e(feather_blend(init, matched, mask, config), init, mask)
    assert unmatched_e > 4 * matched_e and unmatched_e > 5, (unmatched_e, matched_e)
    assert edge_delta_e(init, init, mask) == 0.0


def test_too_little_skin_leaves_the_image_as_it_is(face: tuple[np.ndarray, np.ndarray]) -> None:
    init, mask = face
    skin = np.zeros_like(mask)
    skin[100:104, 200:204] = True
    result = match_colour(init, init, skin, mask)
    assert not result.applied and "too little skin" in result.reason and result.image is init


def test_the_edge_difference_is_the_colour_step_inside_the_ring() -> None:
    init = np.full((96, 96, 3), (120, 100, 90), np.uint8)
    mask = np.zeros((96, 96), bool)
    mask[8:88, 8:88] = True
    image = init.copy()
    image[mask] = (150, 100, 90)
    step = color.deltaE_cie76(  # type: ignore[no-untyped-call]
        color.rgb2lab(np.array([[[150, 100, 90]]], np.uint8)), color.rgb2lab(np.array([[[120, 100, 90]]], np.uint8))
    )[0, 0]
    # Smoothing blurs the step over the outermost pixels of the ring only.
    assert edge_delta_e(image, init, mask, width_px=20, smooth_px=0.5) == pytest.approx(float(step), rel=0.05)


def test_no_ring_gives_nan() -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    assert np.isnan(edge_delta_e(image, image, np.zeros((16, 16), bool)))
    assert np.isnan(edge_delta_e(image, image, np.ones((16, 16), bool)))


@pytest.mark.parametrize("corner", [(300, 400), (0, 0), (560, 740)])
def test_edge_delta_e_on_the_masks_box_equals_the_whole_frame(corner: tuple[int, int]) -> None:
    """The distance transform and the blur run on a window around the mask's ring, not the whole photo, and
    the init photo's side once for all of a task's candidates (`EdgeRing`): the same figure as over the whole
    frame, for a mask inside the photo and masks touching its edges, for every candidate."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    init = rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)
    mask = np.zeros((600, 800), bool)
    y, x = corner
    mask[max(y - 60, 0) : y + 60, max(x - 50, 0) : x + 50] = True
    mask[y : y + 20, x : x + 15] = False  # a hole: distances to it count too

    depth = ndimage.distance_transform_edt(mask)  # the whole frame, as the figure is defined
    ring = mask & (depth <= 28.0)

    def whole_frame(image: np.ndarray) -> float:
        sigma = (2.0, 2.0, 0)
        labs = [
            colour_module._lab(ndimage.gaussian_filter(x.astype(np.float32) / 255.0, sigma=sigma))
            for x in (image, init)
        ]
        return float(np.mean(np.linalg.norm(labs[0][ring] - labs[1][ring], axis=-1)))

    shared = EdgeRing.of(init, mask)
    for _ in range(3):
        image = np.clip(init.astype(np.int16) + rng.integers(-40, 40, init.shape), 0, 255).astype(np.uint8)
        expected = whole_frame(image)
        assert edge_delta_e(image, init, mask) == pytest.approx(expected, rel=1e-4)
        assert shared.delta_e(image) == pytest.approx(expected, rel=1e-4)
