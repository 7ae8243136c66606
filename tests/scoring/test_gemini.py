"""The Gemini realism scorer: the real google-genai SDK against the local fake Gemini server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.scoring.gemini import (
    GEMINI_API_KEY_ENV,
    ApiKey,
    GeminiConfig,
    GeminiRealismScorer,
    RealismScore,
    resolve_api_key,
)
from orchestrator.search import (
    CandidateImage,
    GenerationMode,
    Scorer,
    SearchConfig,
    SearchRequest,
    SignalScore,
    run_search,
)
from orchestrator.search.deadline import Deadline
from orchestrator.search.signals import REALISM
from tests.fakes.eacps import FakeGenerator, FakeImage, table_scorer
from tests.fakes.fake_gemini import FakeGemini

KEY = "AIzaFAKE-test-key-0123456789"
IMAGE = b"\x89PNG\r\n\x1a\n fake image bytes"


def config(fake: FakeGemini, **overrides: object) -> GeminiConfig:
    settings: dict[str, object] = {
        "models": ("model-a", "model-b"),
        "base_url": fake.base_url,
        "request_timeout_s": 5.0,
        "attempts_per_model": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    settings.update(overrides)
    return GeminiConfig(**settings)  # type: ignore[arg-type]


def score_once(cfg: GeminiConfig, api_key: str | None = KEY, **kwargs: object) -> RealismScore:
    async def run() -> RealismScore:
        scorer = GeminiRealismScorer(cfg, api_key=api_key)
        try:
            return await scorer.score(IMAGE, "image/png", request_id="req-7", **kwargs)  # type: ignore[arg-type]
        finally:
            await scorer.aclose()

    return asyncio.run(run())


def test_a_normal_answer_is_parsed_and_the_request_has_the_real_wire_shape(fake: FakeGemini) -> None:
    result = score_once(config(fake))

    assert not result.fallback and result.score == 7.5 and result.model == "model-a"
    assert result.attempts == 1 and result.source == "gemini:model-a"
    assert result.rubric == {"cgi_look": 1, "painted_look": 0, "plastic_skin": 2, "artifacts": 1}
    (request,) = fake.requests
    assert request.api_version == "v1" and request.model == "model-a"
    assert request.headers["x-goog-api-key"] == KEY
    generation = request.body["generationConfig"]
    assert generation["responseMimeType"] == "application/json" and generation["temperature"] == 0.0
    schema = generation["responseSchema"]
    assert schema["type"] == "OBJECT" and "score" in schema["required"] and "fatal_flaw" in schema["properties"]
    assert "fatal flaw" in request.body["systemInstruction"]["parts"][0]["text"].lower()
    parts = request.body["contents"][0]["parts"]
    assert base64.b64decode(parts[0]["inlineData"]["data"]) == IMAGE


def test_the_api_version_in_the_path_is_configurable(fake: FakeGemini) -> None:
    score_once(config(fake, api_version="v1beta"))
    assert fake.requests[0].api_version == "v1beta"


def test_a_fatal_flaw_caps_the_score(fake: FakeGemini) -> None:
    fake.configure(score=8.0, fatal_flaw=True)
    result = score_once(config(fake))
    assert result.score == 3.0 and result.raw_score == 8.0 and result.capped and result.fatal_flaw
    assert result.reason is not None and "duplicated mouth" in result.reason
    assert not result.fallback


def test_not_found_moves_to_the_next_model(fake: FakeGemini) -> None:
    fake.configure(not_found_models={"model-a"})
    result = score_once(config(fake))
    assert fake.models_called() == ["model-a", "model-b"]
    assert not result.fallback and result.model == "model-b" and result.attempts == 2


def test_rate_limited_then_a_retry_succeeds_on_the_same_model(fake: FakeGemini) -> None:
    fake.fail_next(429, count=2)
    result = score_once(config(fake))
    assert [r.status for r in fake.requests] == [429, 429, 200]
    assert not result.fallback and result.model == "model-a" and result.attempts == 3


def test_server_errors_exhaust_the_retries_and_fall_back_flagged(fake: FakeGemini) -> None:
    fake.configure(always_fail_status=500)
    result = score_once(config(fake))
    assert result.fallback and result.score == 5.0 and result.model is None
    assert result.attempts == 6 == len(fake.requests)  # 3 attempts on each of 2 models
    assert fake.models_called() == ["model-a"] * 3 + ["model-b"] * 3
    assert result.reason is not None and "HTTP 500" in result.reason


def test_a_slow_model_times_out_and_falls_back(fake: FakeGemini) -> None:
    fake.configure(delay_s=1.0)
    started = time.monotonic()
    result = score_once(config(fake, request_timeout_s=0.2, attempts_per_model=1))
    assert time.monotonic() - started < 0.9  # gave up after two 0.2 s timeouts, not after the 1 s answers
    assert result.fallback and result.attempts == 2
    assert result.reason is not None and result.reason.count("timed out") == 2


def test_a_budget_shorter_than_the_answer_time_falls_back_within_the_budget(fake: FakeGemini) -> None:
    fake.configure(delay_s=1.0)
    started = time.monotonic()
    result = score_once(config(fake), deadline=Deadline.after(0.3))
    assert time.monotonic() - started < 0.8
    assert result.fallback and "budget" in (result.reason or "")


def test_malformed_json_falls_back_after_trying_each_model_once(fake: FakeGemini) -> None:
    fake.configure(malformed=True)
    result = score_once(config(fake))
    assert result.fallback and result.attempts == 2
    assert result.reason is not None and "malformed answer: not JSON" in result.reason


def test_a_refused_key_gives_up_without_trying_other_models(fake: FakeGemini) -> None:
    fake.configure(always_fail_status=403)
    result = score_once(config(fake))
    assert result.fallback and result.attempts == 1 and fake.models_called() == ["model-a"]


def test_no_key_falls_back_without_a_request(fake: FakeGemini) -> None:
    result = score_once(config(fake), api_key=None)
    assert result.fallback and result.attempts == 0 and fake.requests == []
    assert GEMINI_API_KEY_ENV in (result.reason or "")


def test_the_key_never_appears_in_logs_reprs_or_results(fake: FakeGemini, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    results = [score_once(config(fake))]
    fake.configure(not_found_models={"model-a"})
    fake.fail_next(500, count=1, model="model-b")
    results.append(score_once(config(fake)))
    fake.configure(not_found_models=set(), always_fail_status=400, echo_key_in_errors=True)
    echoed = score_once(config(fake))
    results.append(echoed)
    fake.configure(always_fail_status=None, malformed=True)
    results.append(score_once(config(fake)))
    scorer = GeminiRealismScorer(config(fake), api_key=KEY)

    assert "request carried key <redacted>" in (echoed.reason or "")  # the server echoed it; we scrubbed it
    assert all(r.headers["x-goog-api-key"] == KEY for r in fake.requests)  # the key was really in use
    assert "gemini attempt failed" in caplog.text and "gemini fallback" in caplog.text
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
    assert KEY not in repr(scorer) and "<redacted>" in repr(scorer)
    assert KEY not in repr(ApiKey(KEY)) and KEY not in f"{ApiKey(KEY)}"
    for result in results:
        assert KEY not in repr(result)
        assert KEY not in json.dumps(result.to_dict())
        assert KEY not in repr(result.to_signal_score())


def test_concurrency_is_bounded(fake: FakeGemini) -> None:
    fake.configure(delay_s=0.2)

    async def run() -> list[RealismScore]:
        scorer = GeminiRealismScorer(config(fake, max_concurrency=3), api_key=KEY)
        try:
            return await asyncio.gather(*(scorer.score(IMAGE) for _ in range(10)))
        finally:
            await scorer.aclose()

    results = asyncio.run(run())
    assert all(not r.fallback for r in results)
    assert fake.max_in_flight == 3


def test_key_resolution_order_explicit_then_file_then_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "gemini.key"
    key_file.write_text("from-file\n")
    env = {GEMINI_API_KEY_ENV: "from-env"}
    assert resolve_api_key("explicit", key_file, env).reveal() == "explicit"  # type: ignore[union-attr]
    assert resolve_api_key(None, key_file, env).reveal() == "from-file"  # type: ignore[union-attr]
    assert resolve_api_key(None, None, env).reveal() == "from-env"  # type: ignore[union-attr]
    assert resolve_api_key(None, None, {}) is None
    (tmp_path / "empty.key").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        resolve_api_key(None, tmp_path / "empty.key", env)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        GeminiConfig(max_concurrency=0)
    with pytest.raises(ValueError, match="models"):
        GeminiConfig(models=())


def test_the_scorer_plugs_into_the_search_as_its_realism_signal(fake: FakeGemini) -> None:
    async def run() -> None:
        gemini = GeminiRealismScorer(config(fake), api_key=KEY)

        def encode(image: FakeImage) -> tuple[bytes, str]:
            return image.candidate_id.encode(), "image/png"

        async def score_realism(candidate: CandidateImage[FakeImage]) -> list[SignalScore]:
            result = await gemini.score(*encode(candidate.image), request_id=candidate.request_id)
            return [result.to_signal_score()]

        realism: Scorer[FakeImage] = Scorer("gemini", (REALISM,), score_realism)
        others = table_scorer({}, name="moondream", signals=("identity", "consistency"))
        request = SearchRequest(
            request_seed=3,
            raw_swap=FakeImage("raw", mode=GenerationMode.RAW_SWAP, seed=0),
            config=SearchConfig(k_global=3, m_global=1, k_local=2),
        )
        result = await run_search(request, generate=FakeGenerator(), scorers=[realism, others])
        await gemini.aclose()
        for candidate in result.ledger.candidates:
            (score,) = [s for s in candidate.scores if s.signal == REALISM]
            assert score.source == "gemini:model-a" and score.value == 7.5 and not score.fallback
            assert score.details["attempts"] == 1
        assert len(fake.requests) == 5

    asyncio.run(run())


def test_the_fake_runs_as_a_process_for_end_to_end_tests() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_gemini", "--port", "0", "--score", "6.0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the socket is bound
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.split()[-1] + "/"
        result = score_once(GeminiConfig(models=("model-a",), base_url=base_url))
        assert result.score == 6.0 and not result.fallback
    finally:
        process.terminate()
        process.wait(timeout=10)
