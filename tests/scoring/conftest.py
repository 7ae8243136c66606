"""Fixtures of the Gemini scorer's tests: the local fake Gemini server, and a clean process state per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.scoring.gemini import GEMINI_API_KEY_ENV, reset_circuits
from tests.fakes.fake_gemini import FakeGemini


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # No key from the environment, and what an endpoint taught the process (missing models, blocks) must not
    # leak from one test to the next.
    monkeypatch.delenv(GEMINI_API_KEY_ENV, raising=False)
    reset_circuits()
    yield
    reset_circuits()
