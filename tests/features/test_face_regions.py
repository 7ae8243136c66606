"""Hair and occluders kept from the init photo: FaceFusion's face parser and occluder (stand-ins in
Triton) on real photos, and the skin-colour model as the fallback when Triton serves no parser."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.faces.analysis import FaceAnalyzer
from orchestrator.faces.options import FaceDefaults
from orchestrator.faces.parsing import FACE_CLASSES, KEPT_CLASSES, SKIN, FaceRegions, face_regions
from orchestrator.faces.selection import choose_target_face
from orchestrator.faces.stage import FaceStage, FaceStageConfig, skin_region
from orchestrator.faces.triton_client import TritonModels
from orchestrator.imaging.blend import BlendConfig
from orchestrator.imaging.masks import MaskRefinement, keep_from_init, landmark_hull, refine_mask
from servers.triton.contracts import PARSER_CLASSES


def test_hair_hat_glasses_and_covered_pixels_are_kept_and_beyond_the_hull_only_the_face_is_replaced() -> None:
    hair, glasses, neck = (PARSER_CLASSES.index(c) for c in ("hair", "glasses", "neck"))
    labels = np.full((4, 6), SKIN, np.int16)
    labels[0, 0], labels[0, 1], labels[1, 0], labels[1, 1] = hair, glasses, neck, -1
    hull = np.zeros((4, 6), bool)
    hull[:, 3:] = True
    labels[2, 4] = hair  # inside the hull too
    labels[3, 5] = neck  # inside the hull: kept as the parser's, the landmarks say it is face
    visible = np.ones((4, 6), np.float32)
    visible[3, 3] = 0.2
    regions = FaceRegions(labels, visible, "parser", "occluder")
    kept = regions.kept(hull)
    expected = np.zeros((4, 6), bool)
    expected[0, 0] = expected[0, 1] = expected[1, 0] = expected[1, 1] = True  # hair, glasses, neck, outside crop
    expected[2, 4] = True  # hair inside the hull
    expected[3, 3] = True  # covered
    np.testing.assert_array_equal(kept, expected)
    assert set(KEPT_CLASSES).isdisjoint(FACE_CLASSES)
    np.testing.assert_array_equal(regions.skin, labels == SKIN)


def test_keeping_from_init_takes_pixels_out_of_the_refined_mask_and_says_why() -> None:
    mask = np.ones((8, 8), bool)
    kept = np.zeros((8, 8), bool)
    kept[:2] = True
    refinement = MaskRefinement(mask, True, "landmark hull united with the given mask; 0 px of hair excluded", 30)
    out = keep_from_init(refinement, kept, "face parser p")
    np.testing.assert_array_equal(out.mask, mask & ~kept)
    assert out.hair_px_removed == 16 and out.refined and out.hull_px == 30
    assert out.reason == (
        "landmark hull united with the given mask; 16 px of hair, hat, glasses or occluders kept from init_image "
        "(face parser p)"
    )


@pytest.fixture(scope="module")
def analyzer(triton_models: TritonModels) -> FaceAnalyzer:
    return FaceAnalyzer(triton_models)


@pytest.mark.triton
@pytest.mark.parametrize("photo", ["astronaut", "group"])
def test_what_the_parser_and_occluder_keep_is_the_init_photos_in_the_result(
    analyzer: FaceAnalyzer, photo: str, tom_hanks: np.ndarray
) -> None:
    """The astronaut has hair over her forehead; the group photo has six people, one chosen by index."""
    init = sample_photos.astronaut() if photo == "astronaut" else sample_photos.group()
    result = FaceStage(analyzer, standin=True).run(init, None, tom_hanks)
    assert result.applied["hair_model"] == "face parser" and result.applied["occluder"] == "xseg_1"
    assert "face parser bisenet_resnet_34, occluder xseg_1" in result.mask.reason
    regions = face_regions(analyzer, init, result.target)
    assert regions is not None and regions.visible is not None
    assert result.target.landmarks is not None
    kept = regions.kept(landmark_hull(result.target.landmarks, init.shape[:2]))
    covered = regions.visible < 0.5
    assert covered.any() and np.isin(regions.labels, KEPT_CLASSES).any(), "the stand-ins mark some of both"
    assert not (result.mask.mask & kept).any()
    unchanged = (result.blended == init).all(axis=2)
    assert unchanged[kept].all(), "hair, glasses and occluders stay the init photo's"
    assert result.mask.hair_px_removed > 0


@pytest.mark.triton
def test_colour_statistics_come_from_the_parsers_skin(analyzer: FaceAnalyzer, astronaut: np.ndarray) -> None:
    mask = sample_photos.astronaut_face_mask()
    face = choose_target_face(analyzer.detect(astronaut), mask)
    analyzer.add_landmarks(astronaut, [face])
    regions = face_regions(analyzer, astronaut, face)
    assert regions is not None
    skin = skin_region(mask, face, BlendConfig(), regions)
    assert skin.any() and (regions.labels[skin] == SKIN).all()


@pytest.mark.triton
def test_without_a_parser_in_triton_the_skin_colour_model_excludes_hair(
    triton_models: TritonModels, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    absent = FaceDefaults(parser_model="no_such_parser", occluder_model="no_such_occluder")
    stage = FaceStage(FaceAnalyzer(triton_models), FaceStageConfig(faces=absent), standin=True)
    mask = sample_photos.astronaut_face_mask()
    result = stage.run(astronaut, mask, tom_hanks)
    assert result.applied["hair_model"] == "skin colour" and "occluder" not in result.applied
    assert "hair or non-skin excluded" in result.mask.reason
    expected = refine_mask(astronaut, mask, result.target.landmarks)
    np.testing.assert_array_equal(result.mask.mask, expected.mask)
