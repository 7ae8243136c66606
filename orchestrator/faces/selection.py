"""Which detected face is the target, and which is the character. Pure functions.

The target is chosen as the request asks (`TargetChoice`): the face the mask overlaps most (the
default with a mask), the face at an index (numbered left to right), the largest (the default
without a mask), or the face most similar to a reference photo's face.
"""

from __future__ import annotations

import numpy as np

from orchestrator.errors import InvalidInputError, NoFaceError
from orchestrator.faces.analysis import Face
from orchestrator.faces.identity import normalise


def mask_overlap(face: Face, mask: np.ndarray) -> int:
    """Number of mask pixels inside the face's box."""
    height, width = mask.shape
    x1, y1, x2, y2 = face.bbox
    left, top = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
    right, bottom = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
    if right <= left or bottom <= top:
        return 0
    return int(mask[top:bottom, left:right].sum())


def choose_target_face(faces: list[Face], mask: np.ndarray) -> Face:
    """The detected face that overlaps the given mask most (ties: higher detection score)."""
    if not faces:
        raise NoFaceError("init_image", "no face was detected")
    best = max(faces, key=lambda f: (mask_overlap(f, mask), f.score))
    if mask_overlap(best, mask) == 0:
        raise NoFaceError("init_image", f"{len(faces)} face(s) detected, none overlaps the mask")
    return best


def largest_face(faces: list[Face], image: str) -> Face:
    """The largest face (ties: higher detection score); NoFaceError names the image when there is none."""
    if not faces:
        raise NoFaceError(image, "no face was detected")
    return max(faces, key=lambda f: (f.area, f.score))


def choose_character_face(faces: list[Face], image: str = "character_image") -> Face:
    """The largest detected face of a character photo."""
    return largest_face(faces, image)


def left_to_right(faces: list[Face]) -> list[Face]:
    """The faces numbered as FACE_TARGET_INDEX counts them: by their boxes' left edge, then top edge."""
    return sorted(faces, key=lambda f: (float(f.bbox[0]), float(f.bbox[1])))


def face_at_index(faces: list[Face], index: int) -> Face:
    if not faces:
        raise NoFaceError("init_image", "no face was detected")
    if not 0 <= index < len(faces):
        raise InvalidInputError(
            "face.target_index", f"is {index} but init_image has {len(faces)} face(s) (indices 0..{len(faces) - 1})"
        )
    return left_to_right(faces)[index]


def most_similar_face(faces: list[Face], reference: np.ndarray, min_cosine: float) -> tuple[Face, float]:
    """The face (with its embedding) most similar to the reference embedding, and that similarity.

    InvalidInputError names `images.reference_face` when no face reaches `min_cosine`.
    """
    if not faces:
        raise NoFaceError("init_image", "no face was detected")
    wanted = normalise(reference)
    similarities = []
    for face in faces:
        if face.embedding is None:
            raise ValueError("every face needs its embedding to be compared with the reference")
        similarities.append(float(normalise(face.embedding) @ wanted))
    best = int(np.argmax(similarities))
    if similarities[best] < min_cosine:
        raise InvalidInputError(
            "images.reference_face",
            f"matches none of the {len(faces)} face(s) in init_image: the best cosine similarity is "
            f"{similarities[best]:.2f} (< {min_cosine:.2f})",
        )
    return faces[best], similarities[best]
