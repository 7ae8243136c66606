"""The identity of several character photos: the normalised mean of their ArcFace embeddings. Pure.

A photo of another person would drag the mean away from the identity the user means, so each photo
is compared with the mean of the *others* (leave one out): one whose cosine similarity to it is
below the threshold is refused, naming the photo. With two photos the two comparisons are the same
number; the later photo is named then (the first is the main photo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.errors import InvalidInputError


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise ValueError("cannot normalise a zero vector")
    normalised: np.ndarray = (vector / norm).astype(np.float32)
    return normalised


@dataclass(frozen=True)
class Identity:
    embedding: np.ndarray  # (512,), unit length: the normalised mean of the photos' normalised embeddings
    photos: int
    # Each photo's cosine similarity to the mean of the others (empty with one photo).
    agreement: tuple[float, ...] = ()


def mean_identity(embeddings: Sequence[np.ndarray], labels: Sequence[str], min_cosine: float) -> Identity:
    """The identity of the photos; InvalidInputError names the photo that is another person."""
    if not embeddings:
        raise ValueError("no embeddings")
    if len(labels) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    units = np.stack([normalise(e) for e in embeddings])
    if len(units) == 1:
        return Identity(units[0], 1)
    total = units.sum(axis=0)
    agreement = [float(unit @ normalise(total - unit)) for unit in units]
    # The lowest agreement is the outlier; on a tie the later photo (the first is the main one).
    worst = min(range(len(units)), key=lambda i: (round(agreement[i], 6), -i))
    if agreement[worst] < min_cosine:
        raise InvalidInputError(
            labels[worst],
            f"looks like another person: its ArcFace cosine similarity to the other photos' mean is "
            f"{agreement[worst]:.2f} (< {min_cosine:.2f})",
        )
    return Identity(normalise(total), len(units), tuple(agreement))
