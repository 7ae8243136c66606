"""Several character photos: the mean identity and the refusal of another person's photo."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import InvalidInputError
from orchestrator.faces.identity import mean_identity, normalise


def _person(rng: np.random.Generator, base: np.ndarray, spread: float) -> np.ndarray:
    """A photo's embedding: the person's direction plus per-photo variation, at an arbitrary scale."""
    return (base + spread * rng.standard_normal(512)) * rng.uniform(5, 30)


def test_the_identity_is_the_normalised_mean_of_the_normalised_embeddings() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(512)
    photos = [_person(rng, base, 0.05) for _ in range(3)]
    identity = mean_identity(photos, ["a", "b", "c"], min_cosine=0.2)
    expected = sum(e / np.linalg.norm(e) for e in photos)
    np.testing.assert_allclose(identity.embedding, expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)
    assert identity.photos == 3 and len(identity.agreement) == 3 and min(identity.agreement) > 0.9
    # Scale does not weigh: a photo with a larger raw embedding norm counts as much as the others.
    rescaled = mean_identity([photos[0] * 100, photos[1], photos[2]], ["a", "b", "c"], 0.2)
    np.testing.assert_allclose(rescaled.embedding, identity.embedding, rtol=1e-5, atol=1e-6)


def test_the_mean_is_closer_to_the_person_than_a_single_photo() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal(512)
    photos = [_person(rng, base, 0.08) for _ in range(8)]
    mean = mean_identity(photos, [str(i) for i in range(8)], 0.2).embedding
    single = normalise(photos[0])
    assert mean @ normalise(base) > single @ normalise(base)


def test_another_persons_photo_is_refused_by_name() -> None:
    rng = np.random.default_rng(2)
    base, other = rng.standard_normal(512), rng.standard_normal(512)
    photos = [_person(rng, base, 0.05), _person(rng, base, 0.05), _person(rng, other, 0.05), _person(rng, base, 0.05)]
    labels = [f"images.character_images[{i}]" for i in range(4)]
    with pytest.raises(InvalidInputError) as error:
        mean_identity(photos, labels, min_cosine=0.2)
    assert error.value.field == "images.character_images[2]"
    assert "another person" in error.value.problem


def test_of_two_disagreeing_photos_the_later_is_named() -> None:
    rng = np.random.default_rng(3)
    photos = [rng.standard_normal(512), rng.standard_normal(512)]
    with pytest.raises(InvalidInputError) as error:
        mean_identity(photos, ["images.character_images[0]", "images.character_images[1]"], min_cosine=0.2)
    assert error.value.field == "images.character_images[1]"


def test_one_photo_is_its_own_identity() -> None:
    embedding = np.arange(1, 513, dtype=np.float32)
    identity = mean_identity([embedding], ["character_image"], min_cosine=0.99)
    np.testing.assert_allclose(identity.embedding, embedding / np.linalg.norm(embedding), rtol=1e-6)
    assert identity.agreement == ()
