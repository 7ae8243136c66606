"""What Gemini judges: two bounded views of a candidate (the face region and the whole photo, small)."""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
from PIL import Image

from orchestrator.refine.crop import CropBox
from orchestrator.scoring.gemini import (
    FACE_VIEW_LABEL,
    WHOLE_VIEW_LABEL,
    GeminiConfig,
    GeminiRealismScorer,
    build_judge_views,
)
from orchestrator.scoring.search_scorers import gemini_scorer
from orchestrator.search import CandidateImage, GenerationMode, SignalScore, Stage
from tests.fakes.fake_gemini import INLINE_REQUEST_LIMIT_BYTES, FakeGemini

KEY = "AIzaFAKE-views-key-0123456789"


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def inline_bytes(part: dict[str, dict[str, str]]) -> bytes:
    """An inlineData part's bytes: the SDK writes URL-safe base64 without padding."""
    text = part["inlineData"]["data"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_views_are_the_grown_face_box_and_a_small_whole_image() -> None:
    image = np.zeros((3000, 4000, 3), np.uint8)
    image[:, :, 1] = 40
    image[1000:1600, 2000:2600] = (200, 150, 120)  # the "face": the crop box
    box = CropBox(2000, 1000, 2600, 1600)

    views = build_judge_views(image, box, context=0.25, face_max_side=1024, whole_max_side=512)

    # The box grown by 150 px each side (900 px, under the cap: kept at full resolution).
    assert (views.face.width, views.face.height) == (900, 900)
    face = decode(views.face.data)
    assert np.abs(face[450, 450].astype(int) - (200, 150, 120)).max() < 8  # the face in the middle
    assert np.abs(face[20, 20].astype(int) - (0, 40, 0)).max() < 8  # its surroundings at the edge
    assert (views.whole.width, views.whole.height) == (512, 384)
    assert views.face.mime_type == views.whole.mime_type == "image/jpeg"


def test_a_large_face_region_is_downscaled_and_a_small_image_is_never_upscaled() -> None:
    image = np.full((2400, 2400, 3), 128, np.uint8)
    views = build_judge_views(image, CropBox(200, 200, 2200, 2200), face_max_side=1024, whole_max_side=512)
    assert max(views.face.width, views.face.height) == 1024
    small = np.full((300, 200, 3), 128, np.uint8)
    views = build_judge_views(small, CropBox(50, 50, 150, 150))
    assert (views.whole.width, views.whole.height) == (200, 300)


def test_a_box_outside_the_image_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="box"):
        build_judge_views(np.zeros((100, 100, 3), np.uint8), CropBox(50, 50, 150, 150))


def candidate(image: np.ndarray) -> CandidateImage[np.ndarray]:
    return CandidateImage(
        candidate_id="g1", stage=Stage.GLOBAL, mode=GenerationMode.REFINE, seed=1, parent_id=None, image=image
    )


def photo_30mp() -> tuple[np.ndarray, CropBox]:
    """A 6720 x 4480 (30.1 MP) photo with sensor-like noise (JPEG cannot squeeze it) and a face box."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(4480, 6720, 3), dtype=np.uint8)
    return image, CropBox(3000, 1500, 3700, 2200)


def test_a_30_megapixel_candidate_is_scored_by_gemini_with_a_bounded_request(fake: FakeGemini) -> None:
    image, box = photo_30mp()

    async def run() -> tuple[list[SignalScore], list[SignalScore]]:
        gemini = GeminiRealismScorer(GeminiConfig(models=("model-a", "model-b"), base_url=fake.base_url), api_key=KEY)
        try:

            def full_frame(array: np.ndarray) -> tuple[bytes, str]:  # what the search used to send
                buffer = io.BytesIO()
                Image.fromarray(array).save(buffer, format="JPEG", quality=92)
                return buffer.getvalue(), "image/jpeg"

            before = (await gemini.score(*full_frame(image), request_id="old")).to_signal_score()
            after = await gemini_scorer(gemini, box).score(candidate(image))
            return [before], list(after)
        finally:
            await gemini.aclose()

    (before,), (after,) = asyncio.run(run())

    # The full-resolution JPEG passes the inline limit: every model refuses it alike and realism falls back.
    assert before.fallback and "Request payload size exceeds the limit" in (before.reason or "")
    # The two views: scored by Gemini, in a request a fraction of the limit.
    assert not after.fallback and after.source == "gemini:model-a" and after.value == 7.5
    (request,) = [r for r in fake.requests if r.status == 200]
    assert request.size_bytes < 2_000_000 < INLINE_REQUEST_LIMIT_BYTES
    assert after.details["views"] == "face 1024x1024, whole 512x341"
    parts = request.body["contents"][0]["parts"]
    # The prompt says which image is which, each label just before its image.
    assert [("text" if "text" in p else "image") for p in parts] == ["text", "image", "text", "image", "text"]
    assert parts[0]["text"] == FACE_VIEW_LABEL and parts[2]["text"] == WHOLE_VIEW_LABEL
    face = decode(inline_bytes(parts[1]))
    whole = decode(inline_bytes(parts[3]))
    assert face.shape == (1024, 1024, 3) and whole.shape == (341, 512, 3)
