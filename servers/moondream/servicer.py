"""The gRPC servicer: validate, decode, queue the model call, map the result onto the response.

Transport only. Validation errors are `InvalidArgument` naming the field; the shared interceptor turns
domain errors into status codes. Images the model's vision encoder cannot take are refused here, before
any work is queued. Model calls run one at a time through the server's work queue with the caller's
deadline (`token_for`), so a passed deadline stops generation between tokens.

A request's `request_id` is the id of every log line about the call (the interceptor's closing `rpc`
line included, and lines written from the worker thread); without one, the interceptor's id from the
`x-request-id` metadata (or a fresh one) stays.

Each query of a `Score` call is scored on its own, one model call after another (a batch of one), so its
score does not depend on the other queries of the call, their order, or whether its image's encoding
came from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import grpc.aio
from inpaint.v1 import image_pb2, moondream_pb2, moondream_pb2_grpc
from prometheus_client import Counter, Gauge

from servers.common.cancellation import CancelToken
from servers.common.errors import InvalidArgument
from servers.common.logs import REQUEST_ID, fields
from servers.common.server import ModelServer, token_for
from servers.moondream.config import MoondreamServerConfig
from servers.moondream.errors import InvalidImageError
from servers.moondream.model import Answer, ModelInfo, PreparedImage, VisionLanguageModel
from servers.moondream.scorer import ScoredQuestion, score_question
from servers.moondream.scoring import Score, ScoreMethod

_METHOD_TO_PROTO = {
    ScoreMethod.DIGIT_LOGITS: moondream_pb2.SCORE_METHOD_DIGIT_LOGITS,
    ScoreMethod.PARSED_TEXT: moondream_pb2.SCORE_METHOD_PARSED_TEXT,
    ScoreMethod.FALLBACK: moondream_pb2.SCORE_METHOD_FALLBACK,
}
_REQUESTABLE_METHODS = (moondream_pb2.SCORE_METHOD_UNSPECIFIED, moondream_pb2.SCORE_METHOD_PARSED_TEXT)

Context = grpc.aio.ServicerContext[Any, Any]
MAX_REQUEST_ID_CHARS = 128


def model_info_message(info: ModelInfo) -> moondream_pb2.ModelInfo:
    return moondream_pb2.ModelInfo(name=info.name, adapter=info.adapter, revision=info.revision, standin=info.standin)


def bind_request_id(request_id: str) -> None:
    """Make `request_id` the id of every log line about the current call (when it is set and valid)."""
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgument("request_id", f"is {len(request_id)} characters; at most {MAX_REQUEST_ID_CHARS}")
    if not request_id.isprintable():
        raise InvalidArgument("request_id", "has characters that cannot be printed")
    if request_id:
        # The interceptor awaits this servicer in its own context and resets the id after its `rpc` line.
        REQUEST_ID.set(request_id)


def _decode_for(model: VisionLanguageModel, image: image_pb2.Image, field: str) -> PreparedImage:
    prepared = PreparedImage.from_bytes(image.data, image.mime_type, field=field)
    problem = model.image_problem(prepared)
    if problem is not None:
        raise InvalidImageError(field, problem)
    return prepared


async def decode_image(model: VisionLanguageModel, image: image_pb2.Image, present: bool, field: str) -> PreparedImage:
    """The decoded image, or InvalidArgument naming `field` when it is missing, undecodable, or one the
    model's vision encoder cannot take."""
    if not present:
        raise InvalidArgument(field, "is required")
    if not image.data:
        raise InvalidArgument(f"{field}.data", "is empty: expected encoded PNG, JPEG or WebP bytes")
    # Decoding a large PNG takes a while: off the event loop, outside the device queue.
    return await asyncio.to_thread(_decode_for, model, image, field)


class MoondreamServicer(moondream_pb2_grpc.MoondreamServiceServicer):
    def __init__(
        self, server: ModelServer, config: MoondreamServerConfig, load_model: Callable[[], VisionLanguageModel]
    ) -> None:
        self._server = server
        self._config = config
        self._load_model = load_model
        self._model: VisionLanguageModel | None = None
        registry = server.metrics.registry
        self._encodings = Gauge(
            "image_encodings", "Times the vision encoder ran (cache misses)", namespace="moondream", registry=registry
        )
        self._cache_hits = Gauge(
            "image_cache_hits", "Image encodings served from the cache", namespace="moondream", registry=registry
        )
        self._scores = Counter(
            "scores", "Scores returned, by how they were obtained", ["method"], namespace="moondream", registry=registry
        )

    def load(self) -> None:
        """Runs in a thread while health says NOT_SERVING."""
        model = self._load_model()
        if self._config.simulate_answer_s > 0 and not model.info.standin:
            raise ValueError("simulate_answer_s: only for stand-ins (it would slow a real model down)")
        self._encodings.set_function(lambda: model.cache_stats().encodings)
        self._cache_hits.set_function(lambda: model.cache_stats().hits)
        self._model = model
        self._server.log.info("model loaded", extra=fields(**vars(model.info)))

    @property
    def _simulating(self) -> bool:
        return self._config.simulate_answer_s > 0

    def _simulate(self, token: CancelToken) -> None:
        """Fleet simulation: an answer takes the time a real model on a GPU would (a sleep, not CPU)."""
        token.wait(self._config.simulate_answer_s)

    def _ready_model(self) -> VisionLanguageModel:
        self._server.require_ready()
        assert self._model is not None  # ready implies loaded
        return self._model

    def _check_question(self, question: str, field: str) -> str:
        if not question.strip():
            raise InvalidArgument(field, "is required")
        if len(question) > self._config.max_question_chars:
            raise InvalidArgument(field, f"is {len(question)} characters; at most {self._config.max_question_chars}")
        return question

    async def Query(self, request: moondream_pb2.QueryRequest, context: Context) -> moondream_pb2.QueryResponse:
        bind_request_id(request.request_id)
        model = self._ready_model()
        question = self._check_question(request.question, "question")
        limit = self._config.max_new_tokens_limit
        if request.max_new_tokens > limit:
            raise InvalidArgument("max_new_tokens", f"is {request.max_new_tokens}; at most {limit}")
        max_new_tokens = request.max_new_tokens or self._config.default_max_new_tokens
        image = await decode_image(model, request.image, request.HasField("image"), "image")
        token = token_for(context)

        def answer_one() -> Any:
            if self._simulating:
                self._simulate(token)
                return simulated_answer(image, question)
            return model.answer(image, question, max_new_tokens=max_new_tokens, token=token)

        answer = await self._server.work.run(answer_one, token)
        return moondream_pb2.QueryResponse(
            answer=answer.text, model=model_info_message(model.info), image_encoded=answer.image_encoded
        )

    async def Score(self, request: moondream_pb2.ScoreRequest, context: Context) -> moondream_pb2.ScoreResponse:
        bind_request_id(request.request_id)
        model = self._ready_model()
        config = self._config
        if not request.queries:
            raise InvalidArgument("queries", "at least one query is required")
        if len(request.queries) > config.max_queries_per_call:
            raise InvalidArgument(
                "queries", f"has {len(request.queries)} queries; at most {config.max_queries_per_call}"
            )
        jobs: list[tuple[PreparedImage, str, bool]] = []
        for i, query in enumerate(request.queries):
            question = self._check_question(query.question, f"queries[{i}].question")
            if query.method not in _REQUESTABLE_METHODS:
                raise InvalidArgument(
                    f"queries[{i}].method",
                    f"{moondream_pb2.ScoreMethod.Name(query.method)} cannot be requested "
                    "(SCORE_METHOD_UNSPECIFIED or SCORE_METHOD_PARSED_TEXT)",
                )
            image = await decode_image(model, query.image, query.HasField("image"), f"queries[{i}].image")
            jobs.append((image, question, query.method == moondream_pb2.SCORE_METHOD_UNSPECIFIED))
        token = token_for(context)

        def score_all() -> list[ScoredQuestion]:
            results = []
            for image, question, use_probabilities in jobs:
                token.check()
                if self._simulating:
                    self._simulate(token)
                    results.append(ScoredQuestion(simulated_score(image, question), image_encoded=False))
                    continue
                results.append(
                    score_question(
                        model,
                        image,
                        question,
                        use_answer_probabilities=use_probabilities,
                        min_answer_mass=config.min_answer_mass,
                        max_new_tokens=config.score_max_new_tokens,
                        instruction=config.score_instruction,
                        token=token,
                    )
                )
            return results

        scored = await self._server.work.run(score_all, token)
        results = []
        for item in scored:
            score = item.score
            self._scores.labels(method=score.method.value).inc()
            results.append(
                moondream_pb2.ScoreResult(
                    score=score.value,
                    method=_METHOD_TO_PROTO[score.method],
                    raw_answer=score.raw_answer,
                    fallback=score.fallback,
                    fallback_reason=score.fallback_reason,
                    answer_probabilities=score.answer_probabilities,
                    answer_mass=score.answer_mass,
                    image_encoded=item.image_encoded,
                )
            )
        fallbacks = sum(result.fallback for result in results)
        if fallbacks:
            self._server.log.info("scores fell back", extra=fields(fallbacks=fallbacks, queries=len(results)))
        return moondream_pb2.ScoreResponse(results=results, model=model_info_message(model.info))


SIMULATED = "simulated: no model ran"


def simulated_score(image: PreparedImage, question: str) -> Score:
    """Fleet simulation: a stand-in's score without running it (a random-weight model's answer is noise
    anyway), so that the benchmark measures scheduling and not the stand-in's CPU. A number on 0..10 fixed
    by the image and the question, so that candidates differ and the search ranks them as it would real
    scores; the raw answer says it was simulated."""
    value = hashlib.sha256(f"{image.key}\0{question}".encode()).digest()[0] % 11
    return Score(value=float(value), method=ScoreMethod.PARSED_TEXT, raw_answer=f"{value} ({SIMULATED})")


def simulated_answer(image: PreparedImage, question: str) -> Answer:
    """Fleet simulation: a Query's answer without running the stand-in, saying so."""
    return Answer(text=SIMULATED, image_encoded=False)
