"""Which detected face is the target, and which is the character. Pure functions."""

from __future__ import annotations

import numpy as np

from orchestrator.errors import NoFaceError
from orchestrator.faces.analysis import Face


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


def choose_character_face(faces: list[Face]) -> Face:
    """The largest detected face of the character image."""
    if not faces:
        raise NoFaceError("character_image", "no face was detected")
    return max(faces, key=lambda f: (f.area, f.score))
