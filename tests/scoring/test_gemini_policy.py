"""Gemini's failure policy over a whole task: the real SDK against the fake, requests counted per behaviour.

A task scores 20 candidates (8 global + 3 x 4 local); they arrive at once here, the hardest case for a
policy that must learn from the first failure instead of repeating it 20 times.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx2
import pytest

from orchestrator.scoring.gemini import (
    DEFAULT_MODELS,
    GeminiCircuit,
    GeminiConfig,
    GeminiRealismScorer,
    RealismScore,
)
from orchestrator.search.deadline import Deadline
from tests.fakes.fake_gemini import FakeGemini

KEY = "AIzaFAKE-policy-key-0123456789"
IMAGE = b"\xff\xd8\xff fake jpeg bytes"
CANDIDATES = 20


def config(base_url: str, **overrides: Any) -> GeminiConfig:
    settings: dict[str, Any] = {
        "models": ("model-a", "model-b"),
        "base_url": base_url,
        "request_timeout_s": 5.0,
        "attempts_per_model": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_concurrency": 8,
    }
    settings.update(overrides)
    return GeminiConfig(**settings)


def score_task(
    cfg: GeminiConfig,
    *,
    request_id: str = "task-1",
    deadline_s: float | None = 5.0,
    circuit: GeminiCircuit | None = None,
) -> list[RealismScore]:
    """One task's 20 candidates, scored concurrently as the search starts them, through a fresh scorer."""

    async def run() -> list[RealismScore]:
        scorer = GeminiRealismScorer(cfg, api_key=KEY, circuit=circuit)
        deadline = Deadline.after(deadline_s) if deadline_s is not None else None
        try:
            return list(
                await asyncio.gather(
                    *(
                        scorer.score(IMAGE, "image/jpeg", request_id=request_id, deadline=deadline)
                        for _ in range(CANDIDATES)
                    )
                )
            )
        finally:
            await scorer.aclose()

    return asyncio.run(run())


def test_a_quota_error_with_a_long_retry_delay_costs_one_request_per_task_and_no_other_model(
    fake: FakeGemini,
) -> None:
    fake.configure(always_fail_status=429, retry_delay_s=60.0)

    results = score_task(config(fake.base_url), deadline_s=5.0)

    # Before: 3 attempts x 2 models x 20 candidates = 120 requests, the quota error retried on model-b too.
    assert fake.statuses() == [429]
    assert fake.models_called() == ["model-a"]
    assert all(r.fallback for r in results)
    assert all("quota" in (r.reason or "") and "60 s" in (r.reason or "") for r in results)
    assert len({r.reason for r in results}) <= 2  # one reason per block (the prober's, the others'): one ledger note


@pytest.mark.parametrize("where", ["body", "header"])
def test_the_servers_retry_delay_is_honoured_within_the_deadline(fake: FakeGemini, where: str) -> None:
    fake.configure(retry_delay_s=0.4, retry_delay_in=where)
    fake.fail_next(429, count=1)

    results = score_task(config(fake.base_url), deadline_s=10.0)

    requests = fake.requests
    assert [r.status for r in requests] == [429] + [200] * CANDIDATES  # the other 19 waited, not 19 more 429s
    assert {r.model for r in requests} == {"model-a"}
    # Nobody asked again before the server said: RetryInfo's "0.4s" (or Retry-After: 0.4) was read, not the
    # configured 10-50 ms backoff.
    assert requests[1].received_at - requests[0].received_at >= 0.4
    assert all(not r.fallback and r.model == "model-a" for r in results)


def test_a_retry_delay_beyond_the_deadline_falls_back_at_once(fake: FakeGemini) -> None:
    fake.configure(always_fail_status=429, retry_delay_s=30.0)
    results = score_task(config(fake.base_url), deadline_s=3.0)
    assert all(r.fallback for r in results)
    assert max(r.elapsed_s for r in results) < 2.0  # did not sit out the 30 s, nor the 3 s deadline


def test_a_missing_model_is_asked_once_then_skipped_by_every_candidate_and_task(fake: FakeGemini) -> None:
    fake.configure(not_found_models={"model-a"})
    now = [1000.0]
    circuit = GeminiCircuit(clock=lambda: now[0])
    cfg = config(fake.base_url, model_unavailable_ttl_s=600.0)

    first = score_task(cfg, circuit=circuit)
    second = score_task(cfg, request_id="task-2", circuit=circuit)

    # Before: model-a answered 404 to each of the 20 candidates of every task.
    assert fake.models_called().count("model-a") == 1
    assert fake.models_called().count("model-b") == 2 * CANDIDATES
    assert all(not r.fallback and r.model == "model-b" for r in first + second)

    now[0] += 601.0  # remembered for a while, not forever: the model may come back
    score_task(cfg, request_id="task-3", circuit=circuit)
    assert fake.models_called().count("model-a") == 2


def test_a_bad_key_is_final_for_every_model_and_candidate_for_a_while(fake: FakeGemini) -> None:
    fake.configure(invalid_key=True)
    now = [50.0]
    circuit = GeminiCircuit(clock=lambda: now[0])
    cfg = config(fake.base_url, key_refused_ttl_s=600.0)

    first = score_task(cfg, circuit=circuit)
    second = score_task(cfg, request_id="task-2", circuit=circuit)

    # Before: 400 INVALID_ARGUMENT moved on to the next model: 2 requests x 20 candidates, every task.
    assert fake.statuses() == [400]
    assert all(r.fallback and "API key not valid" in (r.reason or "") for r in first + second)
    assert KEY not in " ".join(r.reason or "" for r in first + second)

    now[0] += 601.0
    score_task(cfg, request_id="task-3", circuit=circuit)
    assert fake.statuses() == [400, 400]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def connection_attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request the SDK's transport (httpx2) tries to send, whether or not it connects."""
    seen: list[str] = []
    original: Callable[..., Any] = httpx2.AsyncHTTPTransport.handle_async_request

    async def counting(self: httpx2.AsyncHTTPTransport, request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return await original(self, request)  # type: ignore[no-any-return]

    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", counting)
    return seen


def test_an_unreachable_endpoint_is_tried_once_and_logged_once_per_task(
    connection_attempts: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.scoring.gemini")
    now = [0.0]
    circuit = GeminiCircuit(clock=lambda: now[0])
    cfg = config(f"http://127.0.0.1:{closed_port()}/", unreachable_backoff_s=30.0, unreachable_backoff_max_s=300.0)

    first = score_task(cfg, circuit=circuit)
    second = score_task(cfg, request_id="task-2", circuit=circuit)

    # Before: 3 attempts x 2 models for each of the 20 candidates, and a 6-error warning line for each.
    assert len(connection_attempts) == 1
    assert all(r.fallback and "unreachable" in (r.reason or "") for r in first + second)
    assert len({r.reason for r in first + second}) == 1  # one ledger note, not 40
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "gemini blocked" in r.getMessage()]
    assert [w.getMessage().split("request_id=")[1].split()[0] for w in warnings] == ["task-1", "task-2"]

    now[0] += 31.0  # the back-off ends: one probe, which fails again and doubles the back-off
    score_task(cfg, request_id="task-3", circuit=circuit)
    assert len(connection_attempts) == 2
    now[0] += 31.0  # within the doubled 60 s: still no request
    score_task(cfg, request_id="task-4", circuit=circuit)
    assert len(connection_attempts) == 2


def test_gemini_3_models_are_asked_at_temperature_1_others_at_0_and_the_score_says_which(fake: FakeGemini) -> None:
    fake.configure(not_found_models={"gemini-3.5-flash"})
    cfg = config(fake.base_url, models=("gemini-3.5-flash", "gemini-2.5-flash-lite"))
    (result, *_) = score_task(cfg)
    fake.configure(not_found_models=set())
    (result3, *_) = score_task(config(fake.base_url, models=("gemini-3.8-flash",)), request_id="task-2")

    sent = {r.model: r.body["generationConfig"]["temperature"] for r in fake.requests}
    assert sent == {"gemini-3.5-flash": 1.0, "gemini-2.5-flash-lite": 0.0, "gemini-3.8-flash": 1.0}
    assert result.model == "gemini-2.5-flash-lite" and result.temperature == 0.0
    assert result3.model == "gemini-3.8-flash" and result3.temperature == 1.0
    assert result3.to_signal_score().details["temperature"] == 1.0  # what the ledger keeps


def test_temperatures_are_configurable_per_family_and_per_model() -> None:
    cfg = GeminiConfig(temperatures={"gemini-3": 1.0, "gemini-3.5-flash-lite": 0.7}, temperature=0.2)
    assert cfg.temperature_for("gemini-3.8-flash") == 1.0
    assert cfg.temperature_for("models/gemini-3.5-flash-lite") == 0.7  # the exact id beats its family
    assert cfg.temperature_for("gemini-2.5-flash-lite") == 0.2
    with pytest.raises(ValueError, match=r"temperatures\['gemini-3'\]"):
        GeminiConfig(temperatures={"gemini-3": 5.0})


def test_the_default_chain_is_current_and_retired_or_unknown_models_are_start_up_warnings() -> None:
    today = date(2026, 12, 1)
    assert GeminiConfig().check_models(today) == []
    assert all(m.startswith("gemini-3") for m in DEFAULT_MODELS)

    warnings = GeminiConfig(models=("gemini-2.5-flash", "gemini-1.5-pro", "gemni-3.5-flash")).check_models(today)
    assert len(warnings) == 3
    assert "gemini-2.5-flash was shut down on 2026-12-01" in warnings[0]
    assert "gemini-1.5-pro was shut down" in warnings[1]
    assert "gemni-3.5-flash is not a model this release knows" in warnings[2]
    assert all(w.startswith("GeminiConfig.models: ") for w in warnings)
    # gemini-2.5-flash-lite stays: a prefix of a retired name is not retired.
    assert GeminiConfig(models=("gemini-2.5-flash-lite",)).check_models(today) == []
