"""The orchestrator's Moondream judge: composites, averaging, and calls to the real server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc

from orchestrator.channels import ServerAddress
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
from orchestrator.search import Deadline
from stack.moondream import MoondreamServerProcess
from stack.process import free_port
from tests.moondream.conftest import log_lines_during


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
    judge = MoondreamJudge(ServerAddress(moondream_server.target, timeout_s=30))
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
    judge = MoondreamJudge(ServerAddress(f"127.0.0.1:{free_port()}", timeout_s=2))
    try:
        judgement = judge.identity(face_photo, face_photo)
        assert judgement.fallback and judgement.score == FALLBACK_SCORE
        assert all("UNAVAILABLE" in reason or "DEADLINE" in reason for reason in judgement.reasons)
    finally:
        judge.close()


class RecordingMoondream(moondream_pb2_grpc.MoondreamServiceServicer):
    """Answers every call and records, per call, the request's `request_id` and the `x-request-id` metadata."""

    def __init__(self) -> None:
        self.ids: list[tuple[str, str | None]] = []

    def _record(self, request_id: str, context: grpc.ServicerContext) -> None:
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        self.ids.append((request_id, metadata.get("x-request-id")))

    def Query(self, request: moondream_pb2.QueryRequest, context: grpc.ServicerContext) -> Any:
        self._record(request.request_id, context)
        return moondream_pb2.QueryResponse(answer="an answer")

    def Score(self, request: moondream_pb2.ScoreRequest, context: grpc.ServicerContext) -> Any:
        self._record(request.request_id, context)
        result = moondream_pb2.ScoreResult(score=7.0, method=moondream_pb2.SCORE_METHOD_DIGIT_LOGITS)
        return moondream_pb2.ScoreResponse(results=[result] * len(request.queries))


@pytest.fixture
def recording_judge() -> Iterator[tuple[MoondreamJudge, RecordingMoondream]]:
    recorder = RecordingMoondream()
    server = grpc.server(ThreadPoolExecutor(2))
    moondream_pb2_grpc.add_MoondreamServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    judge = MoondreamJudge(ServerAddress(f"127.0.0.1:{port}", timeout_s=10))
    try:
        yield judge, recorder
    finally:
        judge.close()
        server.stop(None)


def test_every_call_carries_the_request_id_in_the_message_and_the_metadata(
    recording_judge: tuple[MoondreamJudge, RecordingMoondream],
) -> None:
    judge, recorder = recording_judge
    face = solid(32, 32, 90)
    judge.score([(face, "Real?")], request_id="task-1")
    judge.identity(face, face, request_id="task-2")
    judge.consistency(face, request_id="task-3")
    judge.query(face, "Who?", request_id="task-4")
    assert recorder.ids == [(f"task-{i}", f"task-{i}") for i in range(1, 5)]


def test_a_call_without_a_request_id_gets_a_fresh_one(
    recording_judge: tuple[MoondreamJudge, RecordingMoondream],
) -> None:
    judge, recorder = recording_judge
    face = solid(32, 32, 90)
    judge.score([(face, "Real?")])
    judge.score([(face, "Real?")], Deadline.after(30))
    judge.query(face, "Who?")
    assert len(recorder.ids) == 3
    assert all(message and message == metadata for message, metadata in recorder.ids)
    assert len({message for message, _ in recorder.ids}) == 3


def test_an_id_that_metadata_cannot_carry_travels_escaped(
    recording_judge: tuple[MoondreamJudge, RecordingMoondream],
) -> None:
    judge, recorder = recording_judge
    judge.score([(solid(32, 32, 90), "Real?")], request_id="tâche 1%")
    judge.score([(solid(32, 32, 90), "Real?")], request_id="x" * 300)
    assert recorder.ids[0] == ("t%C3%A2che%201%25", "t%C3%A2che%201%25")
    assert recorder.ids[1] == ("x" * 128, "x" * 128)


def test_the_server_logs_the_judges_request_id(
    moondream_server: MoondreamServerProcess, face_photo: np.ndarray
) -> None:
    judge = MoondreamJudge(ServerAddress(moondream_server.target, timeout_s=30))
    try:
        lines = log_lines_during(moondream_server, lambda: judge.consistency(face_photo, request_id="search-42"))
    finally:
        judge.close()
    assert [(line["event"], line["request_id"]) for line in lines] == [("rpc", "search-42")]


def test_the_clients_request_id_limit_is_the_servers() -> None:
    """The client cuts request ids to what the server accepts; the two constants live in separate rooms."""
    from orchestrator.scoring import moondream_client
    from servers.moondream import servicer

    assert moondream_client.MAX_REQUEST_ID_CHARS == servicer.MAX_REQUEST_ID_CHARS
