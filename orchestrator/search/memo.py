"""Candidates that survive a crash: the search's generate function and scorers, remembered in a durable store.

    stored = ImagesStored()
    generate = remembered_generate(generate, store, codec, stored)
    scorers = [remembered_scorer(s, store, stored) for s in scorers]

A task taken over after its replica died runs again from the start, with the same seeds (they derive from
the request seed and the candidate ids). Wrapped this way, every candidate generated before the crash comes
back from the store instead of from the model server, and every score given before the crash comes back
instead of being asked for again; only the missing ones are generated and scored. The store is the durable
execution engine's (`orchestrator.operations`), scoped to one attempt of one task; keys are the candidate id
(and the scorer's name). Order does not matter, so generation and scoring stay concurrent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Generic, Protocol

from orchestrator.search.contracts import (
    CandidateImage,
    GeneratedImage,
    GenerateFn,
    ImageT,
    Scorer,
    SignalScore,
    StageRequest,
)


def candidate_image_key(candidate_id: str) -> str:
    """Where a generated candidate's encoded image is kept in the memo."""
    return f"candidates/{candidate_id}.image"


def _candidate_info_key(candidate_id: str) -> str:
    """Where a generated candidate's timing and generator info are kept, written after its image."""
    return f"candidates/{candidate_id}.json"


class MemoStore(Protocol):
    """Bytes by key, durable across processes (one task attempt's scope)."""

    async def recall(self, key: str) -> bytes | None: ...

    async def record(self, key: str, data: bytes) -> None: ...


@dataclass(frozen=True)
class ImageCodec(Generic[ImageT]):
    """How a candidate image is kept: encode to bytes (lossless), decode back. Run in worker threads."""

    encode: Callable[[ImageT], bytes]
    decode: Callable[[bytes], ImageT]


class ImagesStored:
    """The candidates whose images this run is storing. A candidate goes to its scorers while its image is
    being stored, and a score is recorded only once the image is: a crash between the two must not leave a
    score remembered for an image that the next run makes again (its batch may differ, and so may the image)."""

    def __init__(self) -> None:
        self._storing: dict[str, asyncio.Future[None]] = {}

    def add(self, candidate_id: str, storing: asyncio.Future[None]) -> None:
        self._storing[candidate_id] = storing

    async def stored(self, candidate_id: str) -> bool:
        """Once the image is stored: True; False when storing it failed. True at once for a candidate this run
        does not store (recalled from an earlier run, or the raw swap, which the face stage makes again)."""
        storing = self._storing.get(candidate_id)
        if storing is None:
            return True
        try:
            await asyncio.shield(storing)
        except Exception:
            return False
        return True


def remembered_generate(
    generate: GenerateFn[ImageT], store: MemoStore, codec: ImageCodec[ImageT], stored: ImagesStored
) -> GenerateFn[ImageT]:
    """`generate`, asked only for the candidates the store does not hold; those it holds come back first.
    Each new candidate is stored in the background, registered in `stored`."""

    async def remembered(stage: StageRequest[ImageT]) -> AsyncIterator[GeneratedImage[ImageT]]:
        missing = []
        # Looked up together: on an object store each look-up is a round trip, and the stage waits for them all.
        held = await asyncio.gather(
            *(
                store.recall(key(r.candidate_id))
                for r in stage.requests
                for key in (candidate_image_key, _candidate_info_key)
            )
        )
        for i, request in enumerate(stage.requests):
            image, meta = held[2 * i], held[2 * i + 1]
            if image is None or meta is None:
                missing.append(request)
                continue
            details = json.loads(meta)
            yield GeneratedImage(
                candidate_id=request.candidate_id,
                image=await asyncio.to_thread(codec.decode, image),
                elapsed_s=details["elapsed_s"],
                info={**details["info"], "recovered": True},
            )
        if not missing:
            return

        async def keep(generated: GeneratedImage[ImageT]) -> None:
            encoded = await asyncio.to_thread(codec.encode, generated.image)
            # The image first, its description last: a candidate counts as made once both are stored.
            await store.record(candidate_image_key(generated.candidate_id), encoded)
            described = {"elapsed_s": generated.elapsed_s, "info": dict(generated.info)}
            await store.record(_candidate_info_key(generated.candidate_id), json.dumps(described).encode())

        # Each candidate goes to its scorers as it arrives and is stored meanwhile: a later arrival does not
        # wait for the encoding and writes of the earlier ones. The stage ends once all of them are stored.
        keeping: list[asyncio.Future[None]] = []
        try:
            async for generated in generate(replace(stage, requests=tuple(missing))):
                keeping.append(asyncio.ensure_future(keep(generated)))
                stored.add(generated.candidate_id, keeping[-1])
                yield generated
        finally:
            kept = await asyncio.gather(*keeping, return_exceptions=True)
        for outcome in kept:
            if isinstance(outcome, BaseException):
                raise outcome

    return remembered


def _score_dict(score: SignalScore) -> dict[str, object]:
    return {
        "signal": score.signal,
        "value": score.value,
        "source": score.source,
        "fallback": score.fallback,
        "reason": score.reason,
        "details": dict(score.details),
    }


def remembered_scorer(scorer: Scorer[ImageT], store: MemoStore, stored: ImagesStored) -> Scorer[ImageT]:
    """`scorer`, asked only about candidates it has not scored in an earlier run of the same attempt.

    Only answers are remembered: a scorer that raised is asked again (its fallback is the search's to give).
    An answer is recorded once its candidate's image is stored (`stored`), and not at all if that failed.
    """

    async def score(candidate: CandidateImage[ImageT]) -> list[SignalScore]:
        key = f"scores/{candidate.candidate_id}/{scorer.name}.json"
        recalled = await store.recall(key)
        if recalled is not None:
            return [SignalScore(**item) for item in json.loads(recalled)]
        answer = list(await scorer.score(candidate))
        if await stored.stored(candidate.candidate_id):
            await store.record(key, json.dumps([_score_dict(s) for s in answer]).encode())
        return answer

    return replace(scorer, score=score)
