"""The orchestrator's Moondream judge: composites, averaging, and calls to the real server."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.scoring.moondream_client import (
    CONSISTENCY_QUESTION,
    FALLBACK_SCORE,
    GAP_GREY,
    IDENTITY_FROM_CHARACTER,
    IDENTITY_FROM_RESULT,
    MoondreamJudge,
    QuestionScore,
    combine,
    identity_queries,
    side_by_side,
)
from servers.moondream.launcher import MoondreamServerProcess
from servers.triton.launcher import free_port


def solid(height: int, width: int, value: int) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def test_side_by_side_scales_both_to_one_height() -> None:
    composite = side_by_side(solid(50, 100, 10), solid(200, 100, 250), height=100, gap=4)
    assert composite.shape == (100, 200 + 4 + 50, 3)
    assert (composite[:, :200] == 10).all()
    assert (composite[:, 200:204] == GAP_GREY).all()
    assert (composite[:, 204:] == 250).all()


def test_identity_is_asked_from_both_sides() -> None:
    result, character = solid(64, 64, 10), solid(64, 64, 250)
    (first, q1), (second, q2) = identity_queries(result, character)
    assert (first[:, :10] == 10).all() and (first[:, -10:] == 250).all()  # result | character
    assert (second[:, :10] == 250).all() and (second[:, -10:] == 10).all()  # character | result
    assert (q1, q2) == (IDENTITY_FROM_RESULT, IDENTITY_FROM_CHARACTER) and q1 != q2


def test_side_by_side_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        side_by_side(np.zeros((4, 4), np.uint8), solid(4, 4, 0))


def test_combine_averages_usable_scores_only() -> None:
    parts = [QuestionScore(8.0, "digit", False), QuestionScore(6.0, "digit", False)]
    assert combine(parts).score == pytest.approx(7.0) and not combine(parts).fallback
    half = [QuestionScore(8.0, "digit", False), QuestionScore(5.0, "fallback", True, reason="no number")]
    judged = combine(half)
    assert judged.score == pytest.approx(8.0) and not judged.fallback and judged.reasons == ("no number",)
    none = combine([QuestionScore(5.0, "fallback", True, reason="a"), QuestionScore(5.0, "fallback", True)])
    assert none.fallback and none.score == FALLBACK_SCORE and none.reasons == ("a",)


def test_judge_through_the_real_server(moondream_server: MoondreamServerProcess, face_photo: np.ndarray) -> None:
    judge = MoondreamJudge(moondream_server.target, timeout_s=30)
    try:
        character = np.ascontiguousarray(face_photo[:, ::-1])
        identity = judge.identity(face_photo, character)
        assert identity.standin and not identity.fallback
        assert len(identity.parts) == 2
        assert identity.score == pytest.approx(np.mean([p.score for p in identity.parts]))
        consistency = judge.consistency(face_photo)
        assert len(consistency.parts) == 1 and 0.0 <= consistency.score <= 10.0
        assert isinstance(judge.query(face_photo, CONSISTENCY_QUESTION, max_new_tokens=4), str)
    finally:
        judge.close()


def test_judge_without_a_server_gives_flagged_fallback(face_photo: np.ndarray) -> None:
    judge = MoondreamJudge(f"127.0.0.1:{free_port()}", timeout_s=2)
    try:
        judgement = judge.identity(face_photo, face_photo)
        assert judgement.fallback and judgement.score == FALLBACK_SCORE
        assert all("UNAVAILABLE" in reason or "DEADLINE" in reason for reason in judgement.reasons)
    finally:
        judge.close()
