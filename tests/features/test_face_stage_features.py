"""The face features in the face stage, through a real tritonserver serving the stand-ins, on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.errors import InvalidInputError, NoFaceError
from orchestrator.faces.analysis import Face, FaceAnalyzer
from orchestrator.faces.identity import normalise
from orchestrator.faces.options import FaceOptions, TargetChoice
from orchestrator.faces.parsing import face_regions
from orchestrator.faces.selection import largest_face
from orchestrator.faces.stage import FaceStage
from orchestrator.faces.triton_client import TritonModels
from orchestrator.imaging.masks import landmark_hull

pytestmark = pytest.mark.triton

GREY = np.full((200, 200, 3), 128, np.uint8)  # no face, even for the stand-in detector


@pytest.fixture(scope="module")
def analyzer(triton_models: TritonModels) -> FaceAnalyzer:
    return FaceAnalyzer(triton_models)


@pytest.fixture(scope="module")
def stage(analyzer: FaceAnalyzer) -> FaceStage:
    return FaceStage(analyzer, standin=True)


def _embedding(analyzer: FaceAnalyzer, photo: np.ndarray) -> np.ndarray:
    face = largest_face(analyzer.detect(photo), "photo")
    analyzer.add_embeddings(photo, [face])
    assert face.embedding is not None
    return normalise(face.embedding)


def test_several_photos_swap_in_their_mean_identity(
    stage: FaceStage, analyzer: FaceAnalyzer, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    photos = [tom_hanks, tom_hanks[:, ::-1].copy(), (tom_hanks * 0.8).astype(np.uint8)]
    mask = sample_photos.astronaut_face_mask()
    result = stage.run(astronaut, mask, photos, options=FaceOptions(min_identity_cosine=0.0))
    expected = normalise(sum(_embedding(analyzer, p) for p in photos))  # type: ignore[arg-type]
    assert result.identity is not None
    np.testing.assert_allclose(result.identity, expected, atol=1e-5)
    assert result.applied["character_photos"] == 3
    single = stage.run(astronaut, mask, photos[:1], options=FaceOptions(min_identity_cosine=0.0))
    assert not np.array_equal(single.raw_swap, result.raw_swap), "the mean identity is what is swapped in"
    assert result.character.embedding is not None
    np.testing.assert_allclose(normalise(result.character.embedding), _embedding(analyzer, photos[0]), atol=1e-5)


def test_the_photo_of_another_person_is_refused_naming_it(
    stage: FaceStage, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    # The same photo twice and another person's: the third is the one that disagrees.
    photos = [tom_hanks, tom_hanks, astronaut]
    with pytest.raises(InvalidInputError) as error:
        stage.run(astronaut, sample_photos.astronaut_face_mask(), photos, options=FaceOptions(min_identity_cosine=0.5))
    assert error.value.field == "images.character_images[2]"


def test_a_photo_without_a_face_is_refused_naming_it(
    stage: FaceStage, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    with pytest.raises(NoFaceError) as error:
        stage.run(astronaut, sample_photos.astronaut_face_mask(), [tom_hanks, GREY])
    assert str(error.value).startswith("images.character_images[1]")
    with pytest.raises(NoFaceError) as single:
        stage.run(astronaut, sample_photos.astronaut_face_mask(), GREY)
    assert str(single.value).startswith("character_image")


def test_without_a_mask_the_largest_face_is_replaced_inside_a_mask_built_from_it(
    stage: FaceStage, analyzer: FaceAnalyzer, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    result = stage.run(astronaut, None, tom_hanks)
    largest = largest_face(analyzer.detect(astronaut), "init_image")
    np.testing.assert_allclose(result.target.bbox, largest.bbox)
    assert result.mask.refined and result.mask.reason.startswith("no mask given")
    assert result.target.landmarks is not None
    hull = landmark_hull(result.target.landmarks, astronaut.shape[:2])
    regions = face_regions(analyzer, astronaut, result.target)
    assert regions is not None
    assert not (hull & ~result.mask.mask & ~regions.kept(hull)).any(), "the hull is replaced, less hair and occluders"
    assert result.applied["mask_source"] == "built from the face"
    assert result.applied["target_choice"] == "largest"
    changed = (result.blended != astronaut).any(axis=2)
    assert changed.any() and not (changed & ~result.mask.mask).any()


def test_the_face_at_an_index_is_replaced(stage: FaceStage, analyzer: FaceAnalyzer, group_photo: np.ndarray) -> None:
    faces = sorted(analyzer.detect(group_photo), key=lambda f: (float(f.bbox[0]), float(f.bbox[1])))
    options = FaceOptions(target=TargetChoice.INDEX, target_index=2)
    result = stage.run(group_photo, None, sample_photos.tom_hanks(), options=options)
    np.testing.assert_allclose(result.target.bbox, faces[2].bbox)
    with pytest.raises(InvalidInputError) as error:
        stage.run(group_photo, None, sample_photos.tom_hanks(), options=FaceOptions(TargetChoice.INDEX, len(faces)))
    assert error.value.field == "face.target_index" and f"{len(faces)} face(s)" in error.value.problem


def test_the_face_closest_to_the_reference_is_replaced(
    stage: FaceStage, analyzer: FaceAnalyzer, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    # The init photo as its own reference: its largest face is its own best match (cosine 1).
    options = FaceOptions(target=TargetChoice.REFERENCE)
    result = stage.run(astronaut, None, tom_hanks, options=options, reference=astronaut)
    largest: Face = largest_face(analyzer.detect(astronaut), "init_image")
    np.testing.assert_allclose(result.target.bbox, largest.bbox)
    assert result.applied["reference_cosine"] == pytest.approx(1.0, abs=1e-3)
    strict = FaceOptions(target=TargetChoice.REFERENCE, min_reference_cosine=0.999)
    with pytest.raises(InvalidInputError) as error:
        stage.run(astronaut, None, tom_hanks, options=strict, reference=tom_hanks)
    assert error.value.field == "images.reference_face"
    with pytest.raises(NoFaceError) as none:
        stage.run(astronaut, None, tom_hanks, options=options, reference=GREY)
    assert str(none.value).startswith("images.reference_face")


def test_colour_match_lowers_the_colour_difference_at_the_edge(
    stage: FaceStage, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    mask = sample_photos.astronaut_face_mask()
    on = stage.run(astronaut, mask, tom_hanks, options=FaceOptions(colour_match=True))
    off = stage.run(astronaut, mask, tom_hanks, options=FaceOptions(colour_match=False))
    assert on.applied["colour_match"] == "applied" and off.applied["colour_match"] == "off"
    assert float(on.applied["edge_delta_e"]) < float(off.applied["edge_delta_e"])
    outside = ~on.mask.mask
    assert (on.blended[outside] == astronaut[outside]).all()
