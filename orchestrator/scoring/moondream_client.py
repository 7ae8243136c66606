"""Moondream as the search's identity and consistency judge: a thin client over the server's RPCs.

A Moondream query is about one image, so identity is judged on a side-by-side composite of the two
faces, asked twice to cancel the model's position and wording biases:

1. result | character, asked from the result's side ("is the person on the left the person on the right?");
2. character | result, order swapped and the question rephrased from the character's side.

The two scores are averaged. Consistency asks how well the face fits the scene: lighting direction,
colour, focus and grain. A judgement the server could not make (an unusable answer, or the server
failing) comes back as the fallback 5.0 with `fallback=True` and the reason, for the ledger.

Every call carries a request id, in the request's `request_id` field and as `x-request-id` metadata, so
that the server's log lines about it can be found from the orchestrator's (the caller's id when given,
a fresh one otherwise).

The composites and questions are pure functions; only `MoondreamJudge` talks to the network.
"""

from __future__ import annotations

import asyncio
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import grpc
import numpy as np
from inpaint.v1 import image_pb2, moondream_pb2, moondream_pb2_grpc
from PIL import Image

from orchestrator.channels import ServerAddress, open_channel
from orchestrator.imaging.encode import png_message
from orchestrator.search.deadline import Deadline, DeadlinePassedError
from servers.common.interceptor import REQUEST_ID_KEY

FALLBACK_SCORE = 5.0
COMPOSITE_HEIGHT = 384
COMPOSITE_GAP = 16
GAP_GREY = 128

# Two phrasings, one from each side of the composite. Both describe what the image shows so that the
# model does not have to guess the layout, and both ask for the same 0..10 scale.
IDENTITY_FROM_RESULT = (
    "This image shows two photos side by side. Is the person in the left photo the same person as in the "
    "right photo? Judge only facial identity (face shape, eyes, nose, mouth, jaw), not expression, pose, "
    "lighting or hair. Rate from 0 (certainly different people) to 10 (certainly the same person)."
)
IDENTITY_FROM_CHARACTER = (
    "Two portraits are placed next to each other in this image. The left portrait is the reference person. "
    "How well does the face in the right portrait match the reference person's identity, ignoring "
    "expression, head pose, lighting and hairstyle? Rate from 0 (a different person) to 10 (the same person)."
)
CONSISTENCY_QUESTION = (
    "Look at the face in this photo and at the rest of the photo. Does the face belong in the scene: same "
    "lighting direction and softness, same colour temperature, same focus and sharpness, same noise and "
    "grain, no visible seam? Rate from 0 (clearly pasted in) to 10 (perfectly consistent)."
)


# The Moondream server refuses longer request ids (INVALID_ARGUMENT on `request_id`).
MAX_REQUEST_ID_CHARS = 128
# gRPC metadata values must be printable ASCII (and edge spaces may be trimmed in transit): anything
# else, spaces and "%" itself are percent-escaped.
_METADATA_SAFE = "".join(c for c in string.printable if c not in string.whitespace and c != "%")


def wire_request_id(request_id: str) -> str:
    """The id as it travels: `request_id` itself when it is printable ASCII, else percent-escaped; a fresh
    random id when empty; cut to the server's 128 characters."""
    if not request_id:
        return uuid.uuid4().hex
    return quote(request_id, safe=_METADATA_SAFE)[:MAX_REQUEST_ID_CHARS]


def _to_pil(image: np.ndarray) -> Image.Image:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    return Image.fromarray(image, mode="RGB")


def panel(image: np.ndarray, height: int = COMPOSITE_HEIGHT) -> np.ndarray:
    """`image` (RGB uint8) scaled to `height`, aspect kept: one side of a composite."""
    pil = _to_pil(image)
    width = max(1, round(pil.width * height / pil.height))
    return np.asarray(pil.resize((width, height), Image.Resampling.LANCZOS))


def join(left: np.ndarray, right: np.ndarray, gap: int = COMPOSITE_GAP) -> np.ndarray:
    """Two panels of one height next to each other with a grey gap."""
    if left.shape[0] != right.shape[0]:
        raise ValueError(f"panels must have one height, got {left.shape[0]} and {right.shape[0]}")
    spacer = np.full((left.shape[0], gap, 3), GAP_GREY, dtype=np.uint8)
    return np.concatenate([left, spacer, right], axis=1)


def side_by_side(
    left: np.ndarray, right: np.ndarray, *, height: int = COMPOSITE_HEIGHT, gap: int = COMPOSITE_GAP
) -> np.ndarray:
    """`left` and `right` (RGB uint8) scaled to the same height, placed next to each other with a grey gap."""
    return join(panel(left, height), panel(right, height), gap)


def encode_png(image: np.ndarray) -> image_pb2.Image:
    _to_pil(image)  # the shape check
    return png_message(image)


def identity_queries(result_face: np.ndarray, character_face: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """The two (composite, question) pairs of the cross-validated identity judgement."""
    return identity_queries_of_panels(panel(result_face), panel(character_face))


def identity_queries_of_panels(result: np.ndarray, character: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """`identity_queries` from the faces' panels (`panel`): a search scales the character's once per task."""
    return [(join(result, character), IDENTITY_FROM_RESULT), (join(character, result), IDENTITY_FROM_CHARACTER)]


@dataclass(frozen=True)
class QuestionScore:
    """One question's score as the server returned it."""

    score: float
    method: str
    fallback: bool
    raw_answer: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Judgement:
    """A 0..10 judgement; `fallback` when no usable score came back, with the reasons."""

    score: float
    fallback: bool
    parts: tuple[QuestionScore, ...] = field(default_factory=tuple)
    standin: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)


def combine(parts: Sequence[QuestionScore], *, standin: bool = False) -> Judgement:
    """Average the usable scores; the fallback when none is usable."""
    usable = [part.score for part in parts if not part.fallback]
    reasons = tuple(part.reason for part in parts if part.fallback and part.reason)
    if not usable:
        return Judgement(FALLBACK_SCORE, True, tuple(parts), standin, reasons or ("no usable score",))
    return Judgement(float(np.mean(usable)), False, tuple(parts), standin, reasons)


class MoondreamJudge:
    """Identity and consistency scores from a Moondream server. A failed call gives the flagged fallback."""

    def __init__(self, address: ServerAddress) -> None:
        """One long-lived channel to the server (`address.timeout_s` caps each call; the deadline may cut it)."""
        self._channel = open_channel(address)
        self._stub = moondream_pb2_grpc.MoondreamServiceStub(self._channel)
        self._timeout_s = address.timeout_s

    def close(self) -> None:
        self._channel.close()

    def query(self, image: np.ndarray, question: str, *, max_new_tokens: int = 0, request_id: str = "") -> str:
        """The model's free-text answer (errors propagate: a query has no fallback).

        Args:
            request_id: the id the server logs this call under (see `wire_request_id`); a fresh one when empty.
        """
        request_id = wire_request_id(request_id)
        request = moondream_pb2.QueryRequest(
            image=encode_png(image), question=question, max_new_tokens=max_new_tokens, request_id=request_id
        )
        response: moondream_pb2.QueryResponse = self._stub.Query(
            request, timeout=self._timeout_s, metadata=((REQUEST_ID_KEY, request_id),)
        )
        return response.answer

    def score(
        self, queries: Sequence[tuple[np.ndarray, str]], deadline: Deadline | None = None, *, request_id: str = ""
    ) -> tuple[list[QuestionScore], bool]:
        """Scores of (image, question) pairs in one call, and whether a stand-in model served them.
        A failed call gives every question the flagged fallback with the status as the reason.

        Args:
            deadline: the caller's; the call's timeout is the time left, at most the judge's own timeout.
            request_id: the id the server logs this call under (see `wire_request_id`); a fresh one when empty.
        """
        call = self._prepare(queries, deadline, request_id)
        if isinstance(call, str):
            return _not_made(call, len(queries)), False
        request, timeout, metadata = call
        try:
            response: moondream_pb2.ScoreResponse = self._stub.Score(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            return _failed(error, len(queries)), False
        return _parts(response), response.model.standin

    async def score_async(
        self, queries: Sequence[tuple[np.ndarray, str]], deadline: Deadline | None = None, *, request_id: str = ""
    ) -> tuple[list[QuestionScore], bool]:
        """`score` for the event loop: the request is built in a worker thread, and cancelling the awaiting task
        cancels the call, so the server stops the work (its cancel token is checked between steps)."""
        call = await asyncio.to_thread(self._prepare, queries, deadline, request_id)
        if isinstance(call, str):
            return _not_made(call, len(queries)), False
        request, timeout, metadata = call
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[moondream_pb2.ScoreResponse] = loop.create_future()
        pending = self._stub.Score.future(request, timeout=timeout, metadata=metadata)

        def done(finished: grpc.Future[moondream_pb2.ScoreResponse]) -> None:
            def settle() -> None:
                if answer.done():
                    return
                error = finished.exception()
                if error is not None:
                    answer.set_exception(error)
                else:
                    answer.set_result(finished.result())

            loop.call_soon_threadsafe(settle)

        pending.add_done_callback(done)
        try:
            response = await answer
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except grpc.RpcError as error:
            return _failed(error, len(queries)), False
        return _parts(response), response.model.standin

    def _prepare(
        self, queries: Sequence[tuple[np.ndarray, str]], deadline: Deadline | None, request_id: str
    ) -> tuple[moondream_pb2.ScoreRequest, float, tuple[tuple[str, str]]] | str:
        """The request, its timeout and metadata; or, when no time is left, why no call is made."""
        request_id = wire_request_id(request_id)
        try:
            timeout = (deadline or Deadline.never()).timeout(self._timeout_s)
        except DeadlinePassedError as error:
            return f"moondream call not made: {error}"
        request = moondream_pb2.ScoreRequest(
            queries=[
                moondream_pb2.ScoreQuery(image=encode_png(image), question=question) for image, question in queries
            ],
            request_id=request_id,
        )
        return request, timeout, ((REQUEST_ID_KEY, request_id),)

    def identity(self, result_face: np.ndarray, character_face: np.ndarray, *, request_id: str = "") -> Judgement:
        """Cross-validated identity: both composites, both phrasings, averaged."""
        parts, standin = self.score(identity_queries(result_face, character_face), request_id=request_id)
        return combine(parts, standin=standin)

    def consistency(self, result_image: np.ndarray, *, request_id: str = "") -> Judgement:
        """How well the face fits the scene (lighting, colour, focus, grain)."""
        parts, standin = self.score([(result_image, CONSISTENCY_QUESTION)], request_id=request_id)
        return combine(parts, standin=standin)


def _failed(error: grpc.RpcError, count: int) -> list[QuestionScore]:
    """A failed call: every question gets the flagged fallback, with the status as the reason."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    return _not_made(f"moondream call failed: {code.name if code else 'UNKNOWN'}: {details}", count)


def _not_made(reason: str, count: int) -> list[QuestionScore]:
    """No answer (the call failed or was not made): every question gets the flagged fallback with `reason`."""
    return [QuestionScore(FALLBACK_SCORE, "fallback", True, reason=reason) for _ in range(count)]


def _parts(response: moondream_pb2.ScoreResponse) -> list[QuestionScore]:
    return [
        QuestionScore(
            score=result.score,
            method=moondream_pb2.ScoreMethod.Name(result.method),
            fallback=result.fallback,
            raw_answer=result.raw_answer,
            reason=result.fallback_reason,
        )
        for result in response.results
    ]
