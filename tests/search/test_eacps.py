"""The EACPS search with fake generate and score functions: plan, selection, ledger, determinism, budget."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from orchestrator.search import (
    CandidateStatus,
    Deadline,
    EventKind,
    GenerationMode,
    LocalMode,
    ProgressEvent,
    Scorer,
    SearchConfig,
    SearchConfigError,
    SearchFailedError,
    SearchRequest,
    SearchResult,
    Stage,
    derive_seed,
    run_search,
    select_parents,
)
from orchestrator.search.signals import CONSISTENCY, CONSISTENCY_LOCAL, IDENTITY, IDENTITY_LOCAL, REALISM
from tests.fakes.eacps import FakeClock, FakeGenerator, FakeImage, failing_scorer, table_scorer

RAW = FakeImage(candidate_id="raw", mode=GenerationMode.RAW_SWAP, seed=0)


def search(
    *,
    generator: FakeGenerator | None = None,
    scorers: list[Scorer[FakeImage]] | None = None,
    clock: FakeClock | None = None,
    config: SearchConfig | None = None,
    deadline: float | None = None,
    raw_swap: FakeImage | None = RAW,
    request_seed: int = 42,
    events: list[ProgressEvent] | None = None,
) -> SearchResult[FakeImage]:
    clock = clock or FakeClock()
    generator = generator or FakeGenerator(clock=clock)
    request = SearchRequest(
        request_seed=request_seed,
        raw_swap=raw_swap,
        raw_swap_elapsed_s=0.25,
        raw_swap_info={"swapper": "inswapper_128"},
        config=config or SearchConfig(),
        deadline=Deadline.never(clock) if deadline is None else Deadline(deadline, clock),
        request_id="req-1",
    )
    return asyncio.run(
        run_search(
            request,
            generate=generator,
            scorers=scorers if scorers is not None else [table_scorer({})],
            clock=clock,
            on_event=events.append if events is not None else None,
        )
    )


def realism_table(values: dict[str, float], default: float = 1.0) -> dict[str, dict[str, float]]:
    """Global candidates differ only in realism (`default` unless given); identity and consistency are 5."""
    realism = {f"g{i}": default for i in range(8)} | values
    return {cid: {REALISM: v, IDENTITY: 5.0, CONSISTENCY: 5.0} for cid, v in realism.items()}


def without_timings(ledger: dict[str, Any]) -> dict[str, Any]:
    ledger = json.loads(json.dumps(ledger))
    ledger.pop("timings")
    for candidate in ledger["candidates"]:
        candidate.pop("timings")
        for score in candidate["scores"]:
            score.pop("elapsed_s")
    return ledger


# The plan.


def test_full_search_generates_and_scores_every_planned_candidate_in_two_stage_calls() -> None:
    generator = FakeGenerator()
    result = search(generator=generator)

    ledger = result.ledger
    # k_global 8 (the raw swap + 7 refinements) + m_global 3 x k_local 4 = 20. The product brief says
    # "21" for these defaults, but its own breakdown (8 + 12) adds up to 20; the breakdown is kept.
    assert len(ledger.candidates) == 20 == SearchConfig().total_candidates
    assert all(c.status is CandidateStatus.SCORED for c in ledger.candidates)
    assert [c.candidate_id for c in ledger.candidates[:8]] == [f"g{i}" for i in range(8)]
    # One generate call per stage: the raw swap is not generated, 7 global refinements, 3 x 4 children.
    assert [(call.stage, len(call.requests)) for call in generator.calls] == [(Stage.GLOBAL, 7), (Stage.LOCAL, 12)]
    assert ledger.complete and ledger.skipped == () and ledger.failures == ()
    assert set(result.images) == {c.candidate_id for c in ledger.candidates}


def test_raw_swap_is_candidate_g0_with_seed_0_and_global_seeds_are_distinct_and_derived() -> None:
    result = search(request_seed=7)
    g0 = result.ledger.candidate("g0")
    assert g0.settings.mode is GenerationMode.RAW_SWAP and g0.seed == 0
    assert result.images["g0"] is RAW
    assert g0.generator_info == {"swapper": "inswapper_128"}
    seeds = [c.seed for c in result.ledger.candidates]
    assert len(set(seeds)) == 20
    assert result.ledger.candidate("g3").seed == derive_seed(7, "g3")
    assert all(c.settings.mode is GenerationMode.REFINE for c in result.ledger.candidates[1:8])


def test_without_a_raw_swap_all_global_candidates_are_refinements() -> None:
    generator = FakeGenerator()
    result = search(generator=generator, raw_swap=None)
    assert len(generator.calls[0].requests) == 8
    assert all(c.seed != 0 for c in result.ledger.candidates)
    assert len(result.ledger.candidates) == 20


# Selection and the potential.


def test_the_three_best_global_candidates_become_parents_of_four_children_each() -> None:
    table = realism_table({"g0": 1.0, "g1": 9.0, "g2": 2.0, "g3": 8.0, "g4": 3.0, "g5": 7.5, "g6": 4.0, "g7": 7.0})
    result = search(scorers=[table_scorer(table)])

    globals_ = [c for c in result.ledger.candidates if c.stage is Stage.GLOBAL]
    assert [p.candidate_id for p in select_parents(globals_, 3)] == ["g1", "g3", "g5"]
    assert {c.candidate_id for c in globals_ if c.selected_as_parent} == {"g1", "g3", "g5"}
    children = [c for c in result.ledger.candidates if c.stage is Stage.LOCAL]
    assert [c.candidate_id for c in children] == [f"{p}.{j}" for p in ("g1", "g3", "g5") for j in range(4)]
    assert all(c.parent_id == c.candidate_id.split(".")[0] for c in children)


def test_potential_is_the_weighted_sum_and_the_best_of_all_wins() -> None:
    table = realism_table({f"g{i}": 1.0 + i for i in range(8)})
    table["g6.2"] = {REALISM: 9.9, IDENTITY: 9.0, CONSISTENCY: 8.0}
    result = search(scorers=[table_scorer(table)])

    child = result.ledger.candidate("g6.2")
    assert child.potential == pytest.approx(1.0 * 8.0 + 4.0 * 9.9 + 1.5 * 9.0)
    assert result.best_id == "g6.2"
    assert result.best_image.candidate_id == "g6.2"
    assert max(c.potential or 0.0 for c in result.ledger.candidates) == child.potential


def test_ties_go_to_the_earlier_candidate() -> None:
    flat = {cid: {REALISM: 5.0, IDENTITY: 5.0, CONSISTENCY: 5.0} for cid in [f"g{i}" for i in range(8)]}
    result = search(
        scorers=[table_scorer(flat, signals=(REALISM, IDENTITY, CONSISTENCY))], config=SearchConfig(k_local=0)
    )
    assert [c.candidate_id for c in result.ledger.candidates if c.selected_as_parent] == ["g0", "g1", "g2"]
    assert result.best_id == "g0"


def test_custom_weights_change_the_winner() -> None:
    table = {
        "g1": {REALISM: 9.0, IDENTITY: 1.0, CONSISTENCY: 5.0},
        "g2": {REALISM: 1.0, IDENTITY: 9.0, CONSISTENCY: 5.0},
    }
    raw_low = {"g0": {REALISM: 0.0, IDENTITY: 0.0, CONSISTENCY: 0.0}}
    scorers = [table_scorer({**table, **raw_low})]
    cfg = SearchConfig(k_global=3, m_global=1, k_local=0)
    assert search(scorers=scorers, config=cfg).best_id == "g1"
    identity_first = dataclasses.replace(cfg, weights={REALISM: 1.0, IDENTITY: 4.0, CONSISTENCY: 1.0})
    assert search(scorers=scorers, config=identity_first).best_id == "g2"


# Local stage modes.


def test_children_of_a_diffusion_parent_sit_in_its_noise_neighbourhood() -> None:
    table = realism_table({"g0": 0.0, "g4": 9.0})
    generator = FakeGenerator()
    result = search(generator=generator, scorers=[table_scorer(table)], config=SearchConfig(m_global=1))
    local = generator.calls[1].requests
    assert [r.candidate_id for r in local] == ["g4.0", "g4.1", "g4.2", "g4.3"]
    parent_seed = result.ledger.candidate("g4").seed
    for r in local:
        assert r.mode is GenerationMode.NOISE_NEIGHBOURHOOD
        assert r.parent_seed == parent_seed and r.noise_cosine == 0.95 and r.strength is None
        assert r.seed not in (parent_seed, 0)
    assert len({r.seed for r in local}) == 4


def test_a_raw_swap_parent_is_always_refined_by_renoising() -> None:
    table = realism_table({"g0": 10.0})
    generator = FakeGenerator()
    result = search(generator=generator, scorers=[table_scorer(table)], config=SearchConfig(m_global=1))
    local = generator.calls[1].requests
    assert all(r.mode is GenerationMode.RENOISE and r.parent_image is RAW for r in local)
    assert all(r.strength == 0.45 and r.parent_seed == 0 and r.noise_cosine is None for r in local)
    child = result.ledger.candidate("g0.0")
    assert child.settings.mode is GenerationMode.RENOISE and child.settings.strength == 0.45
    assert result.images["g0.0"].parent is RAW


def test_renoise_mode_renoises_every_parents_image() -> None:
    table = realism_table({"g0": 0.0, "g2": 9.0})
    generator = FakeGenerator()
    search(
        generator=generator,
        scorers=[table_scorer(table)],
        config=SearchConfig(m_global=1, local_mode=LocalMode.RENOISE, renoise_strength=0.3),
    )
    local = generator.calls[1].requests
    assert all(r.mode is GenerationMode.RENOISE and r.strength == 0.3 for r in local)
    assert all(r.parent_image is not None and r.parent_image.candidate_id == "g2" for r in local)


# The ledger.


def test_ledger_records_every_candidate_with_settings_scores_potential_and_timings() -> None:
    clock = FakeClock()
    result = search(clock=clock, generator=FakeGenerator(clock=clock, cost_s=2.0))
    data = result.ledger.to_dict()
    text = json.dumps(data)  # JSON-serialisable, with no image in it
    assert "FakeImage" not in text

    assert data["request_id"] == "req-1" and data["request_seed"] == 42 and data["best_id"] == result.best_id
    assert data["config"]["k_global"] == 8 and data["config"]["weights"][REALISM] == 4.0
    by_id = {c["candidate_id"]: c for c in data["candidates"]}
    assert len(by_id) == 20
    child = by_id["g1.0"] if "g1.0" in by_id else next(c for c in data["candidates"] if c["stage"] == "local")
    assert child["parent_id"] is not None and child["settings"]["mode"] in ("noise_neighbourhood", "renoise")
    assert child["seed"] == child["settings"]["seed"]
    for candidate in data["candidates"]:
        assert {s["signal"] for s in candidate["scores"]} == {REALISM, IDENTITY, CONSISTENCY}
        assert all(s["source"] == "fake-model" and s["fallback"] is False for s in candidate["scores"])
        assert [t["signal"] for t in candidate["potential_terms"]] == [CONSISTENCY, REALISM, IDENTITY]
        assert candidate["potential"] == pytest.approx(
            sum(t["weight"] * t["value"] for t in candidate["potential_terms"])
        )
        assert candidate["timings"]["generated_at_s"] is not None and candidate["timings"]["scoring_s"] >= 0
    assert by_id["g1"]["timings"]["generation_s"] == 2.0
    assert by_id["g1"]["generator_info"] == {"model": "fake-qwen-edit", "stand_in": True}
    assert data["timings"]["global_s"] == pytest.approx(14.0) and data["timings"]["local_s"] == pytest.approx(24.0)
    assert data["timings"]["total_s"] == pytest.approx(38.0)


def test_progress_events_cover_stages_every_candidate_and_done() -> None:
    events: list[ProgressEvent] = []
    result = search(events=events)
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.STAGE_STARTED and events[0].stage is Stage.GLOBAL
    assert kinds[-1] is EventKind.DONE and events[-1].candidate_id == result.best_id
    assert kinds.count(EventKind.STAGE_STARTED) == 2
    assert kinds.count(EventKind.CANDIDATE_GENERATED) == 20
    assert kinds.count(EventKind.CANDIDATE_SCORED) == 20
    assert events[-1].planned == 20 and events[-1].generated == 20 and events[-1].scored == 20
    local_start = next(i for i, e in enumerate(events) if e.kind is EventKind.STAGE_STARTED and e.stage is Stage.LOCAL)
    assert all(e.stage is Stage.GLOBAL for e in events[1:local_start])


def test_a_broken_progress_listener_does_not_break_the_search() -> None:
    def listener(event: ProgressEvent) -> None:
        raise RuntimeError("client went away")

    request: SearchRequest[FakeImage] = SearchRequest(request_seed=1, raw_swap=RAW)
    result = asyncio.run(run_search(request, generate=FakeGenerator(), scorers=[table_scorer({})], on_event=listener))
    assert len(result.ledger.candidates) == 20


# Determinism and concurrency.


def test_same_request_and_seeds_give_the_same_result_whatever_order_scores_arrive_in() -> None:
    order_a = table_scorer({}, yields_before_answer=lambda cid: len(cid) + int(cid[1]))
    order_b = table_scorer({}, yields_before_answer=lambda cid: 20 - len(cid) - int(cid[1]))
    first = search(scorers=[order_a])
    second = search(scorers=[order_b])
    assert without_timings(first.ledger.to_dict()) == without_timings(second.ledger.to_dict())
    assert first.best_id == second.best_id

    other_seed = search(scorers=[order_a], request_seed=43)
    assert [c.seed for c in other_seed.ledger.candidates] != [c.seed for c in first.ledger.candidates]


def test_scoring_overlaps_generation() -> None:
    generation_moved_on = asyncio.Event()

    async def note_progress(n: int) -> None:
        if n == 2:
            generation_moved_on.set()

    base = table_scorer({})

    async def score(candidate: Any) -> Any:
        # Scoring g1 cannot finish until the generator is working on g3, two candidates later: the
        # search completes only if scoring runs concurrently with generation.
        if candidate.candidate_id == "g1":
            await generation_moved_on.wait()
        return await base.score(candidate)

    scorer = Scorer(name="fake-model", signals=base.signals, score=score)
    generator = FakeGenerator(before_yield=note_progress)

    async def bounded() -> SearchResult[FakeImage]:
        request: SearchRequest[FakeImage] = SearchRequest(request_seed=1, raw_swap=RAW)
        return await asyncio.wait_for(run_search(request, generate=generator, scorers=[scorer]), timeout=5)

    result = asyncio.run(bounded())
    assert len(result.ledger.candidates) == 20
    g1 = result.ledger.candidate("g1")
    assert g1.status is CandidateStatus.SCORED


def test_the_sequential_baseline_asks_one_candidate_at_a_time_and_scores_it_first() -> None:
    """The seed's schedule, kept for benchmarks: each candidate generated alone, then scored (scorers one
    after the other), before the next is asked for; same candidates, same seeds, same winner."""
    events: list[str] = []
    base = table_scorer({})

    def tracking(name: str) -> Scorer[FakeImage]:
        async def score(candidate: Any) -> Any:
            events.append(f"{name}-start:{candidate.candidate_id}")
            await asyncio.sleep(0)
            events.append(f"{name}-end:{candidate.candidate_id}")
            return [s for s in await base.score(candidate) if s.signal in signals[name]]

        return Scorer(name=name, signals=signals[name], score=score)

    signals = {"a": (REALISM,), "b": (IDENTITY, CONSISTENCY)}

    class Recording(FakeGenerator):
        async def __call__(self, stage: Any) -> Any:
            events.append("generate:" + ",".join(r.candidate_id for r in stage.requests))
            async for image in super().__call__(stage):
                yield image

    generator = Recording()
    config = SearchConfig(sequential=True)
    result = search(generator=generator, scorers=[tracking("a"), tracking("b")], config=config)
    overlapped = search(scorers=[tracking("a"), tracking("b")])

    assert all(len(call.requests) == 1 for call in generator.calls) and len(generator.calls) == 19
    # Each candidate: generated, then scorer a from start to end, then scorer b, then the next candidate.
    g2 = events.index("generate:g2")
    assert events[g2 + 1 : g2 + 5] == ["a-start:g2", "a-end:g2", "b-start:g2", "b-end:g2"]
    assert events[g2 + 5] == "generate:g3"
    assert result.best_id == overlapped.best_id
    assert [c.seed for c in result.ledger.candidates] == [c.seed for c in overlapped.ledger.candidates]


# The deadline.


def test_local_stage_is_skipped_when_the_remaining_budget_cannot_fit_it() -> None:
    clock = FakeClock(start=0.0)
    generator = FakeGenerator(clock=clock, cost_s=1.0)
    events: list[ProgressEvent] = []
    # The global stage takes 7 s (7 refinements at 1 s); the local one would take 3 x 4 x 1 s = 12 s.
    result = search(clock=clock, generator=generator, deadline=10.0, events=events)

    assert len(generator.calls) == 1
    assert len(result.ledger.candidates) == 8
    (skipped,) = result.ledger.skipped
    assert skipped.stage is Stage.LOCAL and skipped.candidates_not_generated == 12 and len(skipped.parent_ids) == 3
    assert "deadline" in skipped.reason and "3.000 s left" in skipped.reason
    assert not result.ledger.complete and result.ledger.degraded
    assert result.ledger.timings.local_estimate_s == pytest.approx(12.0)
    assert result.best_id in {c.candidate_id for c in result.ledger.candidates}
    assert EventKind.STAGE_SKIPPED in [e.kind for e in events]
    assert result.ledger.to_dict()["skipped"][0]["stage"] == "local"


def test_when_the_budget_fits_some_parents_the_best_ones_keep_their_children() -> None:
    clock = FakeClock(start=0.0)
    table = realism_table({"g0": 0.0, "g2": 9.0, "g5": 8.0, "g6": 7.0})
    generator = FakeGenerator(clock=clock, cost_s=1.0)
    # 7 s global, 4 s per parent: 9 s left fits two parents' children, not three.
    result = search(clock=clock, generator=generator, scorers=[table_scorer(table)], deadline=16.0)

    assert [r.parent_id for r in generator.calls[1].requests] == ["g2"] * 4 + ["g5"] * 4
    (skipped,) = result.ledger.skipped
    assert skipped.parent_ids == ("g6",) and skipped.candidates_not_generated == 4
    assert len(result.ledger.candidates) == 16


def test_a_generous_deadline_skips_nothing() -> None:
    clock = FakeClock(start=0.0)
    result = search(clock=clock, generator=FakeGenerator(clock=clock, cost_s=1.0), deadline=19.5)
    assert result.ledger.complete and len(result.ledger.candidates) == 20
    assert result.ledger.timings.local_estimate_s == pytest.approx(12.0)


def test_generators_and_scorers_see_the_remaining_time_for_downstream_timeouts() -> None:
    clock = FakeClock(start=0.0)
    generator = FakeGenerator(clock=clock, cost_s=1.0)
    seen: dict[str, float | None] = {}
    base = table_scorer({})

    async def score(candidate: Any) -> Any:
        seen[candidate.candidate_id] = candidate.deadline.at
        return await base.score(candidate)

    search(clock=clock, generator=generator, deadline=100.0, scorers=[Scorer("fake", base.signals, score)])
    assert generator.remaining_at_call == [pytest.approx(100.0), pytest.approx(93.0)]
    # Scorers get the search's own deadline (not a copy of the time left), to cut their calls to it.
    assert set(seen.values()) == {100.0} and len(seen) == 20


def test_a_deadline_already_past_returns_the_raw_swap_unscored_and_flagged() -> None:
    clock = FakeClock(start=50.0)
    generator = FakeGenerator(clock=clock)
    result = search(clock=clock, generator=generator, deadline=49.0)
    assert generator.calls == []
    assert result.best_id == "g0" and result.best_image is RAW
    assert result.ledger.candidate("g0").status is CandidateStatus.NOT_SCORED
    assert {c.status for c in result.ledger.candidates[1:]} == {CandidateStatus.SKIPPED}
    assert [s.stage for s in result.ledger.skipped] == [Stage.GLOBAL, Stage.LOCAL]


# Failures.


def test_a_failing_scorer_falls_back_flagged_and_local_metrics_stand_in() -> None:
    moondream = failing_scorer("moondream", (IDENTITY, CONSISTENCY), ConnectionError("moondream server down"))
    gemini = table_scorer({}, name="gemini:fake", signals=(REALISM,))
    local = table_scorer(
        {"g0": {IDENTITY_LOCAL: 9.0, CONSISTENCY_LOCAL: 8.0}}, name="local", signals=(IDENTITY_LOCAL, CONSISTENCY_LOCAL)
    )
    result = search(scorers=[gemini, moondream, local])

    g0 = result.ledger.candidate("g0")
    fallbacks = [s for s in g0.scores if s.fallback]
    assert {s.signal for s in fallbacks} == {IDENTITY, CONSISTENCY}
    assert all(s.value == 5.0 and s.scorer == "moondream" for s in fallbacks)
    assert all(s.reason is not None and "moondream server down" in s.reason for s in fallbacks)
    terms = {t.signal: t for t in g0.potential_terms}
    assert terms[IDENTITY].stood_in and terms[IDENTITY].source_signal == IDENTITY_LOCAL and terms[IDENTITY].value == 9.0
    assert terms[CONSISTENCY].stood_in and terms[CONSISTENCY].value == 8.0
    assert "consistency_local stood in" in (terms[CONSISTENCY].reason or "")
    assert not terms[REALISM].stood_in and not terms[REALISM].fallback
    assert g0.potential == pytest.approx(1.0 * 8.0 + 4.0 * terms[REALISM].value + 1.5 * 9.0)
    assert result.ledger.degraded and result.ledger.complete
    assert len(result.ledger.candidates) == 20


def test_without_a_stand_in_the_failed_signal_uses_the_scorers_fallback_value() -> None:
    gemini = failing_scorer("gemini", (REALISM,), TimeoutError("gemini timed out"))
    moondream = table_scorer({}, name="moondream", signals=(IDENTITY, CONSISTENCY))
    result = search(scorers=[gemini, moondream])
    for candidate in result.ledger.candidates:
        (term,) = [t for t in candidate.potential_terms if t.signal == REALISM]
        assert term.fallback and term.value == 5.0 and "gemini timed out" in (term.reason or "")
    # Realism is the same constant for everyone, so identity and consistency alone decide.
    best = result.ledger.candidate(result.best_id)
    assert best.potential == max(c.potential or 0.0 for c in result.ledger.candidates)


def test_a_scorer_that_leaves_out_a_promised_signal_falls_back_for_it() -> None:
    promises_more = table_scorer({}, signals=(REALISM,))
    promises_more = Scorer(name="partial", signals=(REALISM, IDENTITY), score=promises_more.score)
    result = search(scorers=[promises_more, table_scorer({}, name="c", signals=(CONSISTENCY,))])
    g1 = result.ledger.candidate("g1")
    (identity,) = [s for s in g1.scores if s.signal == IDENTITY]
    assert identity.fallback and identity.reason == "partial returned no identity score"


def test_generator_down_returns_the_raw_swap_flagged() -> None:
    generator = FakeGenerator(fail_in_stage=Stage.GLOBAL, fail_after=0)
    result = search(generator=generator)

    assert result.best_id == "g0" and result.best_image is RAW
    assert len(generator.calls) == 1
    (failure,) = result.ledger.failures
    assert failure.stage is Stage.GLOBAL and "qwen-edit server unavailable" in failure.reason
    failed = [c for c in result.ledger.candidates if c.status is CandidateStatus.GENERATION_FAILED]
    assert [c.candidate_id for c in failed] == [f"g{i}" for i in range(1, 8)]
    assert all(c.failure_reason == failure.reason for c in failed)
    (skipped,) = result.ledger.skipped
    assert skipped.stage is Stage.LOCAL and "global generation failed" in skipped.reason
    assert not result.ledger.complete


def test_a_generator_failing_midway_keeps_what_it_made() -> None:
    generator = FakeGenerator(fail_in_stage=Stage.LOCAL, fail_after=5)
    result = search(generator=generator)
    local = [c for c in result.ledger.candidates if c.stage is Stage.LOCAL]
    assert [c.status for c in local].count(CandidateStatus.SCORED) == 5
    assert [c.status for c in local].count(CandidateStatus.GENERATION_FAILED) == 7
    assert result.ledger.failures[0].stage is Stage.LOCAL


def test_no_raw_swap_and_no_generator_is_a_search_failure() -> None:
    with pytest.raises(SearchFailedError, match="qwen-edit server unavailable"):
        search(generator=FakeGenerator(fail_in_stage=Stage.GLOBAL), raw_swap=None)


# Configuration.


def test_configuration_errors_name_the_field() -> None:
    with pytest.raises(SearchConfigError, match="m_global"):
        SearchConfig(k_global=2, m_global=3)
    with pytest.raises(SearchConfigError, match=r"weights\[realism\]"):
        SearchConfig(weights={REALISM: -1.0})
    with pytest.raises(SearchConfigError, match="local_mode"):
        SearchConfig(local_mode="nearby")  # type: ignore[arg-type]
    assert SearchConfig(local_mode="renoise").local_mode is LocalMode.RENOISE  # type: ignore[arg-type]
    assert SearchConfig(k_global=4, m_global=2, k_local=3).total_candidates == 10
