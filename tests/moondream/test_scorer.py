"""How one rating question becomes a score, over a fake adapter: probabilities first, then text, then fallback."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from servers.common.cancellation import CancelToken
from servers.common.errors import DeadlineExceeded
from servers.moondream.errors import InvalidImageError
from servers.moondream.model import (
    Answer,
    AnswerProbabilities,
    CacheStats,
    EncodingCache,
    ModelInfo,
    PreparedImage,
)
from servers.moondream.scorer import score_question
from servers.moondream.scoring import ANSWERS, ScoreMethod


@dataclass
class FakeModel:
    probabilities: tuple[float, ...] | None
    text: str = ""
    calls: list[str] = field(default_factory=list)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name="fake", adapter="fake")

    @property
    def supports_answer_probabilities(self) -> bool:
        return self.probabilities is not None

    def answer(
        self, image: PreparedImage, question: str, *, max_new_tokens: int, token: CancelToken | None = None
    ) -> Answer:
        self.calls.append(f"answer:{question}")
        return Answer(text=self.text, image_encoded=False)

    def answer_probabilities(
        self, image: PreparedImage, question: str, candidates: Sequence[str], token: CancelToken | None = None
    ) -> AnswerProbabilities:
        assert tuple(candidates) == ANSWERS and self.probabilities is not None
        if token is not None:
            token.check()
        self.calls.append(f"probabilities:{question}")
        return AnswerProbabilities(probabilities=self.probabilities, image_encoded=True)

    def image_problem(self, image: PreparedImage) -> str | None:
        return None

    def cache_stats(self) -> CacheStats:
        return CacheStats(0, 0, 0)


IMAGE = PreparedImage.from_pil(Image.new("RGB", (8, 8), "white"))


def test_answer_probabilities_come_first() -> None:
    model = FakeModel(probabilities=(0.0,) * 8 + (0.3, 0.3, 0.0), text="2")
    result = score_question(model, IMAGE, "Same person?", instruction="Answer 0-10.")
    assert result.score.method is ScoreMethod.DIGIT_LOGITS
    assert result.score.value == pytest.approx(8.5)
    assert result.image_encoded
    assert model.calls == ["probabilities:Same person? Answer 0-10."]


def test_little_answer_mass_falls_back_to_text() -> None:
    model = FakeModel(probabilities=(0.01,) * 11, text="Score: 6")
    result = score_question(model, IMAGE, "Same person?", min_answer_mass=0.5)
    assert result.score.method is ScoreMethod.PARSED_TEXT and result.score.value == 6.0
    assert result.image_encoded  # the probabilities call encoded the image
    assert [call.split(":")[0] for call in model.calls] == ["probabilities", "answer"]


def test_text_only_when_asked_or_without_logits() -> None:
    for model, use in [(FakeModel(probabilities=(0.1,) * 11, text="4"), False), (FakeModel(None, text="4"), True)]:
        result = score_question(model, IMAGE, "q", use_answer_probabilities=use)
        assert result.score.method is ScoreMethod.PARSED_TEXT and result.score.value == 4.0
        assert [call.split(":")[0] for call in model.calls] == ["answer"]


def test_a_broken_logits_path_still_answers_in_text() -> None:
    class BrokenLogits(FakeModel):
        def answer_probabilities(
            self, image: PreparedImage, question: str, candidates: Sequence[str], token: CancelToken | None = None
        ) -> AnswerProbabilities:
            raise TypeError("_prefill_prompt() takes 3 positional arguments")

    result = score_question(BrokenLogits(probabilities=(0.1,) * 11, text="6"), IMAGE, "q")
    assert result.score.method is ScoreMethod.PARSED_TEXT and result.score.value == 6.0


def test_unusable_answer_is_flagged_fallback() -> None:
    result = score_question(FakeModel(None, text="no idea"), IMAGE, "q")
    assert result.score.fallback and result.score.value == 5.0
    assert "no idea" in result.score.fallback_reason


def test_passed_deadline_stops_scoring() -> None:
    with pytest.raises(DeadlineExceeded):
        score_question(FakeModel(probabilities=(0.1,) * 11), IMAGE, "q", token=CancelToken(timeout_s=0.0))


def test_encoding_cache_counts_and_evicts() -> None:
    cache: EncodingCache[str] = EncodingCache(capacity=2)
    assert cache.get("a") is None
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C")  # evicts b
    assert cache.get("b") is None and cache.get("c") == "C"
    assert cache.stats() == CacheStats(encodings=3, hits=2, size=2)


def test_image_key_follows_pixels_not_file_bytes() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    encoded = {}
    for fmt in ("PNG", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt, lossless=True)
        encoded[fmt] = buffer.getvalue()
    assert encoded["PNG"] != encoded["WEBP"]
    keys = {PreparedImage.from_bytes(data).key for data in encoded.values()}
    assert len(keys) == 1
    assert PreparedImage.from_pil(Image.fromarray(255 - pixels)).key not in keys


@pytest.mark.parametrize(
    ("data", "mime", "message"),
    [
        (b"", "", "is empty"),
        (b"not an image", "", "could not be decoded"),
        (b"\x89PNG", "image/gif", "unsupported mime_type"),
    ],
)
def test_bad_images_name_the_field(data: bytes, mime: str, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message) as caught:
        PreparedImage.from_bytes(data, mime, field="queries[2].image")
    assert caught.value.field == "queries[2].image"
