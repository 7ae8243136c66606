"""Choosing the target face: by index (left to right), largest, closest to a reference."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import InvalidInputError, NoFaceError
from orchestrator.faces.analysis import Face
from orchestrator.faces.selection import face_at_index, largest_face, left_to_right, most_similar_face


def _face(x: float, size: float, embedding: np.ndarray | None = None) -> Face:
    return Face(
        bbox=np.array([x, 10, x + size, 10 + size], np.float32),
        score=0.9,
        kps=np.zeros((5, 2), np.float32),
        embedding=embedding,
    )


def test_faces_are_numbered_left_to_right_whatever_the_detection_order() -> None:
    faces = [_face(300, 40), _face(20, 50), _face(150, 60)]
    assert [int(f.bbox[0]) for f in left_to_right(faces)] == [20, 150, 300]
    assert int(face_at_index(faces, 0).bbox[0]) == 20
    assert int(face_at_index(faces, 2).bbox[0]) == 300


def test_an_index_out_of_range_names_the_field_and_the_number_of_faces() -> None:
    with pytest.raises(InvalidInputError) as error:
        face_at_index([_face(0, 10), _face(50, 10)], 5)
    assert error.value.field == "face.target_index"
    assert "2 face(s)" in error.value.problem and "5" in error.value.problem


def test_no_face_at_all_names_the_init_image() -> None:
    with pytest.raises(NoFaceError) as error:
        face_at_index([], 0)
    assert str(error.value).startswith("init_image")


def test_the_largest_face_wins() -> None:
    assert int(largest_face([_face(0, 10), _face(50, 70), _face(200, 30)], "init_image").bbox[0]) == 50


def test_the_reference_picks_the_most_similar_face() -> None:
    rng = np.random.default_rng(0)
    people = [rng.standard_normal(512) for _ in range(3)]
    faces = [_face(i * 100.0, 40, e * 10) for i, e in enumerate(people)]
    reference = people[1] + 0.1 * rng.standard_normal(512)
    chosen, similarity = most_similar_face(faces, reference, min_cosine=0.3)
    assert chosen is faces[1] and similarity > 0.9


def test_a_reference_that_matches_no_one_is_refused_naming_it() -> None:
    rng = np.random.default_rng(1)
    faces = [_face(i * 100.0, 40, rng.standard_normal(512)) for i in range(3)]
    with pytest.raises(InvalidInputError) as error:
        most_similar_face(faces, rng.standard_normal(512), min_cosine=0.3)
    assert error.value.field == "images.reference_face"
    assert "3 face(s)" in error.value.problem
