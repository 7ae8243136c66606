"""EACPS: explore globally, commit to the best few, refine locally around them (docs/architecture.md, "The search").

A pure algorithm over injected functions: `generate` makes a stage's candidates, `scorers` score each
candidate as soon as it arrives (so scoring overlaps generation), a `clock` measures time and decides
whether the local stage still fits the deadline, and `on_event` hears the progress.

    global:  the raw swap (seed 0, no diffusion) + refinements g1..g{k_global-1} with derived seeds
    select:  the m_global best by potential (ties: the earlier candidate)
    local:   k_local children "{parent}.{j}" near each parent (noise neighbourhood, or re-noising;
             a raw-swap parent is always re-noised, it has no initial latents to stay near)
    answer:  the best of all scored candidates, and the ledger of everything tried

Deadline: before the local stage the search estimates its cost from the global stage's measured time
per generated candidate (times `local_cost_factor`). If the remaining time fits the children of only
some parents, the best parents keep theirs; the rest is recorded as skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from orchestrator.search.config import LocalMode, SearchConfig
from orchestrator.search.contracts import (
    CandidateImage,
    Clock,
    GeneratedImage,
    GenerateFn,
    GenerationMode,
    GenerationRequest,
    ImageT,
    Scalar,
    Scorer,
    Stage,
    StageRequest,
)
from orchestrator.search.deadline import Deadline
from orchestrator.search.events import EventKind, ProgressCallback, ProgressEvent
from orchestrator.search.ledger import (
    CandidateRecord,
    CandidateStatus,
    CandidateTimings,
    GenerationSettings,
    Ledger,
    PotentialTerm,
    ScoreRecord,
    SearchTimings,
    SkippedWork,
    StageFailure,
)
from orchestrator.search.potential import compute_potential
from orchestrator.search.seeds import RAW_SWAP_SEED, SeedAllocator

logger = logging.getLogger(__name__)


class SearchFailedError(RuntimeError):
    """The search produced no candidate at all (no raw swap was given and generation failed)."""


@dataclass(frozen=True)
class SearchRequest(Generic[ImageT]):
    """One search.

    Attributes:
        request_seed: every candidate seed derives from it (see `orchestrator.search.seeds`).
        raw_swap: the face stage's raw swap, candidate g0 with seed 0; None to search on diffusion alone.
        raw_swap_elapsed_s: what the raw swap cost, for the ledger.
        raw_swap_info: details of the raw swap for the ledger (swapper model, stand-in or not).
        config: the search's settings.
        deadline: when the answer is due (its clock should be the search's injected clock).
        request_id: carried into stage requests and logs.
    """

    request_seed: int
    raw_swap: ImageT | None = field(default=None, repr=False)
    raw_swap_elapsed_s: float = 0.0
    raw_swap_info: Mapping[str, Scalar] = field(default_factory=dict)
    config: SearchConfig = field(default_factory=SearchConfig)
    deadline: Deadline = field(default_factory=Deadline.never)
    request_id: str = ""


@dataclass(frozen=True)
class SearchResult(Generic[ImageT]):
    """The winner, every candidate's image by id, and the ledger."""

    ledger: Ledger
    images: Mapping[str, ImageT] = field(repr=False)

    @property
    def best_id(self) -> str:
        assert self.ledger.best_id is not None  # a result always has a best; run_search raises otherwise
        return self.ledger.best_id

    @property
    def best(self) -> CandidateRecord:
        return self.ledger.candidate(self.best_id)

    @property
    def best_image(self) -> ImageT:
        return self.images[self.best_id]


def rank_key(potential: float, index: int) -> tuple[float, int]:
    """Sort key: higher potential first, then the earlier-planned candidate (so ties are deterministic)."""
    return (-potential, index)


class Ranked(Protocol):
    """Anything with a potential and its planning index: a ledger record, or a slot during the search."""

    @property
    def potential(self) -> float | None: ...

    @property
    def index(self) -> int: ...


R = TypeVar("R", bound=Ranked)


def select_parents(candidates: Sequence[R], m_global: int) -> list[R]:
    """The m_global best scored candidates, best first (ties: the earlier-planned one)."""
    scored = [c for c in candidates if c.potential is not None]
    return sorted(scored, key=lambda c: rank_key(c.potential or 0.0, c.index))[:m_global]


@dataclass
class _Slot(Generic[ImageT]):
    """A candidate while the search works on it; frozen into a `CandidateRecord` at the end."""

    request: GenerationRequest[ImageT]
    index: int
    generated: GeneratedImage[ImageT] | None = None
    generated_at: float | None = None
    scored_at: float | None = None
    scores: list[ScoreRecord] = field(default_factory=list)
    potential: float | None = None
    terms: tuple[PotentialTerm, ...] = ()
    failure_reason: str | None = None
    selected_as_parent: bool = False
    skipped: bool = False  # planned, then not attempted (deadline)


class _Search(Generic[ImageT]):
    def __init__(
        self,
        request: SearchRequest[ImageT],
        generate: GenerateFn[ImageT],
        scorers: Sequence[Scorer[ImageT]],
        clock: Clock,
        on_event: ProgressCallback | None,
    ) -> None:
        self.request = request
        self.config = request.config
        self.generate = generate
        self.scorers = tuple(scorers)
        self.clock = clock
        self.on_event = on_event
        self.seeds = SeedAllocator(request.request_seed)
        self.slots: list[_Slot[ImageT]] = []
        self.skipped: list[SkippedWork] = []
        self.failures: list[StageFailure] = []
        self.started = clock()
        self.planned = 0
        self.generated_count = 0
        self.scored_count = 0

    # Bookkeeping.

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float | None:
        if not self.request.deadline.bounded:
            return None
        return self.request.deadline.remaining()

    def emit(
        self,
        kind: EventKind,
        *,
        stage: Stage | None = None,
        candidate_id: str | None = None,
        potential: float | None = None,
        detail: str | None = None,
    ) -> None:
        if self.on_event is None:
            return
        event = ProgressEvent(
            kind=kind,
            elapsed_s=self.elapsed(),
            planned=self.planned,
            generated=self.generated_count,
            scored=self.scored_count,
            stage=stage,
            candidate_id=candidate_id,
            potential=potential,
            detail=detail,
        )
        try:
            self.on_event(event)
        except Exception:
            # A broken progress listener (a client that went away) must not cost the caller its answer.
            logger.exception("eacps progress callback failed request_id=%s kind=%s", self.request.request_id, kind)

    def new_slot(self, request: GenerationRequest[ImageT]) -> _Slot[ImageT]:
        slot = _Slot(request=request, index=len(self.slots))
        self.slots.append(slot)
        return slot

    def accept(self, slot: _Slot[ImageT], generated: GeneratedImage[ImageT]) -> None:
        slot.generated = generated
        slot.generated_at = self.elapsed()
        self.generated_count += 1
        self.emit(EventKind.CANDIDATE_GENERATED, stage=slot.request.stage, candidate_id=slot.request.candidate_id)

    # Scoring.

    async def run_scorer(self, scorer: Scorer[ImageT], candidate: CandidateImage[ImageT]) -> list[ScoreRecord]:
        started = self.clock()
        error: str | None = None
        remaining = self.remaining()
        # The answer is due at the deadline: a scorer still busy then falls back, flagged.
        budget = asyncio.timeout(None if remaining is None else max(remaining, 0.0))
        try:
            async with budget:
                answer = list(await scorer.score(candidate))
        except Exception as exc:
            # One scorer failing must not sink the candidate: its signals fall back, flagged, below.
            answer = []
            if isinstance(exc, TimeoutError) and budget.expired():
                error = f"{scorer.name} did not answer before the deadline"
            else:
                error = f"{scorer.name} failed: {type(exc).__name__}: {exc}"
            logger.warning(
                "eacps scorer failed request_id=%s scorer=%s candidate=%s error=%s",
                self.request.request_id,
                scorer.name,
                candidate.candidate_id,
                type(exc).__name__,
            )
        elapsed = self.clock() - started
        records = [
            ScoreRecord(
                signal=s.signal,
                value=s.value,
                source=s.source,
                fallback=s.fallback,
                scorer=scorer.name,
                elapsed_s=elapsed,
                reason=s.reason,
                details=dict(s.details),
            )
            for s in answer
        ]
        provided = {s.signal for s in answer}
        records.extend(
            ScoreRecord(
                signal=signal,
                value=scorer.fallback_value,
                source=scorer.name,
                fallback=True,
                scorer=scorer.name,
                elapsed_s=elapsed,
                reason=error or f"{scorer.name} returned no {signal} score",
            )
            for signal in scorer.signals
            if signal not in provided
        )
        return records

    async def score(self, slot: _Slot[ImageT]) -> None:
        assert slot.generated is not None
        req = slot.request
        candidate = CandidateImage(
            candidate_id=req.candidate_id,
            stage=req.stage,
            mode=req.mode,
            seed=req.seed,
            parent_id=req.parent_id,
            image=slot.generated.image,
            deadline=self.request.deadline,
            request_id=self.request.request_id,
        )
        if self.config.sequential:
            per_scorer = [await self.run_scorer(s, candidate) for s in self.scorers]
        else:
            per_scorer = list(await asyncio.gather(*(self.run_scorer(s, candidate) for s in self.scorers)))
        slot.scores = [record for records in per_scorer for record in records]
        slot.potential, slot.terms = compute_potential(
            slot.scores, self.config.weights, self.config.stand_ins, self.config.fallback_score
        )
        slot.scored_at = self.elapsed()
        self.scored_count += 1
        self.emit(EventKind.CANDIDATE_SCORED, stage=req.stage, candidate_id=req.candidate_id, potential=slot.potential)

    # Stages.

    async def run_stage(self, stage: Stage, to_generate: list[_Slot[ImageT]], ready: list[_Slot[ImageT]]) -> None:
        """Generate `to_generate` in one call, scoring every arrival (and the `ready` ones) concurrently.

        With `config.sequential` (the baseline schedule), one candidate at a time instead, each scored
        before the next is asked for.
        """
        if self.config.sequential:
            failure = await self.run_stage_sequentially(stage, to_generate, ready)
        else:
            failure = await self.run_stage_overlapped(stage, to_generate, ready)
        missing = [slot for slot in to_generate if slot.generated is None]
        if missing and failure is None:
            failure = f"generator returned {len(to_generate) - len(missing)} of {len(to_generate)} candidates"
        if failure is not None:
            for slot in missing:
                slot.failure_reason = failure
            self.failures.append(StageFailure(stage=stage, reason=failure))
            self.emit(EventKind.STAGE_FAILED, stage=stage, detail=failure)
            logger.warning(
                "eacps stage failed request_id=%s stage=%s missing=%d reason=%s",
                self.request.request_id,
                stage,
                len(missing),
                failure,
            )

    def stage_request(self, stage: Stage, slots: list[_Slot[ImageT]]) -> StageRequest[ImageT]:
        return StageRequest(
            stage=stage,
            requests=tuple(slot.request for slot in slots),
            deadline=self.request.deadline,
            request_id=self.request.request_id,
        )

    async def generated(self, stage: Stage, slots: list[_Slot[ImageT]]) -> AsyncIterator[_Slot[ImageT]]:
        by_id = {slot.request.candidate_id: slot for slot in slots}
        async for generated in self.generate(self.stage_request(stage, slots)):
            slot = by_id.get(generated.candidate_id)
            if slot is None or slot.generated is not None:
                raise ValueError(f"generator returned an unknown or repeated id {generated.candidate_id!r}")
            self.accept(slot, generated)
            yield slot

    async def run_stage_overlapped(
        self, stage: Stage, to_generate: list[_Slot[ImageT]], ready: list[_Slot[ImageT]]
    ) -> str | None:
        failure: str | None = None
        async with asyncio.TaskGroup() as scoring:
            for ready_slot in ready:
                scoring.create_task(self.score(ready_slot))
            if to_generate:
                try:
                    async for slot in self.generated(stage, to_generate):
                        scoring.create_task(self.score(slot))
                except Exception as exc:
                    # Keep what was generated and scored so far; the caller still gets the best of it.
                    failure = f"{type(exc).__name__}: {exc}"
        return failure

    async def run_stage_sequentially(
        self, stage: Stage, to_generate: list[_Slot[ImageT]], ready: list[_Slot[ImageT]]
    ) -> str | None:
        for ready_slot in ready:
            await self.score(ready_slot)
        for slot in to_generate:
            try:
                async for made in self.generated(stage, [slot]):
                    await self.score(made)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
        return None

    def plan_global(self) -> tuple[_Slot[ImageT] | None, list[_Slot[ImageT]]]:
        raw: _Slot[ImageT] | None = None
        first = 0
        if self.request.raw_swap is not None:
            raw = self.new_slot(
                GenerationRequest(
                    candidate_id="g0", stage=Stage.GLOBAL, mode=GenerationMode.RAW_SWAP, seed=RAW_SWAP_SEED
                )
            )
            first = 1
        to_generate = []
        for i in range(first, self.config.k_global):
            candidate_id = f"g{i}"
            to_generate.append(
                self.new_slot(
                    GenerationRequest(
                        candidate_id=candidate_id,
                        stage=Stage.GLOBAL,
                        mode=GenerationMode.REFINE,
                        seed=self.seeds.seed_for(candidate_id),
                    )
                )
            )
        return raw, to_generate

    def accept_raw_swap(self, raw: _Slot[ImageT] | None) -> list[_Slot[ImageT]]:
        """The raw swap arrives "generated" by the face stage; the search only scores it."""
        if raw is None or self.request.raw_swap is None:
            return []
        self.accept(
            raw,
            GeneratedImage(
                candidate_id=raw.request.candidate_id,
                image=self.request.raw_swap,
                elapsed_s=self.request.raw_swap_elapsed_s,
                info=dict(self.request.raw_swap_info),
            ),
        )
        return [raw]

    def child_request(self, parent: _Slot[ImageT], j: int) -> GenerationRequest[ImageT]:
        candidate_id = f"{parent.request.candidate_id}.{j}"
        seed = self.seeds.seed_for(candidate_id)
        raw_swap_parent = parent.request.mode is GenerationMode.RAW_SWAP
        if raw_swap_parent or self.config.local_mode is LocalMode.RENOISE:
            assert parent.generated is not None
            return GenerationRequest(
                candidate_id=candidate_id,
                stage=Stage.LOCAL,
                mode=GenerationMode.RENOISE,
                seed=seed,
                parent_id=parent.request.candidate_id,
                parent_seed=parent.request.seed,
                parent_image=parent.generated.image,
                strength=self.config.renoise_strength,
            )
        return GenerationRequest(
            candidate_id=candidate_id,
            stage=Stage.LOCAL,
            mode=GenerationMode.NOISE_NEIGHBOURHOOD,
            seed=seed,
            parent_id=parent.request.candidate_id,
            parent_seed=parent.request.seed,
            noise_cosine=self.config.noise_cosine,
        )

    def parents_that_fit(
        self, parents: list[_Slot[ImageT]], global_s: float, generated_in_global: int
    ) -> tuple[int, float | None, str | None]:
        """How many parents' children fit the deadline, the local estimate, and why fewer when fewer."""
        remaining = self.remaining()
        wanted = len(parents)
        if remaining is None or wanted == 0:
            return wanted, None, None
        if generated_in_global == 0:
            # Nothing was generated to measure; go on only while time is left.
            if remaining > 0:
                return wanted, None, None
            return 0, None, f"deadline passed ({-remaining:.3f} s ago) before the local stage"
        per_parent = global_s / generated_in_global * self.config.k_local * self.config.local_cost_factor
        estimate = per_parent * wanted
        if per_parent <= 0:
            return wanted, estimate, None
        fit = max(0, min(wanted, math.floor(remaining / per_parent)))
        if fit == wanted:
            return wanted, estimate, None
        reason = (
            f"deadline: {remaining:.3f} s left, local stage estimated at {estimate:.3f} s "
            f"({per_parent:.3f} s per parent from the global stage); children of {wanted - fit} of {wanted} "
            "parents skipped"
        )
        return fit, estimate, reason

    # The whole search.

    async def run(self) -> SearchResult[ImageT]:
        cfg = self.config
        rid = self.request.request_id
        raw, to_generate = self.plan_global()
        self.planned = len(self.slots)

        global_s: float | None = None
        local_s: float | None = None
        local_estimate: float | None = None
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            reason = f"deadline passed ({-remaining:.3f} s ago) before the global stage"
            for slot in to_generate:
                slot.failure_reason = reason
                slot.skipped = True
            self.skipped.append(
                SkippedWork(stage=Stage.GLOBAL, reason=reason, candidates_not_generated=len(to_generate))
            )
            self.skipped.append(
                SkippedWork(stage=Stage.LOCAL, reason=reason, candidates_not_generated=cfg.m_global * cfg.k_local)
            )
            self.emit(EventKind.STAGE_SKIPPED, stage=Stage.GLOBAL, detail=reason)
            logger.warning("eacps skipped request_id=%s stage=global reason=%s", rid, reason)
            self.accept_raw_swap(raw)
        else:
            self.emit(EventKind.STAGE_STARTED, stage=Stage.GLOBAL)
            logger.info("eacps stage started request_id=%s stage=global candidates=%d", rid, self.planned)
            global_start = self.clock()
            await self.run_stage(Stage.GLOBAL, to_generate, self.accept_raw_swap(raw))
            global_s = self.clock() - global_start
            local_s, local_estimate = await self.run_local(to_generate, global_s)

        return self.finish(global_s, local_s, local_estimate)

    async def run_local(
        self, generated_global: list[_Slot[ImageT]], global_s: float
    ) -> tuple[float | None, float | None]:
        cfg = self.config
        rid = self.request.request_id
        parents = select_parents(self.slots, cfg.m_global)
        for parent in parents:
            parent.selected_as_parent = True
        if cfg.k_local == 0 or not parents:
            return None, None
        diffusion_made = sum(1 for s in generated_global if s.generated is not None)
        if generated_global and diffusion_made == 0:
            # Nothing came out of the global stage (generator down): the local stage would fail the same way.
            self.record_local_skip(parents, "global generation failed; local stage not attempted")
            return None, None
        fit, estimate, reason = self.parents_that_fit(parents, global_s, diffusion_made)
        if reason is not None:
            self.record_local_skip(parents[fit:], reason)
        parents = parents[:fit]
        if not parents:
            return None, estimate
        children = [self.new_slot(self.child_request(parent, j)) for parent in parents for j in range(cfg.k_local)]
        self.planned = len(self.slots)
        self.emit(EventKind.STAGE_STARTED, stage=Stage.LOCAL)
        logger.info(
            "eacps stage started request_id=%s stage=local parents=%s candidates=%d",
            rid,
            ",".join(p.request.candidate_id for p in parents),
            len(children),
        )
        local_start = self.clock()
        await self.run_stage(Stage.LOCAL, children, [])
        return self.clock() - local_start, estimate

    def record_local_skip(self, parents: list[_Slot[ImageT]], reason: str) -> None:
        skipped = SkippedWork(
            stage=Stage.LOCAL,
            reason=reason,
            parent_ids=tuple(p.request.candidate_id for p in parents),
            candidates_not_generated=len(parents) * self.config.k_local,
        )
        self.skipped.append(skipped)
        self.emit(EventKind.STAGE_SKIPPED, stage=Stage.LOCAL, detail=reason)
        logger.warning("eacps skipped request_id=%s stage=local reason=%s", self.request.request_id, reason)

    def finish(
        self, global_s: float | None, local_s: float | None, local_estimate: float | None
    ) -> SearchResult[ImageT]:
        scored = [s for s in self.slots if s.potential is not None]
        if scored:
            best: _Slot[ImageT] | None = min(scored, key=lambda s: rank_key(s.potential or 0.0, s.index))
        else:
            # Nothing could be scored (deadline already passed): the first candidate that exists, unranked.
            best = next((s for s in self.slots if s.generated is not None), None)
        if best is None:
            reasons = "; ".join(f.reason for f in self.failures) or "no candidate was generated"
            raise SearchFailedError(f"search produced no candidate: {reasons}")
        records = tuple(self.record(slot) for slot in self.slots)
        ledger = Ledger(
            request_id=self.request.request_id,
            request_seed=self.request.request_seed,
            config=self.config.to_dict(),
            candidates=records,
            best_id=best.request.candidate_id,
            skipped=tuple(self.skipped),
            failures=tuple(self.failures),
            timings=SearchTimings(
                total_s=self.elapsed(), global_s=global_s, local_s=local_s, local_estimate_s=local_estimate
            ),
        )
        images = {s.request.candidate_id: s.generated.image for s in self.slots if s.generated is not None}
        self.emit(EventKind.DONE, candidate_id=best.request.candidate_id, potential=best.potential)
        logger.info(
            "eacps done request_id=%s best=%s potential=%s candidates=%d scored=%d skipped=%d failures=%d",
            self.request.request_id,
            best.request.candidate_id,
            f"{best.potential:.3f}" if best.potential is not None else "none",
            len(self.slots),
            len(scored),
            len(self.skipped),
            len(self.failures),
        )
        return SearchResult(ledger=ledger, images=images)

    def record(self, slot: _Slot[ImageT]) -> CandidateRecord:
        req = slot.request
        if slot.potential is not None:
            status = CandidateStatus.SCORED
        elif slot.generated is not None:
            status = CandidateStatus.NOT_SCORED
        elif slot.skipped:
            status = CandidateStatus.SKIPPED
        else:
            status = CandidateStatus.GENERATION_FAILED
        return CandidateRecord(
            candidate_id=req.candidate_id,
            index=slot.index,
            stage=req.stage,
            parent_id=req.parent_id,
            settings=GenerationSettings(
                mode=req.mode,
                seed=req.seed,
                parent_seed=req.parent_seed,
                noise_cosine=req.noise_cosine,
                strength=req.strength,
            ),
            status=status,
            scores=tuple(slot.scores),
            potential=slot.potential,
            potential_terms=slot.terms,
            timings=CandidateTimings(
                generation_s=slot.generated.elapsed_s if slot.generated is not None else 0.0,
                generated_at_s=slot.generated_at,
                scored_at_s=slot.scored_at,
            ),
            generator_info=dict(slot.generated.info) if slot.generated is not None else {},
            failure_reason=slot.failure_reason,
            selected_as_parent=slot.selected_as_parent,
        )


async def run_search(
    request: SearchRequest[ImageT],
    *,
    generate: GenerateFn[ImageT],
    scorers: Sequence[Scorer[ImageT]],
    clock: Clock = time.monotonic,
    on_event: ProgressCallback | None = None,
) -> SearchResult[ImageT]:
    """Run one EACPS search.

    Args:
        request: the seed, the raw swap, the config and the deadline.
        generate: called once per stage with all of the stage's candidates; yields them as they are made.
        scorers: each scores every candidate as it arrives (concurrently with each other and with
            generation); a failing scorer's signals fall back, flagged in the ledger.
        clock: monotonic seconds for the ledger's timings; `request.deadline` should use the same clock.
        on_event: hears stage_started, candidate_generated, candidate_scored, stage_skipped,
            stage_failed and done.

    Returns:
        The best candidate (by potential; ties go to the earlier one), every image by id, the ledger.

    Raises:
        SearchFailedError: when not a single candidate exists (no raw swap and generation failed).
    """
    return await _Search(request, generate, scorers, clock, on_event).run()
