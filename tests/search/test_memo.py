"""A task taken over after a crash makes no candidate and asks no score twice (orchestrator.search.memo)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from orchestrator.search import (
    CandidateImage,
    Deadline,
    GenerationMode,
    GenerationRequest,
    Scorer,
    SearchConfig,
    SearchRequest,
    SearchResult,
    Stage,
    StageRequest,
    run_search,
)
from orchestrator.search.memo import ImageCodec, ImagesStored, remembered_generate, remembered_scorer
from tests.fakes.eacps import FakeGenerator, FakeImage, table_scorer

RAW = FakeImage("g0", GenerationMode.RAW_SWAP, 0)


class DictStore:
    """An in-memory stand-in for the attempt's blob-store memo."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def recall(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def record(self, key: str, data: bytes) -> None:
        self.data[key] = data


IMAGES: dict[str, FakeImage] = {}
CODEC: ImageCodec[FakeImage] = ImageCodec(
    encode=lambda image: IMAGES.setdefault(image.candidate_id, image).candidate_id.encode(),
    decode=lambda data: IMAGES[data.decode()],
)


class CountingScorer:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.base = table_scorer({})

    async def __call__(self, candidate: Any) -> Any:
        self.asked.append(candidate.candidate_id)
        return await self.base.score(candidate)


def search(generator: FakeGenerator, scorer: CountingScorer, store: DictStore) -> SearchResult[FakeImage]:
    request: SearchRequest[FakeImage] = SearchRequest(request_seed=7, raw_swap=RAW, config=SearchConfig())
    stored = ImagesStored()
    scorers = [remembered_scorer(Scorer("model", table_scorer({}).signals, scorer), store, stored)]
    generate = remembered_generate(generator, store, CODEC, stored)
    return asyncio.run(run_search(request, generate=generate, scorers=scorers))


def test_a_run_after_a_crash_makes_only_what_is_missing_and_ends_as_an_uninterrupted_run() -> None:
    store = DictStore()
    crashed_scorer = CountingScorer()
    # The first run dies in the local stage after two of its children (as a replica killed mid-task).
    search(FakeGenerator(fail_in_stage=Stage.LOCAL, fail_after=2), crashed_scorer, store)
    made_before = {
        key.removeprefix("candidates/").removesuffix(".image") for key in store.data if key.endswith(".image")
    }
    assert len(made_before) == 7 + 2

    again_generator, again_scorer = FakeGenerator(), CountingScorer()
    resumed = search(again_generator, again_scorer, store)
    asked_to_make = [r.candidate_id for call in again_generator.calls for r in call.requests]
    assert not set(asked_to_make) & made_before, "no candidate generated twice"
    assert len(asked_to_make) == 20 - 1 - len(made_before)  # the raw swap is never generated
    assert not set(again_scorer.asked) & set(crashed_scorer.asked), "no candidate scored twice"

    uninterrupted = search(FakeGenerator(), CountingScorer(), DictStore())
    assert resumed.best_id == uninterrupted.best_id
    assert [(c.candidate_id, c.seed, c.potential) for c in resumed.ledger.candidates] == [
        (c.candidate_id, c.seed, c.potential) for c in uninterrupted.ledger.candidates
    ]
    recovered = [c for c in resumed.ledger.candidates if c.generator_info.get("recovered")]
    assert {c.candidate_id for c in recovered} == made_before


def global_stage(seeds: Iterable[int]) -> StageRequest[FakeImage]:
    """A global stage asking for refinements g<seed>, as the search would."""
    requests = tuple(
        GenerationRequest[FakeImage](candidate_id=f"g{i}", stage=Stage.GLOBAL, mode=GenerationMode.REFINE, seed=i)
        for i in seeds
    )
    return StageRequest(Stage.GLOBAL, requests, Deadline.never(), "memo-test")


def test_candidates_reach_their_scorers_while_the_earlier_ones_are_still_being_stored() -> None:
    """Storing a candidate (encoding it, writing it to the blob store) must not hold back the next arrivals:
    all of a stage's candidates are handed on before any write finishes, and all are stored by its end."""

    class SlowStore(DictStore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def record(self, key: str, data: bytes) -> None:
            await self.release.wait()
            await super().record(key, data)

    async def run() -> tuple[list[str], set[str]]:
        store = SlowStore()
        generate = remembered_generate(FakeGenerator(), store, CODEC, ImagesStored())
        handed: list[str] = []
        stream = generate(global_stage(range(1, 8)))

        async def consume() -> None:
            async for generated in stream:
                handed.append(generated.candidate_id)

        consuming = asyncio.ensure_future(consume())
        for _ in range(50):  # every arrival, with no write finished yet
            await asyncio.sleep(0)
        arrived_before_any_write = list(handed)
        assert not store.data
        store.release.set()
        await asyncio.wait_for(consuming, 5)
        stored = {k.removeprefix("candidates/").removesuffix(".image") for k in store.data if k.endswith(".image")}
        return arrived_before_any_write, stored

    arrived, stored = asyncio.run(run())
    assert arrived == [f"g{i}" for i in range(1, 8)]
    assert stored == set(arrived)


def test_a_score_is_remembered_only_once_its_candidates_image_is_stored() -> None:
    """A candidate is scored while its image is being stored; its score is written after the image (a crash
    between the two must not leave a score for an image the next run makes again), and not at all when
    storing the image failed."""

    class GatedStore(DictStore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()
            self.order: list[str] = []

        async def record(self, key: str, data: bytes) -> None:
            if key.startswith("candidates/"):
                await self.release.wait()
                if key == "candidates/g2.image":
                    raise OSError("the blob store refused g2")
            self.order.append(key)
            await super().record(key, data)

    async def run() -> GatedStore:
        store = GatedStore()
        stored = ImagesStored()
        generate = remembered_generate(FakeGenerator(), store, CODEC, stored)
        scorer = remembered_scorer(Scorer("model", table_scorer({}).signals, CountingScorer()), store, stored)
        scoring = []

        async def consume() -> None:
            async for generated in generate(global_stage((1, 2))):
                candidate = CandidateImage(
                    candidate_id=generated.candidate_id,
                    stage=Stage.GLOBAL,
                    mode=GenerationMode.REFINE,
                    seed=1,
                    parent_id=None,
                    image=generated.image,
                )
                scoring.append(asyncio.ensure_future(scorer.score(candidate)))

        consuming = asyncio.ensure_future(consume())
        for _ in range(50):
            await asyncio.sleep(0)
        assert scoring and all(not s.done() for s in scoring), "scored, but the score waits for its image"
        assert not any(k.startswith("scores/") for k in store.data)
        store.release.set()
        await asyncio.gather(*scoring)
        with pytest.raises(OSError, match="refused g2"):
            await consuming  # the stage reports the image it could not store
        return store

    store = asyncio.run(run())
    assert store.order.index("scores/g1/model.json") > store.order.index("candidates/g1.image")
    assert "scores/g2/model.json" not in store.data, "no score without its image"
