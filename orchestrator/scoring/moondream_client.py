"""Moondream as the search's identity and consistency judge: a thin client over the server's RPCs.

A Moondream query is about one image, so identity is judged on a side-by-side composite of the two
faces, asked twice to cancel the model's position and wording biases:

1. result | character, asked from the result's side ("is the person on the left the person on the right?");
2. character | result, order swapped and the question rephrased from the character's side.

The two scores are averaged. Consistency asks how well the face fits the scene: lighting direction,
colour, focus and grain. A judgement the server could not make (an unusable answer, or the server
failing) comes back as the fallback 5.0 with `fallback=True` and the reason, for the ledger.

The composites and questions are pure functions; only `MoondreamJudge` talks to the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from inpaint.v1 import image_pb2, moondream_pb2, moondream_pb2_grpc
from PIL import Image

from orchestrator.imaging.encode import png_message

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


def _to_pil(image: np.ndarray) -> Image.Image:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    return Image.fromarray(image, mode="RGB")


def side_by_side(
    left: np.ndarray, right: np.ndarray, *, height: int = COMPOSITE_HEIGHT, gap: int = COMPOSITE_GAP
) -> np.ndarray:
    """`left` and `right` (RGB uint8) scaled to the same height, placed next to each other with a grey gap."""
    panels = []
    for image in (left, right):
        pil = _to_pil(image)
        width = max(1, round(pil.width * height / pil.height))
        panels.append(np.asarray(pil.resize((width, height), Image.Resampling.LANCZOS)))
    spacer = np.full((height, gap, 3), GAP_GREY, dtype=np.uint8)
    return np.concatenate([panels[0], spacer, panels[1]], axis=1)


def encode_png(image: np.ndarray) -> image_pb2.Image:
    _to_pil(image)  # the shape check
    return png_message(image)


def identity_queries(result_face: np.ndarray, character_face: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """The two (composite, question) pairs of the cross-validated identity judgement."""
    return [
        (side_by_side(result_face, character_face), IDENTITY_FROM_RESULT),
        (side_by_side(character_face, result_face), IDENTITY_FROM_CHARACTER),
    ]


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

    def __init__(self, target: str, *, timeout_s: float = 60.0, channel: grpc.Channel | None = None) -> None:
        """
        Args:
            target: host:port of the Moondream server.
            timeout_s: deadline of each call.
            channel: an existing channel to use instead of opening one to `target`.
        """
        self._channel = channel or grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                # With a dns:/// target naming a headless Service, spread calls over every replica.
                ("grpc.lb_policy_name", "round_robin"),
            ],
        )
        self._stub = moondream_pb2_grpc.MoondreamServiceStub(self._channel)
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._channel.close()

    def query(self, image: np.ndarray, question: str, *, max_new_tokens: int = 0) -> str:
        """The model's free-text answer (errors propagate: a query has no fallback)."""
        request = moondream_pb2.QueryRequest(image=encode_png(image), question=question, max_new_tokens=max_new_tokens)
        response: moondream_pb2.QueryResponse = self._stub.Query(request, timeout=self._timeout_s)
        return response.answer

    def score(
        self, queries: Sequence[tuple[np.ndarray, str]], timeout_s: float | None = None
    ) -> tuple[list[QuestionScore], bool]:
        """Scores of (image, question) pairs in one call, and whether a stand-in model served them.
        A failed call gives every question the flagged fallback with the status as the reason."""
        request = moondream_pb2.ScoreRequest(
            queries=[
                moondream_pb2.ScoreQuery(image=encode_png(image), question=question) for image, question in queries
            ]
        )
        try:
            timeout = self._timeout_s if timeout_s is None else max(min(timeout_s, self._timeout_s), 0.001)
            response: moondream_pb2.ScoreResponse = self._stub.Score(request, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            reason = f"moondream call failed: {code.name if code else 'UNKNOWN'}: {details}"
            return [QuestionScore(FALLBACK_SCORE, "fallback", True, reason=reason) for _ in queries], False
        parts = [
            QuestionScore(
                score=result.score,
                method=moondream_pb2.ScoreMethod.Name(result.method),
                fallback=result.fallback,
                raw_answer=result.raw_answer,
                reason=result.fallback_reason,
            )
            for result in response.results
        ]
        return parts, response.model.standin

    def identity(self, result_face: np.ndarray, character_face: np.ndarray) -> Judgement:
        """Cross-validated identity: both composites, both phrasings, averaged."""
        parts, standin = self.score(identity_queries(result_face, character_face))
        return combine(parts, standin=standin)

    def consistency(self, result_image: np.ndarray) -> Judgement:
        """How well the face fits the scene (lighting, colour, focus, grain)."""
        parts, standin = self.score([(result_image, CONSISTENCY_QUESTION)])
        return combine(parts, standin=standin)
