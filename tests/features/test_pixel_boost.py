"""Pixel boost: the sub-pixel tiling and its round trip, the batched swap in one Triton request."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.faces.analysis import FaceAnalyzer, align_crop
from orchestrator.faces.options import FaceOptions
from orchestrator.faces.pixel_boost import merge_tiles, split_tiles, tiles_per_side
from orchestrator.faces.stage import FaceStage
from orchestrator.faces.triton_client import TritonModels
from tests.conftest import settled_statistics


@pytest.mark.parametrize("k", [1, 2, 4])
def test_tiles_are_sub_pixel_grids_and_reassemble_exactly(k: int) -> None:
    crop = np.random.default_rng(k).integers(0, 256, size=(128 * k, 128 * k, 3), dtype=np.uint8)
    tiles = split_tiles(crop, k)
    assert tiles.shape == (k * k, 128, 128, 3)
    for i in range(k):
        for j in range(k):
            np.testing.assert_array_equal(tiles[i * k + j], crop[i::k, j::k])
    np.testing.assert_array_equal(merge_tiles(tiles, k), crop)


def test_the_round_trip_holds_for_float_images_without_channels() -> None:
    crop = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    np.testing.assert_array_equal(merge_tiles(split_tiles(crop, 2), 2), crop)


def test_sizes_that_are_not_multiples_of_128_are_refused() -> None:
    assert [tiles_per_side(s) for s in (128, 256, 512)] == [1, 2, 4]
    with pytest.raises(ValueError, match="multiple of 128"):
        tiles_per_side(300)
    with pytest.raises(ValueError, match="3x3 tiles"):
        merge_tiles(np.zeros((4, 128, 128, 3), np.uint8), 3)


@pytest.mark.triton
@pytest.mark.parametrize("size", [256, 512])
def test_a_boosted_swap_is_one_batched_triton_request_of_the_tiles(
    triton_models: TritonModels, astronaut: np.ndarray, tom_hanks: np.ndarray, size: int
) -> None:
    analyzer = FaceAnalyzer(triton_models)
    stage = FaceStage(analyzer, standin=True)
    mask = sample_photos.astronaut_face_mask()
    before = settled_statistics(triton_models, "inswapper_128")
    result = stage.run(astronaut, mask, tom_hanks, options=FaceOptions(swap_size=size))
    after = settled_statistics(triton_models, "inswapper_128")
    assert after[1] - before[1] == 1, "one execution per swap, whatever the tiles"
    assert result.applied["swap_size"] == size
    changed = (result.blended != astronaut).any(axis=2)
    assert changed.any() and not (changed & ~result.mask.mask).any()


@pytest.mark.triton
def test_the_boosted_crop_is_each_tile_swapped_on_its_own_and_put_back(
    triton_models: TritonModels, astronaut: np.ndarray
) -> None:
    analyzer = FaceAnalyzer(triton_models)
    face = max(analyzer.detect(astronaut), key=lambda f: f.area)
    identity = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    crop, _ = align_crop(astronaut, face.kps, 512)
    boosted = analyzer.swap_crop(crop, identity)
    one_by_one = [analyzer.swap_crop(np.ascontiguousarray(tile), identity) for tile in split_tiles(crop, 4)]
    np.testing.assert_array_equal(boosted, merge_tiles(np.stack(one_by_one), 4))
    plain = analyzer.swap_crop(align_crop(astronaut, face.kps, 128)[0], identity)
    assert boosted.shape == (512, 512, 3) and plain.shape == (128, 128, 3)
