"""A scorer still busy when the answer is due falls back, flagged, and the search answers in time."""

from __future__ import annotations

import asyncio
import time

from orchestrator.search import (
    CandidateImage,
    Deadline,
    GenerationMode,
    Scorer,
    SearchConfig,
    SearchRequest,
    SignalScore,
    run_search,
)
from orchestrator.search.signals import REALISM
from tests.fakes.eacps import FakeGenerator, FakeImage, table_scorer


def test_a_scorer_that_hangs_past_the_deadline_falls_back_flagged() -> None:
    async def hang(candidate: CandidateImage[FakeImage]) -> list[SignalScore]:
        await asyncio.Event().wait()  # never answers, like a wedged remote model
        raise AssertionError("unreachable")

    slow = Scorer(name="gemini", signals=(REALISM,), score=hang)

    async def search() -> float:
        started = time.monotonic()
        result = await run_search(
            SearchRequest(
                request_seed=1,
                raw_swap=FakeImage("g0", GenerationMode.RAW_SWAP, 0),
                config=SearchConfig(k_global=3, m_global=1, k_local=1),
                deadline=Deadline.after(0.3),
            ),
            generate=FakeGenerator(cost_s=0.0),
            scorers=[table_scorer({}, name="moondream", signals=("identity", "consistency")), slow],
        )
        elapsed = time.monotonic() - started
        realism = [s for c in result.ledger.candidates for s in c.scores if s.signal == REALISM]
        assert realism and all(s.fallback and "did not answer before the deadline" in (s.reason or "") for s in realism)
        assert result.best_id
        return elapsed

    assert asyncio.run(search()) < 2.0
