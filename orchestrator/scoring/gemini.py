"""Realism scores from Gemini through `google-genai`, the maintained SDK (see docs/architecture.md, "Scoring").

A strict rubric asks for the severity of four failure modes of edited faces (CGI look, painted look,
plastic skin, artifacts), a fatal-flaw verdict and an overall 0-10 score, as JSON under a response
schema. The cap for a fatal flaw is enforced here as well, not left to the model's arithmetic.

What the judge sees (`build_judge_views`): the face region (the refinement crop grown for context, long
side capped at 1024 px) and a small whole-image view (long side 512 px), both JPEG, with a prompt that
says which is which. Never the full-resolution photo: a 40 MP JPEG can exceed the API's inline request
limit, and then every model in the chain refuses it the same way.

Sampling temperature per model family (`GeminiConfig.temperatures`): Gemini 3 models are documented to
need 1.0 (lower values can loop or degrade); other families keep 0.0. Each score reports the temperature
it was made at.

Failures never raise: the scorer answers with `fallback_score`, flagged, with the reason. What the
endpoint has taught us is remembered process-wide (`GeminiCircuit`, one per endpoint and key), so that 20
candidates of a task, or the next task, do not learn it again request by request:

- 429 RESOURCE_EXHAUSTED (quota): the server's retry delay (google.rpc.RetryInfo in the error details,
  or a Retry-After header; otherwise exponential backoff) is honoured by every candidate while it fits
  the candidate's budget; never a reason to try another model (the quota is the project's);
- 404 NOT_FOUND (a retired or misspelt model): next model, and that model is skipped by every candidate
  for `model_unavailable_ttl_s`;
- a refused key (400 INVALID_ARGUMENT "API key not valid", 401, 403): final for every model and every
  candidate for `key_refused_ttl_s`;
- a connection failure (DNS, refused, TLS): no other model would fare better; no request at all for a
  back-off that doubles from `unreachable_backoff_s` up to `unreachable_backoff_max_s`;
- other 4xx: next model; 408, 5xx, read timeouts and broken connections: retried on the same model with
  exponential backoff and jitter, `attempts_per_model` times, then the next model;
- an answer that is not the JSON the schema asked for: next model.

Until the endpoint and a model have answered once (at start, and after every block), requests to it go
one at a time: one probe learns what the other candidates would otherwise all run into at once. A
block is logged once per task (request id), not once per candidate.

The API key comes from an explicit argument, then `GeminiConfig.key_file`, then `GEMINI_API_KEY`. It is
held in an `ApiKey` whose repr is redacted, is scrubbed from every reason and log line this module
writes, and never appears in a `RealismScore`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import math
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from pathlib import Path
from typing import Any, Final

import cv2
import httpx2
import numpy as np
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from google.protobuf import duration_pb2
from PIL import Image

from orchestrator.refine.crop import CropBox
from orchestrator.search.contracts import SignalScore
from orchestrator.search.deadline import Deadline
from orchestrator.search.signals import REALISM

logger = logging.getLogger(__name__)

GEMINI_API_KEY_ENV: Final = "GEMINI_API_KEY"

# Current stable 3.x flash models, newest first (ai.google.dev/gemini-api/docs/models, read 2026-11):
# gemini-2.5-flash and -pro retired on 2026-12-01. Kept in config; `GeminiConfig.check_models` warns at
# start-up about a retired or unknown name.
DEFAULT_MODELS: Final = ("gemini-3.8-flash", "gemini-3.6-flash", "gemini-3.5-flash-lite")

# Models this release knows to be served (stable, or preview without a shutdown date).
KNOWN_MODELS: Final = frozenset(
    {
        "gemini-3.8-flash",
        "gemini-3.7-flash",
        "gemini-3.6-flash",
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.1-flash-lite",
        "gemini-3.1-pro-preview",
        "gemini-3-flash-preview",
        "gemini-2.5-flash-lite",
    }
)

# Name prefixes of shut-down models: (shutdown date, the documented replacement) (Gemini API deprecations page).
RETIRED_MODELS: Final[Mapping[str, tuple[date, str]]] = {
    "gemini-2.5-flash-image": (date(2026, 10, 2), "gemini-3.1-flash-image"),
    "gemini-2.5-pro": (date(2026, 12, 1), "gemini-3.8-flash"),
    "gemini-2.0-": (date(2026, 6, 1), "gemini-3.5-flash"),
    "gemini-1.5-": (date(2025, 9, 24), "gemini-3.5-flash"),
    "gemini-1.0-": (date(2025, 2, 15), "gemini-3.5-flash"),
    "gemini-pro": (date(2025, 2, 15), "gemini-3.5-flash"),
    "gemini-3-pro-preview": (date(2026, 3, 9), "gemini-3.1-pro-preview"),
}
# Exact ids (a prefix would also catch gemini-2.5-flash-lite, which stays).
RETIRED_EXACT_MODELS: Final[Mapping[str, tuple[date, str]]] = {
    "gemini-2.5-flash": (date(2026, 12, 1), "gemini-3.5-flash-lite"),
}

# Sampling temperature by model-name prefix; the longest matching prefix wins, so an exact id overrides
# its family. Google's Gemini 3 guide asks for 1.0 (lower values can loop or degrade).
DEFAULT_TEMPERATURES: Final[Mapping[str, float]] = {"gemini-3": 1.0}

RUBRIC_ITEMS: Final = ("cgi_look", "painted_look", "plastic_skin", "artifacts")

SYSTEM_INSTRUCTION: Final = """\
You are a strict forensic photo reviewer. You judge whether a photograph of a person, in which the face \
was replaced and retouched by software, would pass as an untouched camera photograph. You are paid to \
catch fakes, not to be kind: most edited images deserve low scores.

Rate each failure mode for severity from 0 (absent) to 10 (blatant):
- cgi_look: the face looks rendered: video-game or 3D-render shading, too-perfect symmetry, \
uncanny smoothness, lighting that does not match the scene.
- painted_look: the face looks painted, airbrushed or illustrated: brush-like texture, smeared \
detail, posterised colour, lost pores.
- plastic_skin: waxy or plastic skin, no pores or fine wrinkles, uniform sheen, doll-like features.
- artifacts: warped or duplicated features, misaligned eyes or teeth, broken glasses or earrings, \
seams, colour or sharpness discontinuity at the face boundary, blur patches, halo, mismatched \
grain or resolution between the face and the rest of the photo.

A fatal flaw is anything a casual viewer would notice at once as fake: a deformed or duplicated \
feature, a visible seam or halo around the face, a face that is obviously rendered or painted, \
the wrong number of eyes, teeth or ears. If there is a fatal flaw, set fatal_flaw to true, describe it, \
and give a score of at most 3.

score is the overall photorealism from 0 to 10: 10 is indistinguishable from an untouched photograph, \
7 passes a casual look but not scrutiny, 5 is noticeably edited, 3 or less is obviously fake. Judge only \
realism, not beauty, identity or image quality of the original photograph. Fill the severities first, \
then the score, and keep the summary to one sentence."""

USER_PROMPT: Final = "Assess the photorealism of this photograph of a person by the rubric. Answer only with the JSON."

FACE_VIEW_LABEL: Final = (
    "Image 1 of 2, the face region: the edited face and its surroundings, cropped from the photograph at up "
    "to full resolution. Judge the face here."
)
WHOLE_VIEW_LABEL: Final = (
    "Image 2 of 2, the whole photograph, downscaled: use it for the scene's lighting, colour and grain, "
    "which the face must match. Its small size is not a flaw."
)
VIEWS_PROMPT: Final = (
    "Assess the photorealism of the person's face in image 1, in the context of image 2, by the rubric. "
    "Answer only with the JSON."
)


def response_schema() -> genai_types.Schema:
    """The JSON the model must answer with; severities come before the score so it reasons in order."""
    severity = genai_types.Schema(type=genai_types.Type.INTEGER, minimum=0, maximum=10)
    return genai_types.Schema(
        type=genai_types.Type.OBJECT,
        properties={
            **{item: severity for item in RUBRIC_ITEMS},
            "fatal_flaw": genai_types.Schema(type=genai_types.Type.BOOLEAN),
            "fatal_flaw_description": genai_types.Schema(type=genai_types.Type.STRING),
            "score": genai_types.Schema(type=genai_types.Type.NUMBER, minimum=0, maximum=10),
            "summary": genai_types.Schema(type=genai_types.Type.STRING),
        },
        required=[*RUBRIC_ITEMS, "fatal_flaw", "score"],
        property_ordering=[*RUBRIC_ITEMS, "fatal_flaw", "fatal_flaw_description", "score", "summary"],
    )


# What the judge sees.


@dataclass(frozen=True)
class EncodedView:
    """One encoded image for the judge."""

    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class JudgeViews:
    """The two images Gemini judges a candidate by: the face region and a small view of the whole photo."""

    face: EncodedView
    whole: EncodedView

    @property
    def nbytes(self) -> int:
        return len(self.face.data) + len(self.whole.data)


def _fit_long_side(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image  # never upscale: it adds bytes and no detail
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def _encode_jpeg(image: np.ndarray, quality: int) -> EncodedView:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=quality)
    return EncodedView(buffer.getvalue(), "image/jpeg", width=image.shape[1], height=image.shape[0])


def build_judge_views(
    image: np.ndarray,
    box: CropBox,
    *,
    context: float = 0.25,
    face_max_side: int = 1024,
    whole_max_side: int = 512,
    quality: int = 90,
) -> JudgeViews:
    """The judge's two views of a candidate: the face region and the whole photo, small. A pure function.

    Args:
        image: the candidate, RGB uint8 (H, W, 3), at the init image's full resolution.
        box: the refinement crop around the mask (`orchestrator.refine.crop.crop_box`).
        context: the box grown by this fraction of its side on each side (clipped to the image), so that
            the judge sees the face's boundary against the untouched photo around it.
        face_max_side: the face view's long side is capped at this (downscaled, never upscaled).
        whole_max_side: the whole view's long side.
        quality: JPEG quality of both views.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"build_judge_views image: expected RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if not (0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height):
        raise ValueError(f"build_judge_views box: {box} is not inside the {width}x{height} image")
    if context < 0 or face_max_side < 16 or whole_max_side < 16 or not 1 <= quality <= 100:
        raise ValueError(
            "build_judge_views: context must be >= 0, the max sides >= 16 and quality within 1..100, got "
            f"context={context}, face_max_side={face_max_side}, whole_max_side={whole_max_side}, quality={quality}"
        )
    grow_x, grow_y = round(box.width * context), round(box.height * context)
    x0, y0 = max(box.x0 - grow_x, 0), max(box.y0 - grow_y, 0)
    x1, y1 = min(box.x1 + grow_x, width), min(box.y1 + grow_y, height)
    face = _fit_long_side(image[y0:y1, x0:x1], face_max_side)
    whole = _fit_long_side(image, whole_max_side)
    return JudgeViews(face=_encode_jpeg(face, quality), whole=_encode_jpeg(whole, quality))


class ApiKey:
    """A Gemini API key that does not leak through repr, str, formatting or pickling."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise ValueError("Gemini API key: empty")
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the SDK client only."""
        return self._value

    def redact(self, text: str) -> str:
        return text.replace(self._value, "<redacted>")

    def fingerprint(self) -> str:
        """A one-way digest that tells keys apart (process-wide state is per key) without holding the key."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "ApiKey(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("ApiKey cannot be pickled")


def resolve_api_key(
    explicit: str | ApiKey | None = None,
    key_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApiKey | None:
    """The key from, in order: an explicit value (the CLI flag), a key file, `GEMINI_API_KEY`. None if none.

    A key file keeps the key out of process lists (a flag value is visible in `ps`).
    """
    if isinstance(explicit, ApiKey):
        return explicit
    if explicit:
        return ApiKey(explicit)
    if key_file is not None:
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"Gemini key file {path}: cannot be read ({exc.strerror})") from None
        if not text.strip():
            raise ValueError(f"Gemini key file {path}: empty")
        return ApiKey(text)
    value = (os.environ if environ is None else environ).get(GEMINI_API_KEY_ENV, "")
    return ApiKey(value) if value.strip() else None


def _bare_model(model: str) -> str:
    return model.strip().removeprefix("models/")


@dataclass(frozen=True)
class GeminiConfig:
    """Settings of the Gemini realism scorer; the key is not one of them (see `resolve_api_key`).

    Attributes:
        models: the model chain, tried in order.
        base_url: the API endpoint; None for Google's (tests point it at the fake server).
        api_version: the REST API version in the path; None for the SDK's default.
        request_timeout_s: one attempt's limit, measured once a concurrency slot is held.
        attempts_per_model: attempts on one model for retryable failures (429, 5xx, timeouts).
        backoff_initial_s, backoff_multiplier, backoff_max_s: delay before retry n is
            min(max, initial * multiplier**(n-1)), then scaled by a random factor within +-backoff_jitter.
        max_concurrency: requests in flight at once from this scorer (quota and cost control); the one
            concurrency setting of Gemini scoring.
        fatal_flaw_cap: the highest score an image with a fatal flaw can get.
        severe_flaw_level: a rubric severity at or above this counts as a fatal flaw even if the model
            did not say so.
        fallback_score: the score when Gemini cannot answer (flagged as fallback).
        temperature: the sampling temperature of a model no entry of `temperatures` matches.
        temperatures: temperature by model-name prefix or exact id; the longest matching key wins.
        key_file: where to read the key when no explicit key is given.
        model_unavailable_ttl_s: a model that answered 404 NOT_FOUND is not asked again for this long.
        key_refused_ttl_s: a refused key makes every request of this process wait this long.
        unreachable_backoff_s, unreachable_backoff_max_s: no request for this long after a connection
            failure, doubling with each failed probe up to the max.
        max_retry_delay_s: the longest server-requested retry delay (429) a candidate waits out, even
            within its budget; a longer one falls back at once.
        face_view_max_side, whole_view_max_side, view_context, view_jpeg_quality: what the judge sees
            (`build_judge_views`).
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    base_url: str | None = None
    api_version: str | None = None
    request_timeout_s: float = 30.0
    attempts_per_model: int = 3
    backoff_initial_s: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max_s: float = 8.0
    backoff_jitter: float = 0.2
    # A batched stage delivers its candidates at once (8 global, then 3 x 4 local): 8 in flight scores a
    # global stage in one round and a local stage in two. bench/gemini_scoring.py, 21 candidates, 300 ms
    # answers: 1.10 s at 8, 2.18 s at 4, 7.68 s one at a time, 0.43 s at 21. Beyond 8 buys little, since
    # generation paces a task (the orchestrator bench: ~1 s a candidate), and it would double a task's
    # burst against per-minute quotas.
    max_concurrency: int = 8
    fatal_flaw_cap: float = 3.0
    severe_flaw_level: int = 8
    fallback_score: float = 5.0
    temperature: float = 0.0
    temperatures: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TEMPERATURES), hash=False)
    key_file: Path | None = None
    model_unavailable_ttl_s: float = 600.0
    key_refused_ttl_s: float = 600.0
    unreachable_backoff_s: float = 30.0
    unreachable_backoff_max_s: float = 300.0
    max_retry_delay_s: float = 60.0
    face_view_max_side: int = 1024
    whole_view_max_side: int = 512
    view_context: float = 0.25
    view_jpeg_quality: int = 90

    def __post_init__(self) -> None:
        def bad(name: str, problem: str) -> ValueError:
            return ValueError(f"GeminiConfig.{name}: {problem}")

        if not self.models or any(not m.strip() for m in self.models):
            raise bad("models", f"needs at least one non-empty model name, got {self.models!r}")
        if not self.request_timeout_s > 0:
            raise bad("request_timeout_s", f"must be > 0, got {self.request_timeout_s}")
        if self.attempts_per_model < 1:
            raise bad("attempts_per_model", f"must be at least 1, got {self.attempts_per_model}")
        if self.backoff_initial_s < 0 or self.backoff_max_s < 0 or self.backoff_multiplier < 1:
            raise bad("backoff_*", "delays must be >= 0 and the multiplier >= 1")
        if not 0 <= self.backoff_jitter < 1:
            raise bad("backoff_jitter", f"must be within [0, 1), got {self.backoff_jitter}")
        if self.max_concurrency < 1:
            raise bad("max_concurrency", f"must be at least 1, got {self.max_concurrency}")
        for name in ("fatal_flaw_cap", "fallback_score"):
            value = getattr(self, name)
            if not 0 <= value <= 10:
                raise bad(name, f"must be within 0..10, got {value}")
        for name, value in (("temperature", self.temperature), *self.temperatures.items()):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 2):
                where = "temperature" if name == "temperature" else f"temperatures[{name!r}]"
                raise bad(where, f"must be within 0..2 (the API's range), got {value!r}")
        for name in (
            "model_unavailable_ttl_s",
            "key_refused_ttl_s",
            "unreachable_backoff_s",
            "unreachable_backoff_max_s",
            "max_retry_delay_s",
        ):
            value = getattr(self, name)
            if not value >= 0:
                raise bad(name, f"must be >= 0, got {value}")
        if self.unreachable_backoff_max_s < self.unreachable_backoff_s:
            raise bad("unreachable_backoff_max_s", "must be >= unreachable_backoff_s")
        if self.face_view_max_side < 16 or self.whole_view_max_side < 16:
            raise bad("face_view_max_side/whole_view_max_side", "must be at least 16 px")
        if self.view_context < 0:
            raise bad("view_context", f"must be >= 0, got {self.view_context}")
        if not 1 <= self.view_jpeg_quality <= 100:
            raise bad("view_jpeg_quality", f"must be within 1..100, got {self.view_jpeg_quality}")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number `retry` (1-based)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * self.backoff_multiplier ** (retry - 1))
        return base * (1 + self.backoff_jitter * (2 * rng.random() - 1))

    def temperature_for(self, model: str) -> float:
        """The sampling temperature for `model`: the longest matching key of `temperatures`, else `temperature`."""
        name = _bare_model(model)
        matches = [key for key in self.temperatures if name.startswith(_bare_model(key))]
        return float(self.temperatures[max(matches, key=len)]) if matches else self.temperature

    def check_models(self, today: date | None = None) -> list[str]:
        """Warnings about the model chain, for the service to log at start: retired and unknown models.

        A retired model answers 404 at every request; an unknown name is usually a typo (or a model newer
        than this release: then the warning is harmless).
        """
        today = today or datetime.now(UTC).date()
        warnings: list[str] = []
        for model in self.models:
            name = _bare_model(model)
            retired = RETIRED_EXACT_MODELS.get(name)
            if retired is None:
                prefixes = [p for p in RETIRED_MODELS if name.startswith(p)]
                retired = RETIRED_MODELS[max(prefixes, key=len)] if prefixes else None
            if retired is not None:
                shutdown, replacement = retired
                when = "was shut down" if shutdown <= today else "shuts down"
                warnings.append(
                    f"GeminiConfig.models: {model} {when} on {shutdown.isoformat()} (its requests answer 404); "
                    f"use {replacement}"
                )
            elif name not in KNOWN_MODELS:
                warnings.append(
                    f"GeminiConfig.models: {model} is not a model this release knows (known: "
                    f"{', '.join(sorted(KNOWN_MODELS))}); a misspelt name answers 404"
                )
        return warnings


@dataclass(frozen=True)
class RealismScore:
    """Gemini's verdict on one image, or the fallback that stands in for it.

    Attributes:
        score: 0-10 after the fatal-flaw cap (the fallback score when `fallback`).
        model: the model that answered; None when none did.
        fallback: True when no model answered usably.
        reason: why it fell back, or why the score was capped.
        attempts: requests made, over all models.
        elapsed_s: wall time of the whole scoring call.
        raw_score: the model's own score before the cap.
        fatal_flaw: the model's verdict, or a rubric severity at `severe_flaw_level` or above.
        capped: True when the cap lowered the score.
        rubric: severities 0-10 of cgi_look, painted_look, plastic_skin, artifacts.
        summary: the model's one-sentence summary (and the fatal flaw, when there is one).
        temperature: the sampling temperature of the answering model's request; None when none answered.
        image_bytes: the encoded image bytes each request carried inline.
        views: what the judge saw ("face 1024x1024, whole 512x341"); empty for a single image.
    """

    score: float
    model: str | None
    fallback: bool
    reason: str | None
    attempts: int
    elapsed_s: float
    raw_score: float | None = None
    fatal_flaw: bool = False
    capped: bool = False
    rubric: Mapping[str, int] = field(default_factory=dict)
    summary: str = ""
    temperature: float | None = None
    image_bytes: int = 0
    views: str = ""

    @property
    def source(self) -> str:
        return f"gemini:{self.model}" if self.model else "gemini"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rubric"] = dict(self.rubric)
        data["source"] = self.source
        return data

    def to_signal_score(self) -> SignalScore:
        details: dict[str, str | int | float | bool | None] = {
            "attempts": self.attempts,
            "raw_score": self.raw_score,
            "fatal_flaw": self.fatal_flaw,
            "capped": self.capped,
            "temperature": self.temperature,
            "image_bytes": self.image_bytes,
            **{f"rubric_{k}": v for k, v in self.rubric.items()},
        }
        if self.views:
            details["views"] = self.views
        if self.summary:
            details["summary"] = self.summary
        return SignalScore(
            signal=REALISM,
            value=self.score,
            source=self.source,
            fallback=self.fallback,
            reason=self.reason,
            details=details,
        )


# What the endpoint has taught us, process-wide.


class BlockKind(Enum):
    QUOTA = "quota"  # 429: wait for the server's retry delay, then ask again
    KEY_REFUSED = "key_refused"  # no model will accept this key
    UNREACHABLE = "unreachable"  # no connection to the endpoint at all


@dataclass(frozen=True)
class Block:
    """No request to the endpoint before `until` (the circuit's clock), for `reason`."""

    kind: BlockKind
    until: float
    reason: str
    epoch: int  # tells one block from the next, for logging once per task


class GeminiCircuit:
    """What one endpoint (base URL, API version and key) has taught this process; shared by every scorer.

    Thread-safe for its plain state; the probe lock is per event loop (asyncio primitives belong to one).
    `clock` is injectable so that tests can move time instead of sleeping.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._block: Block | None = None
        self._epoch = 0
        self._unreachable_streak = 0
        self._healthy = False  # an HTTP answer came since the start or the last block
        self._confirmed: set[str] = set()  # models that answered (they exist, the key works for them)
        self._missing: dict[str, tuple[float, str]] = {}  # model -> (until, reason)
        self._probe_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._reported: OrderedDict[tuple[str, int], None] = OrderedDict()

    def current_block(self) -> Block | None:
        with self._lock:
            if self._block is not None and self.clock() >= self._block.until:
                self._block = None
            return self._block

    def missing(self, model: str) -> str | None:
        """Why `model` is skipped (it answered 404 recently), or None."""
        with self._lock:
            entry = self._missing.get(model)
            if entry is None:
                return None
            until, reason = entry
            if self.clock() >= until:
                del self._missing[model]
                return None
            return reason

    def needs_probe(self, model: str) -> bool:
        """True until the endpoint (since the last block) and this model have answered once."""
        with self._lock:
            return not self._healthy or model not in self._confirmed

    def probe_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._lock:
            lock = self._probe_locks.get(loop)
            if lock is None:
                lock = self._probe_locks[loop] = asyncio.Lock()
            return lock

    def answered(self, model: str) -> None:
        """The endpoint answered for `model` with something other than a block or a 404."""
        with self._lock:
            self._healthy = True
            self._unreachable_streak = 0
            self._confirmed.add(model)

    def mark_missing(self, model: str, ttl_s: float, reason: str) -> None:
        with self._lock:
            self._healthy = True  # the endpoint answered, and the key passed
            self._unreachable_streak = 0
            self._confirmed.discard(model)
            self._missing[model] = (self.clock() + ttl_s, reason)

    def block(self, kind: BlockKind, seconds: float, reason: str) -> Block:
        """Block the endpoint for `seconds` (a later block already in force is kept); returns the block."""
        with self._lock:
            now = self.clock()
            if kind is BlockKind.UNREACHABLE:
                self._unreachable_streak += 1
            current = self._block
            if current is not None and current.until >= now + seconds:
                return current
            self._epoch += 1
            self._healthy = False
            self._block = Block(kind=kind, until=now + seconds, reason=reason, epoch=self._epoch)
            return self._block

    def unreachable_backoff_s(self, initial_s: float, max_s: float) -> float:
        """The back-off for the next connection failure: doubles with each failure in a row."""
        with self._lock:
            return min(max_s, initial_s * 2.0**self._unreachable_streak)

    def first_report(self, request_id: str, block: Block) -> bool:
        """True the first time this task meets this block (log it then, not for every candidate)."""
        key = (request_id, block.epoch)
        with self._lock:
            if key in self._reported:
                return False
            self._reported[key] = None
            while len(self._reported) > 1024:  # bounded: a long-running service meets many tasks
                self._reported.popitem(last=False)
            return True


_CIRCUITS: dict[str, GeminiCircuit] = {}
_CIRCUITS_LOCK = threading.Lock()


def circuit_for(config: GeminiConfig, key: ApiKey) -> GeminiCircuit:
    """The process-wide circuit of this endpoint and key (a new key starts with a clean slate)."""
    name = f"{config.base_url or 'default'}|{config.api_version or 'default'}|{key.fingerprint()}"
    with _CIRCUITS_LOCK:
        circuit = _CIRCUITS.get(name)
        if circuit is None:
            circuit = _CIRCUITS[name] = GeminiCircuit()
        return circuit


def reset_circuits() -> None:
    """Forget what every endpoint taught this process (tests start from a clean process state)."""
    with _CIRCUITS_LOCK:
        _CIRCUITS.clear()


# Reading errors.


def _error_payload(exc: genai_errors.APIError) -> dict[str, Any]:
    details = exc.details
    if isinstance(details, dict):
        inner = details.get("error", details)
        return inner if isinstance(inner, dict) else {}
    return {}


def _error_details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    items = _error_payload(exc).get("details")
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def retry_delay_s(exc: genai_errors.APIError, now: datetime | None = None) -> float | None:
    """The server's retry delay: google.rpc.RetryInfo in the error details, else a Retry-After header."""
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo") and "retryDelay" in detail:
            duration = duration_pb2.Duration()
            try:
                duration.FromJsonString(str(detail["retryDelay"]))
            except ValueError:
                continue
            return max(duration.ToTimedelta().total_seconds(), 0.0)
    headers = getattr(exc.response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)  # the other form: an HTTP date
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def is_key_refused(exc: genai_errors.APIError) -> bool:
    """401/403, or Google's answer to a bad key: 400 INVALID_ARGUMENT, ErrorInfo reason API_KEY_INVALID."""
    if exc.code in (401, 403):
        return True
    if exc.code != 400:
        return False
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo") and detail.get("reason") in (
            "API_KEY_INVALID",
            "API_KEY_EXPIRED",
        ):
            return True
    return "api key not valid" in (exc.message or "").lower() or "api key expired" in (exc.message or "").lower()


def is_quota(exc: genai_errors.APIError) -> bool:
    return exc.code == 429 or exc.status == "RESOURCE_EXHAUSTED"


class MalformedAnswerError(ValueError):
    """The model's text is not the JSON the response schema asked for."""


@dataclass(frozen=True)
class _Assessment:
    rubric: dict[str, int]
    fatal_flaw: bool
    fatal_flaw_description: str
    score: float
    summary: str


def parse_assessment(text: str | None) -> _Assessment:
    """The rubric answer, validated; raises `MalformedAnswerError` naming what is wrong."""
    if not text:
        raise MalformedAnswerError("empty answer (blocked or no text part)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedAnswerError(f"not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise MalformedAnswerError(f"JSON {type(data).__name__}, expected an object")
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise MalformedAnswerError(f"score is {score!r}, expected a number")
    if not 0 <= score <= 10:
        raise MalformedAnswerError(f"score {score} outside 0..10")
    fatal = data.get("fatal_flaw")
    if not isinstance(fatal, bool):
        raise MalformedAnswerError(f"fatal_flaw is {fatal!r}, expected true or false")
    rubric: dict[str, int] = {}
    for item in RUBRIC_ITEMS:
        value = data.get(item)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10:
            raise MalformedAnswerError(f"{item} is {value!r}, expected a severity 0..10")
        rubric[item] = round(value)
    return _Assessment(
        rubric=rubric,
        fatal_flaw=fatal,
        fatal_flaw_description=str(data.get("fatal_flaw_description") or ""),
        score=float(score),
        summary=str(data.get("summary") or ""),
    )


class _Outcome(Enum):
    RETRY = "retry"  # the same model again after a backoff
    NEXT_MODEL = "next_model"
    GIVE_UP = "give_up"  # no model will do better now (a block is in force)


class _Gated(Exception):
    """Raised before sending: the circuit changed while this request waited (a block, or a missing model)."""


@dataclass
class _Call:
    """One scoring call's running tally."""

    started: float
    deadline: Deadline
    attempts: int = 0
    reasons: list[str] = field(default_factory=list)

    def time_left(self) -> float | None:
        return self.deadline.remaining() if self.deadline.bounded else None


class GeminiRealismScorer:
    """Scores the photorealism of images with Gemini; see the module docstring for the failure policy.

    Use from one event loop at a time: the SDK's async client and the concurrency semaphore belong to
    the loop that first used them (a new loop gets fresh ones).
    """

    def __init__(
        self,
        config: GeminiConfig | None = None,
        *,
        api_key: str | ApiKey | None = None,
        rng: random.Random | None = None,
        circuit: GeminiCircuit | None = None,
    ) -> None:
        """Args:
        config: the settings (defaults if None).
        api_key: the key; None to read `config.key_file` or `GEMINI_API_KEY`.
        rng: the backoff jitter's source.
        circuit: what the endpoint has taught us; None for this process's shared one (`circuit_for`).
        """
        self.config = config or GeminiConfig()
        self._key = resolve_api_key(api_key, self.config.key_file)
        self._rng = rng or random.Random()
        self._circuit = circuit or (circuit_for(self.config, self._key) if self._key is not None else GeminiCircuit())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: genai.Client | None = None
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def has_key(self) -> bool:
        return self._key is not None

    @property
    def circuit(self) -> GeminiCircuit:
        return self._circuit

    def __repr__(self) -> str:
        key = "<redacted>" if self._key is not None else "<none>"
        return f"GeminiRealismScorer(models={self.config.models!r}, base_url={self.config.base_url!r}, api_key={key})"

    def _redact(self, text: str) -> str:
        return self._key.redact(text) if self._key is not None else text

    def _for_this_loop(self, key: ApiKey) -> tuple[genai.Client, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._semaphore is None:
            http_options = genai_types.HttpOptions(
                base_url=self.config.base_url,
                api_version=self.config.api_version,
                timeout=math.ceil(self.config.request_timeout_s * 1000),
                # One attempt per SDK call: this class owns retries, backoff and the model chain.
                retry_options=genai_types.HttpRetryOptions(attempts=1),
            )
            self._client = genai.Client(api_key=key.reveal(), http_options=http_options)
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
            self._loop = loop
        return self._client, self._semaphore

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None
            self._loop = None

    def views_for(self, box: CropBox) -> Callable[[np.ndarray], JudgeViews]:
        """`build_judge_views` for this crop box, with this config's view settings."""
        cfg = self.config

        def build(image: np.ndarray) -> JudgeViews:
            return build_judge_views(
                image,
                box,
                context=cfg.view_context,
                face_max_side=cfg.face_view_max_side,
                whole_max_side=cfg.whole_view_max_side,
                quality=cfg.view_jpeg_quality,
            )

        return build

    async def score(
        self,
        image: bytes,
        mime_type: str = "image/png",
        *,
        request_id: str = "",
        deadline: Deadline | None = None,
    ) -> RealismScore:
        """The realism of one encoded image (already small: see `score_views` for a full-size candidate).

        Never raises for Gemini's failures; falls back, flagged.

        Args:
            image: the encoded image (PNG or JPEG bytes).
            mime_type: its MIME type.
            request_id: for the log lines.
            deadline: the request's (None: none); attempts are cut short, and no retry or wait starts
                that it would not leave time for.
        """
        parts = [
            genai_types.Part.from_bytes(data=image, mime_type=mime_type),
            genai_types.Part.from_text(text=USER_PROMPT),
        ]
        return await self._score_parts(parts, len(image), "", request_id, deadline)

    async def score_views(
        self, views: JudgeViews, *, request_id: str = "", deadline: Deadline | None = None
    ) -> RealismScore:
        """The realism of a candidate from its two views (`build_judge_views`), labelled for the model.

        Never raises for Gemini's failures; falls back, flagged. Arguments as `score`.
        """
        parts = [
            genai_types.Part.from_text(text=FACE_VIEW_LABEL),
            genai_types.Part.from_bytes(data=views.face.data, mime_type=views.face.mime_type),
            genai_types.Part.from_text(text=WHOLE_VIEW_LABEL),
            genai_types.Part.from_bytes(data=views.whole.data, mime_type=views.whole.mime_type),
            genai_types.Part.from_text(text=VIEWS_PROMPT),
        ]
        described = f"face {views.face.size}, whole {views.whole.size}"
        return await self._score_parts(parts, views.nbytes, described, request_id, deadline)

    def _generation_config(self, model: str) -> genai_types.GenerateContentConfig:
        return genai_types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION,
            temperature=self.config.temperature_for(model),
            response_mime_type="application/json",
            response_schema=response_schema(),
        )

    async def _score_parts(
        self,
        parts: list[genai_types.Part],
        image_bytes: int,
        views: str,
        request_id: str,
        deadline: Deadline | None,
    ) -> RealismScore:
        cfg = self.config
        call = _Call(started=time.monotonic(), deadline=deadline or Deadline.never())

        def fallback(reason: str) -> RealismScore:
            return self._fallback(reason, call, request_id, image_bytes, views)

        if self._key is None:
            return fallback(f"no Gemini API key (set {GEMINI_API_KEY_ENV}, a key file or --gemini_api_key)")
        client, semaphore = self._for_this_loop(self._key)
        contents = genai_types.Content(role="user", parts=parts)
        circuit = self._circuit

        for model in cfg.models:
            skipped = circuit.missing(model)
            if skipped is not None:
                call.reasons.append(f"{model}: skipped: {skipped}")
                continue
            generation_config = self._generation_config(model)
            failures = 0  # this candidate's failed attempts on this model
            while True:
                left = call.time_left()
                if left is not None and left <= 0:
                    call.reasons.append("budget spent")
                    return fallback("; ".join(call.reasons))
                block = circuit.current_block()
                if block is not None:
                    wait = block.until - circuit.clock()
                    if (
                        block.kind is BlockKind.QUOTA
                        and wait <= cfg.max_retry_delay_s
                        and (left is None or wait < left)
                    ):
                        await asyncio.sleep(wait)
                        continue
                    return self._blocked_fallback(block, call, request_id, image_bytes, views)
                if circuit.missing(model) is not None:
                    break  # a probe found it missing while we waited
                timeout = cfg.request_timeout_s if left is None else min(cfg.request_timeout_s, left)
                try:
                    response = await self._send(client, semaphore, model, contents, generation_config, timeout, call)
                    assessment = parse_assessment(response.text)
                except _Gated:
                    continue  # the loop's top reads the new state
                except genai_errors.APIError as exc:
                    outcome, reason = self._on_api_error(model, exc, failures + 1)
                except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:  # DNS, refused, TLS, no route
                    outcome, reason = self._on_unreachable(model, exc)
                except (TimeoutError, httpx2.TimeoutException):
                    outcome, reason = _Outcome.RETRY, f"{model}: timed out after {timeout:.3g} s"
                except httpx2.TransportError as exc:
                    outcome, reason = _Outcome.RETRY, f"{model}: {type(exc).__name__}: {exc}"
                except MalformedAnswerError as exc:
                    circuit.answered(model)
                    outcome, reason = _Outcome.NEXT_MODEL, f"{model}: malformed answer: {exc}"
                except Exception as exc:
                    # An SDK or parsing surprise: another model may still answer; the reason says what.
                    outcome, reason = _Outcome.NEXT_MODEL, f"{model}: {type(exc).__name__}: {exc}"
                else:
                    circuit.answered(model)
                    return self._success(model, assessment, call, request_id, image_bytes, views)

                failures += 1
                reason = self._redact(reason)
                call.reasons.append(reason)
                logger.warning(
                    "gemini attempt failed request_id=%s model=%s attempt=%d outcome=%s reason=%s",
                    request_id,
                    model,
                    failures,
                    outcome.value,
                    reason,
                )
                if outcome is _Outcome.GIVE_UP:
                    block = circuit.current_block()
                    if block is None or block.kind is BlockKind.QUOTA:
                        return fallback("; ".join(call.reasons))
                    return self._blocked_fallback(block, call, request_id, image_bytes, views)
                if outcome is _Outcome.NEXT_MODEL:
                    break
                if failures >= cfg.attempts_per_model:
                    if circuit.current_block() is not None:  # a quota error: the next model shares the quota
                        return fallback("; ".join(call.reasons))
                    break
                if circuit.current_block() is None:  # a quota block sets its own wait at the loop's top
                    delay = cfg.backoff_s(failures, self._rng)
                    left = call.time_left()
                    if left is not None and delay >= left:
                        call.reasons.append("budget too short for another retry")
                        return fallback("; ".join(call.reasons))
                    await asyncio.sleep(delay)
        return fallback("; ".join(call.reasons) or "no model answered")

    async def _send(
        self,
        client: genai.Client,
        semaphore: asyncio.Semaphore,
        model: str,
        contents: genai_types.Content,
        generation_config: genai_types.GenerateContentConfig,
        timeout: float,
        call: _Call,
    ) -> genai_types.GenerateContentResponse:
        """One request; first contact with the endpoint or model goes one at a time (see the module doc)."""
        circuit = self._circuit
        probe = circuit.probe_lock() if circuit.needs_probe(model) else None
        if probe is not None:
            left = call.time_left()
            try:
                await asyncio.wait_for(probe.acquire(), timeout=left)
            except TimeoutError:
                raise _Gated from None  # the deadline passed while the probe ran: the loop's top says so
            if not circuit.needs_probe(model):  # the probe before us succeeded: go concurrently
                probe.release()
                probe = None
        try:
            async with semaphore:
                # Re-read: the probe we waited for, or a request that finished while we queued, may have
                # found a block or a missing model.
                if circuit.current_block() is not None or circuit.missing(model) is not None:
                    raise _Gated
                call.attempts += 1
                return await asyncio.wait_for(
                    client.aio.models.generate_content(model=model, contents=contents, config=generation_config),
                    timeout=timeout,
                )
        finally:
            if probe is not None:
                probe.release()

    def _on_api_error(self, model: str, exc: genai_errors.APIError, failure: int) -> tuple[_Outcome, str]:
        cfg = self.config
        circuit = self._circuit
        reason = f"{model}: HTTP {exc.code} {exc.status or ''}: {(exc.message or '')[:200]}"
        if is_key_refused(exc):
            circuit.block(
                BlockKind.KEY_REFUSED,
                cfg.key_refused_ttl_s,
                self._redact(f"Gemini refused the API key ({reason}); no request for {cfg.key_refused_ttl_s:g} s"),
            )
            return _Outcome.GIVE_UP, reason
        if is_quota(exc):
            delay = retry_delay_s(exc)
            told = delay is not None
            if delay is None:
                delay = cfg.backoff_s(failure, self._rng)
            circuit.block(
                BlockKind.QUOTA,
                delay,
                self._redact(
                    f"Gemini quota exhausted ({reason}); "
                    + (f"the server asked for {delay:.3g} s" if told else f"backing off {delay:.3g} s")
                ),
            )
            return _Outcome.RETRY, reason + (f" (retry in {delay:.3g} s)" if told else "")
        if exc.code == 404:
            circuit.mark_missing(model, cfg.model_unavailable_ttl_s, self._redact(reason))
            return _Outcome.NEXT_MODEL, reason
        circuit.answered(model)
        if exc.code == 408 or exc.code >= 500:
            return _Outcome.RETRY, reason
        return _Outcome.NEXT_MODEL, reason  # 400 INVALID_ARGUMENT and the other 4xx: this model rejects it

    def _on_unreachable(self, model: str, exc: Exception) -> tuple[_Outcome, str]:
        cfg = self.config
        seconds = self._circuit.unreachable_backoff_s(cfg.unreachable_backoff_s, cfg.unreachable_backoff_max_s)
        detail = f"{type(exc).__name__}: {exc}"
        self._circuit.block(
            BlockKind.UNREACHABLE,
            seconds,
            self._redact(f"Gemini unreachable ({detail}); no request for {seconds:g} s"),
        )
        return _Outcome.GIVE_UP, f"{model}: {detail}"

    def _success(
        self,
        model: str,
        assessment: _Assessment,
        call: _Call,
        request_id: str,
        image_bytes: int,
        views: str,
    ) -> RealismScore:
        cfg = self.config
        severe = [item for item, level in assessment.rubric.items() if level >= cfg.severe_flaw_level]
        fatal = assessment.fatal_flaw or bool(severe)
        score = min(assessment.score, cfg.fatal_flaw_cap) if fatal else assessment.score
        capped = score < assessment.score
        reason: str | None = None
        if capped:
            why = assessment.fatal_flaw_description or (
                f"severe {', '.join(severe)}" if severe else "fatal flaw reported"
            )
            reason = self._redact(f"fatal flaw ({why}): capped at {cfg.fatal_flaw_cap:g}")
        summary = assessment.summary
        if assessment.fatal_flaw_description:
            summary = f"{summary} Fatal flaw: {assessment.fatal_flaw_description}".strip()
        temperature = cfg.temperature_for(model)
        result = RealismScore(
            score=score,
            model=model,
            fallback=False,
            reason=reason,
            attempts=call.attempts,
            elapsed_s=time.monotonic() - call.started,
            raw_score=assessment.score,
            fatal_flaw=fatal,
            capped=capped,
            rubric=assessment.rubric,
            summary=self._redact(summary),
            temperature=temperature,
            image_bytes=image_bytes,
            views=views,
        )
        logger.info(
            "gemini scored request_id=%s model=%s temperature=%g score=%.2f raw=%.2f fatal=%s attempts=%d "
            "elapsed_ms=%.0f",
            request_id,
            model,
            temperature,
            result.score,
            assessment.score,
            fatal,
            call.attempts,
            result.elapsed_s * 1000,
        )
        return result

    def _result_of_fallback(self, reason: str, call: _Call, image_bytes: int, views: str) -> RealismScore:
        return RealismScore(
            score=self.config.fallback_score,
            model=None,
            fallback=True,
            reason=self._redact(reason),
            attempts=call.attempts,
            elapsed_s=time.monotonic() - call.started,
            image_bytes=image_bytes,
            views=views,
        )

    def _fallback(self, reason: str, call: _Call, request_id: str, image_bytes: int, views: str) -> RealismScore:
        result = self._result_of_fallback(reason, call, image_bytes, views)
        logger.warning(
            "gemini fallback request_id=%s score=%.1f attempts=%d elapsed_ms=%.0f reason=%s",
            request_id,
            result.score,
            result.attempts,
            result.elapsed_s * 1000,
            result.reason,
        )
        return result

    def _blocked_fallback(
        self, block: Block, call: _Call, request_id: str, image_bytes: int, views: str
    ) -> RealismScore:
        # One reason per block, the same for every candidate: the ledger's notes collapse it to one line.
        reason = block.reason
        if block.kind is BlockKind.QUOTA:
            reason += "; the wait outlasts this candidate's budget"
        result = self._result_of_fallback(reason, call, image_bytes, views)
        level = logging.WARNING if self._circuit.first_report(request_id, block) else logging.DEBUG
        logger.log(
            level,
            "gemini blocked request_id=%s kind=%s for_s=%.1f score=%.1f reason=%s (further candidates of this "
            "task fall back without a log line)",
            request_id,
            block.kind.value,
            max(block.until - self._circuit.clock(), 0.0),
            result.score,
            result.reason,
        )
        return result
