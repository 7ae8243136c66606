"""The Moondream server as a real process on the tiny stand-in: answers, scores, the encoding cache,
validation, deadlines, bounded concurrency, reflection."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from inpaint.v1 import image_pb2, moondream_pb2

from servers.moondream.scoring import FALLBACK_SCORE, parse_score_text
from stack.moondream import MoondreamServerProcess
from tests.moondream.conftest import log_lines_during, png

Stub = Any  # moondream_pb2_grpc.MoondreamServiceStub (generated without types)
# Tokens: the stand-in never emits its end token, so these take ~0.6 s and ~0.15 s on an idle 2-core machine.
LONG = 1000
BUSY = 250


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_query_answers_and_says_a_standin_served_it(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    response = moondream_stub.Query(
        moondream_pb2.QueryRequest(image=png(face_photo), question="Describe the face.", max_new_tokens=8), timeout=30
    )
    assert isinstance(response.answer, str)
    assert response.model.standin is True
    assert response.model.adapter == "transformers-vlm"
    assert response.model.name == "moondream"


def test_score_reads_the_answer_distribution(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    request = moondream_pb2.ScoreRequest(
        queries=[moondream_pb2.ScoreQuery(image=png(face_photo), question="How realistic is this face?")]
    )
    (result,) = moondream_stub.Score(request, timeout=30).results
    assert result.method == moondream_pb2.SCORE_METHOD_DIGIT_LOGITS
    assert not result.fallback
    probabilities = np.array(result.answer_probabilities)
    assert probabilities.shape == (11,)
    assert probabilities.sum() == pytest.approx(1.0)
    assert result.score == pytest.approx(float(np.dot(np.arange(11), probabilities)))
    assert 0.0 <= result.score <= 10.0
    assert 0.0 < result.answer_mass <= 1.0


def test_unusable_text_answers_fall_back_flagged(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    """Asked to parse text, the random stand-in writes no number: every result is the flagged 5.0."""
    questions = ["Same person?", "How consistent is the lighting?", "Rate the realism."]
    request = moondream_pb2.ScoreRequest(
        queries=[
            moondream_pb2.ScoreQuery(image=png(face_photo), question=q, method=moondream_pb2.SCORE_METHOD_PARSED_TEXT)
            for q in questions
        ]
    )
    results = moondream_stub.Score(request, timeout=30).results
    assert len(results) == len(questions)
    for result in results:
        assert parse_score_text(result.raw_answer) is None  # what makes it unusable
        assert result.fallback
        assert result.method == moondream_pb2.SCORE_METHOD_FALLBACK
        assert result.score == FALLBACK_SCORE
        assert "no leading score" in result.fallback_reason


def test_second_question_about_an_image_reuses_its_encoding(
    moondream_server: MoondreamServerProcess, moondream_stub: Stub, fresh_photo: np.ndarray
) -> None:
    before = moondream_server.metrics()
    image = png(fresh_photo)
    first = moondream_stub.Query(moondream_pb2.QueryRequest(image=image, question="Who?", max_new_tokens=4))
    second = moondream_stub.Query(moondream_pb2.QueryRequest(image=image, question="Where?", max_new_tokens=4))
    scored = moondream_stub.Score(
        moondream_pb2.ScoreRequest(queries=[moondream_pb2.ScoreQuery(image=image, question="Real?")] * 2)
    )
    after = moondream_server.metrics()
    assert first.image_encoded and not second.image_encoded
    assert [r.image_encoded for r in scored.results] == [False, False]
    assert after["moondream_image_encodings"] - before["moondream_image_encodings"] == 1
    assert after["moondream_image_cache_hits"] - before["moondream_image_cache_hits"] >= 3

    other = moondream_stub.Query(moondream_pb2.QueryRequest(image=png(255 - fresh_photo), question="Who?"))
    assert other.image_encoded
    assert moondream_server.metrics()["moondream_image_encodings"] - before["moondream_image_encodings"] == 2


def test_several_queries_in_one_call_come_back_in_order(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    image = png(face_photo)
    methods = [
        moondream_pb2.SCORE_METHOD_UNSPECIFIED,
        moondream_pb2.SCORE_METHOD_PARSED_TEXT,
        moondream_pb2.SCORE_METHOD_UNSPECIFIED,
    ]
    request = moondream_pb2.ScoreRequest(
        queries=[
            moondream_pb2.ScoreQuery(image=image, question=f"Question {i}?", method=m) for i, m in enumerate(methods)
        ]
    )
    results = moondream_stub.Score(request, timeout=30).results
    assert [r.method for r in results] == [
        moondream_pb2.SCORE_METHOD_DIGIT_LOGITS,
        moondream_pb2.SCORE_METHOD_FALLBACK,
        moondream_pb2.SCORE_METHOD_DIGIT_LOGITS,
    ]


def _image(data: bytes, mime: str = "image/png") -> image_pb2.Image:
    return image_pb2.Image(data=data, mime_type=mime)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (moondream_pb2.QueryRequest(question="Who?"), "image: is required"),
        (moondream_pb2.QueryRequest(image=_image(b""), question="Who?"), "image.data: is empty"),
        (moondream_pb2.QueryRequest(image=_image(b"junk"), question="Who?"), "image: could not be decoded"),
        (moondream_pb2.QueryRequest(image=_image(b"junk", "image/gif"), question="Who?"), "image: has unsupported"),
        (moondream_pb2.QueryRequest(image=_image(b"x"), question="  "), "question: is required"),
        (moondream_pb2.QueryRequest(image=_image(b"x"), question="q" * 5000), "question: is 5000 characters"),
        (moondream_pb2.QueryRequest(image=_image(b"x"), question="Who?", max_new_tokens=5000), "max_new_tokens:"),
    ],
)
def test_bad_query_is_invalid_argument_naming_the_field(moondream_stub: Stub, request_: Any, field: str) -> None:
    error = rpc_error(lambda: moondream_stub.Query(request_, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(field)


def test_bad_score_request_is_invalid_argument_naming_the_field(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    good = moondream_pb2.ScoreQuery(image=png(face_photo), question="Same person?")
    cases = [
        (moondream_pb2.ScoreRequest(), "queries: at least one"),
        (moondream_pb2.ScoreRequest(queries=[good] * 33), "queries: has 33 queries"),
        (moondream_pb2.ScoreRequest(queries=[good, moondream_pb2.ScoreQuery(image=good.image)]), "queries[1].question"),
        (
            moondream_pb2.ScoreRequest(queries=[good, moondream_pb2.ScoreQuery(question="q")]),
            "queries[1].image: is required",
        ),
        (
            moondream_pb2.ScoreRequest(
                queries=[
                    moondream_pb2.ScoreQuery(image=good.image, question="q", method=moondream_pb2.SCORE_METHOD_FALLBACK)
                ]
            ),
            "queries[0].method",
        ),
    ]
    for request, field in cases:
        error = rpc_error(lambda request=request: moondream_stub.Score(request, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert (error.details() or "").startswith(field), error.details()


def test_a_passed_deadline_stops_the_generation(
    moondream_server: MoondreamServerProcess, moondream_stub: Stub, face_photo: np.ndarray
) -> None:
    stopped_before = moondream_server.metrics().get("moondream_stopped_work_total", 0.0)
    request = moondream_pb2.QueryRequest(image=png(face_photo), question="Describe everything.", max_new_tokens=LONG)
    started = time.monotonic()
    error = rpc_error(lambda: moondream_stub.Query(request, timeout=0.15))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.0

    # The server noticed and stopped generating (rather than finishing the answer for nobody).
    deadline = time.monotonic() + 10
    while moondream_server.metrics().get("moondream_stopped_work_total", 0.0) <= stopped_before:
        assert time.monotonic() < deadline, "the server never stopped the abandoned generation"
        time.sleep(0.05)
    # And it still answers.
    ok = moondream_stub.Query(moondream_pb2.QueryRequest(image=png(face_photo), question="Who?", max_new_tokens=2))
    assert ok.model.standin


def test_more_callers_than_the_queue_holds_get_resource_exhausted(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    """The session server runs one call and queues two; six at once leave at least three refused."""
    request = moondream_pb2.QueryRequest(image=png(face_photo), question="Describe everything.", max_new_tokens=BUSY)

    def call() -> str:
        try:
            moondream_stub.Query(request, timeout=60)
            return "OK"
        except grpc.RpcError as error:
            return str(error.code().name)

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(lambda _: call(), range(6)))
    assert codes.count("RESOURCE_EXHAUSTED") >= 3, codes
    assert codes.count("OK") >= 1, codes
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes


def test_reflection_lists_the_service(moondream_server: MoondreamServerProcess) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(moondream_server.channel())
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = {s.name for response in responses for s in response.list_services_response.service}
    assert {"inpaint.v1.MoondreamService", "grpc.health.v1.Health"} <= services


def test_images_beyond_grpcs_default_4_mib_are_accepted(moondream_stub: Stub) -> None:
    noise = np.random.default_rng(7).integers(0, 256, size=(1400, 1400, 3), dtype=np.uint8)
    image = png(noise)
    assert len(image.data) > 4 * 1024 * 1024
    response = moondream_stub.Query(
        moondream_pb2.QueryRequest(image=image, question="Who?", max_new_tokens=2), timeout=60
    )
    assert response.image_encoded


def test_every_log_line_about_a_call_carries_its_request_id(
    moondream_server: MoondreamServerProcess, moondream_stub: Stub, face_photo: np.ndarray
) -> None:
    """The request's own `request_id` names the call in the logs, the worker thread's lines included (the
    stand-in's text answers fall back, which the server logs from there)."""
    image = png(face_photo)
    score = moondream_pb2.ScoreRequest(
        queries=[
            moondream_pb2.ScoreQuery(image=image, question="Rate it.", method=moondream_pb2.SCORE_METHOD_PARSED_TEXT)
        ],
        request_id="score-call-7",
    )
    lines = log_lines_during(moondream_server, lambda: moondream_stub.Score(score, timeout=30))
    assert {line["event"] for line in lines} >= {"rpc", "scores fell back"}
    assert {line["request_id"] for line in lines} == {"score-call-7"}

    query = moondream_pb2.QueryRequest(image=image, question="Who?", max_new_tokens=2, request_id="query-call-8")
    lines = log_lines_during(moondream_server, lambda: moondream_stub.Query(query, timeout=30))
    assert [(line["event"], line["request_id"]) for line in lines] == [("rpc", "query-call-8")]

    refused = moondream_pb2.ScoreRequest(request_id="refused-call-9")
    lines = log_lines_during(moondream_server, lambda: rpc_error(lambda: moondream_stub.Score(refused, timeout=10)))
    assert [(line["event"], line["code"], line["request_id"]) for line in lines] == [
        ("rpc", "INVALID_ARGUMENT", "refused-call-9")
    ]


def test_a_bad_request_id_is_invalid_argument(moondream_stub: Stub, face_photo: np.ndarray) -> None:
    for request_id, problem in [
        ("r" * 129, "is 129 characters"),
        ("line\nbreak", "has characters that cannot be printed"),
    ]:
        request = moondream_pb2.QueryRequest(image=png(face_photo), question="Who?", request_id=request_id)
        error = rpc_error(lambda request=request: moondream_stub.Query(request, timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith(f"request_id: {problem}")


def solid_png(width: int, height: int) -> image_pb2.Image:
    return png(np.full((height, width, 3), 128, dtype=np.uint8))


@pytest.mark.parametrize(
    ("width", "height", "problem"),
    [
        (1, 1, "is 1x1 pixels; the vision encoder needs at least 14 pixels on each side"),
        (3, 3, "is 3x3 pixels"),
        (64, 13, "is 64x13 pixels"),
        (3000, 14, "cannot be encoded: absolute aspect ratio must be smaller than 200"),
    ],
)
def test_an_image_the_vision_encoder_cannot_take_is_invalid_argument_naming_the_field(
    moondream_stub: Stub, face_photo: np.ndarray, width: int, height: int, problem: str
) -> None:
    query = moondream_pb2.QueryRequest(image=solid_png(width, height), question="Who?", max_new_tokens=2)
    error = rpc_error(lambda: moondream_stub.Query(query, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"image: {problem}")

    good = moondream_pb2.ScoreQuery(image=png(face_photo), question="Real?")
    bad = moondream_pb2.ScoreQuery(image=solid_png(width, height), question="Real?")
    error = rpc_error(lambda: moondream_stub.Score(moondream_pb2.ScoreRequest(queries=[good, bad]), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"queries[1].image: {problem}")


def test_the_smallest_image_the_encoder_takes_is_answered(moondream_stub: Stub) -> None:
    response = moondream_stub.Query(
        moondream_pb2.QueryRequest(image=solid_png(14, 14), question="Who?", max_new_tokens=2), timeout=30
    )
    assert response.model.standin


def test_a_score_does_not_depend_on_the_rest_of_the_call_or_the_cache(
    moondream_stub: Stub, fresh_photo: np.ndarray
) -> None:
    """Exactly the same score alone, inside a batch, first or last, with its image encoded in this call or
    taken from the cache."""
    wanted = moondream_pb2.ScoreQuery(image=png(fresh_photo), question="How realistic is this face?")
    others = [
        moondream_pb2.ScoreQuery(image=png(255 - fresh_photo), question="Same person? " * 10),
        moondream_pb2.ScoreQuery(image=png(np.ascontiguousarray(fresh_photo[::2, ::-1])), question="Lighting?"),
        moondream_pb2.ScoreQuery(image=png(fresh_photo), question="A different question about the same image?"),
    ]

    def score(queries: list[Any], index: int) -> float:
        results = moondream_stub.Score(moondream_pb2.ScoreRequest(queries=queries), timeout=60).results
        assert results[index].method == moondream_pb2.SCORE_METHOD_DIGIT_LOGITS
        return float(results[index].score)

    encoded_in_a_batch = score([others[0], wanted, others[1]], 1)
    alone = score([wanted], 0)
    assert encoded_in_a_batch == alone
    assert score([*others, wanted], 3) == alone
    assert score([wanted, *others], 0) == alone
    assert score([others[2], wanted, wanted], 2) == alone
