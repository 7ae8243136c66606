"""Realism scores from Gemini through `google-genai`, the maintained SDK (DESIGN section 7).

A strict rubric asks for the severity of four failure modes of edited faces (CGI look, painted look,
plastic skin, artifacts), a fatal-flaw verdict and an overall 0-10 score, as JSON under a response
schema. The cap for a fatal flaw is enforced here as well, not left to the model's arithmetic.

Failures never raise: the scorer answers with `fallback_score`, flagged, with the reason. On the way:

- 404 NOT_FOUND (a retired or misspelt model) and 400 (a model that rejects the request): next model;
- 408/429/5xx, timeouts and connection errors: retried on the same model with exponential backoff and
  jitter, `attempts_per_model` times, then the next model;
- 401/403: the key is refused, and every model would refuse it too: fallback at once;
- an answer that is not the JSON the schema asked for: next model (temperature 0 would repeat it).

The API key comes from an explicit argument, then `GeminiConfig.key_file`, then `GEMINI_API_KEY`. It is
held in an `ApiKey` whose repr is redacted, is scrubbed from every reason and log line this module
writes, and never appears in a `RealismScore`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final, Generic

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from orchestrator.search.contracts import CandidateImage, ImageT, Scorer, SignalScore
from orchestrator.search.signals import REALISM

logger = logging.getLogger(__name__)

GEMINI_API_KEY_ENV: Final = "GEMINI_API_KEY"

# Newest stable first; gemini-1.5-* and gemini-pro are retired (DESIGN section 7). Kept in config.
DEFAULT_MODELS: Final = ("gemini-3.5-flash", "gemini-3.1-flash-lite", "gemini-2.5-flash")

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
        max_concurrency: requests in flight at once from this scorer (quota and cost control).
        fatal_flaw_cap: the highest score an image with a fatal flaw can get.
        severe_flaw_level: a rubric severity at or above this counts as a fatal flaw even if the model
            did not say so.
        fallback_score: the score when Gemini cannot answer (flagged as fallback).
        temperature: sampling temperature (0: the most repeatable judgement).
        key_file: where to read the key when no explicit key is given.
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
    # A batched stage delivers its 7-12 candidates at once; 8 in flight scores a global stage in one round
    # (bench/gemini_scoring.py: 21 candidates at 300 ms take 1.06 s at 8, 2.07 s at 4, 7.2 s one at a time).
    max_concurrency: int = 8
    fatal_flaw_cap: float = 3.0
    severe_flaw_level: int = 8
    fallback_score: float = 5.0
    temperature: float = 0.0
    key_file: Path | None = None

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

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number `retry` (1-based)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * self.backoff_multiplier ** (retry - 1))
        return base * (1 + self.backoff_jitter * (2 * rng.random() - 1))


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
            **{f"rubric_{k}": v for k, v in self.rubric.items()},
        }
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


class _Outcome(Enum):
    RETRY = "retry"  # the same model again after a backoff
    NEXT_MODEL = "next_model"
    GIVE_UP = "give_up"  # no model will do better (the key is refused)


def _classify_status(code: int) -> _Outcome:
    if code in (401, 403):
        return _Outcome.GIVE_UP
    if code in (408, 429) or code >= 500:
        return _Outcome.RETRY
    return _Outcome.NEXT_MODEL  # 404 NOT_FOUND, 400 INVALID_ARGUMENT and the other 4xx


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
    ) -> None:
        self.config = config or GeminiConfig()
        self._key = resolve_api_key(api_key, self.config.key_file)
        self._rng = rng or random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: genai.Client | None = None
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def has_key(self) -> bool:
        return self._key is not None

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

    async def score(
        self,
        image: bytes,
        mime_type: str = "image/png",
        *,
        request_id: str = "",
        budget_s: float | None = None,
    ) -> RealismScore:
        """The realism of one encoded image. Never raises for Gemini's failures; falls back, flagged.

        Args:
            image: the encoded image (PNG or JPEG bytes).
            mime_type: its MIME type.
            request_id: for the log lines.
            budget_s: the most this call may take overall (the request's remaining deadline); attempts
                are cut short and no retry starts once it is spent.
        """
        started = time.monotonic()
        cfg = self.config
        if self._key is None:
            return self._fallback(
                f"no Gemini API key (set {GEMINI_API_KEY_ENV}, a key file or --gemini_api_key)", 0, started, request_id
            )
        client, semaphore = self._for_this_loop(self._key)
        contents = genai_types.Content(
            role="user",
            parts=[
                genai_types.Part.from_bytes(data=image, mime_type=mime_type),
                genai_types.Part.from_text(text=USER_PROMPT),
            ],
        )
        generation_config = genai_types.GenerateContentConfig(
            system_instruction=SYSTEM_INSTRUCTION,
            temperature=cfg.temperature,
            response_mime_type="application/json",
            response_schema=response_schema(),
        )
        attempts = 0
        reasons: list[str] = []

        def time_left() -> float | None:
            return None if budget_s is None else budget_s - (time.monotonic() - started)

        for model in cfg.models:
            for attempt in range(1, cfg.attempts_per_model + 1):
                left = time_left()
                if left is not None and left <= 0:
                    reasons.append("budget spent")
                    return self._fallback("; ".join(reasons), attempts, started, request_id)
                timeout = cfg.request_timeout_s if left is None else min(cfg.request_timeout_s, left)
                attempts += 1
                try:
                    async with semaphore:
                        response = await asyncio.wait_for(
                            client.aio.models.generate_content(
                                model=model, contents=contents, config=generation_config
                            ),
                            timeout=timeout,
                        )
                    assessment = parse_assessment(response.text)
                except genai_errors.APIError as exc:
                    outcome = _classify_status(exc.code)
                    reason = f"{model}: HTTP {exc.code} {exc.status or ''}: {(exc.message or '')[:200]}"
                except (TimeoutError, httpx2.TimeoutException):
                    outcome, reason = _Outcome.RETRY, f"{model}: timed out after {timeout:.3g} s"
                except httpx2.TransportError as exc:
                    outcome, reason = _Outcome.RETRY, f"{model}: {type(exc).__name__}: {exc}"
                except MalformedAnswerError as exc:
                    outcome, reason = _Outcome.NEXT_MODEL, f"{model}: malformed answer: {exc}"
                except Exception as exc:
                    # An SDK or parsing surprise: another model may still answer; the reason says what.
                    outcome, reason = _Outcome.NEXT_MODEL, f"{model}: {type(exc).__name__}: {exc}"
                else:
                    return self._success(model, assessment, attempts, started, request_id)

                reason = self._redact(reason)
                reasons.append(reason)
                logger.warning(
                    "gemini attempt failed request_id=%s model=%s attempt=%d outcome=%s reason=%s",
                    request_id,
                    model,
                    attempt,
                    outcome.value,
                    reason,
                )
                if outcome is _Outcome.GIVE_UP:
                    return self._fallback("; ".join(reasons), attempts, started, request_id)
                if outcome is _Outcome.NEXT_MODEL:
                    break
                if attempt < cfg.attempts_per_model:
                    delay = cfg.backoff_s(attempt, self._rng)
                    left = time_left()
                    if left is not None and delay >= left:
                        reasons.append("budget too short for another retry")
                        return self._fallback("; ".join(reasons), attempts, started, request_id)
                    await asyncio.sleep(delay)
        return self._fallback("; ".join(reasons) or "no model answered", attempts, started, request_id)

    def _success(
        self, model: str, assessment: _Assessment, attempts: int, started: float, request_id: str
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
        result = RealismScore(
            score=score,
            model=model,
            fallback=False,
            reason=reason,
            attempts=attempts,
            elapsed_s=time.monotonic() - started,
            raw_score=assessment.score,
            fatal_flaw=fatal,
            capped=capped,
            rubric=assessment.rubric,
            summary=self._redact(summary),
        )
        logger.info(
            "gemini scored request_id=%s model=%s score=%.2f raw=%.2f fatal=%s attempts=%d elapsed_ms=%.0f",
            request_id,
            model,
            result.score,
            assessment.score,
            fatal,
            attempts,
            result.elapsed_s * 1000,
        )
        return result

    def _fallback(self, reason: str, attempts: int, started: float, request_id: str) -> RealismScore:
        reason = self._redact(reason)
        result = RealismScore(
            score=self.config.fallback_score,
            model=None,
            fallback=True,
            reason=reason,
            attempts=attempts,
            elapsed_s=time.monotonic() - started,
        )
        logger.warning(
            "gemini fallback request_id=%s score=%.1f attempts=%d elapsed_ms=%.0f reason=%s",
            request_id,
            result.score,
            attempts,
            result.elapsed_s * 1000,
            reason,
        )
        return result

    def as_search_scorer(
        self,
        encode: Callable[[ImageT], tuple[bytes, str]],
        *,
        request_id: str = "",
        name: str = "gemini",
    ) -> Scorer[ImageT]:
        """This scorer as the EACPS search's realism `Scorer`; `encode` turns a candidate into (bytes, MIME)."""
        return Scorer(
            name=name,
            signals=(REALISM,),
            score=_SearchAdapter(self, encode, request_id),
            fallback_value=self.config.fallback_score,
        )


@dataclass(frozen=True)
class _SearchAdapter(Generic[ImageT]):
    scorer: GeminiRealismScorer
    encode: Callable[[ImageT], tuple[bytes, str]]
    request_id: str

    async def __call__(self, candidate: CandidateImage[ImageT]) -> list[SignalScore]:
        # Encoding a full-size PNG takes tens of milliseconds of CPU: off the event loop, so generation
        # and the other scorers keep moving meanwhile.
        data, mime_type = await asyncio.to_thread(self.encode, candidate.image)
        result = await self.scorer.score(
            data, mime_type, request_id=self.request_id, budget_s=candidate.time_remaining_s
        )
        return [result.to_signal_score()]
