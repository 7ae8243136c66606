"""The service's own pieces, without servers: admission, idempotency, error mapping."""

from __future__ import annotations

import asyncio

import pytest
from inpaint.v1 import inpaint_pb2

from orchestrator.errors import DeadlineExceededError, InvalidInputError, ModelUnavailableError, NoFaceError
from orchestrator.requests import fingerprint
from orchestrator.search import SearchConfigError
from orchestrator.service import ResultCache, to_service_error
from servers.common import errors as service_errors
from servers.common.interceptor import status_for


def test_admission_rejects_beyond_running_plus_queued() -> None:
    """The orchestrator admits its tasks through the model servers' WorkQueue (coroutine work)."""
    from servers.common.work_queue import WorkQueue

    async def scenario() -> list[str]:
        queue = WorkQueue(max_concurrent=1, max_queue=1)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def work() -> str:
            await release.wait()
            return "done"

        first = asyncio.ensure_future(queue.run_coroutine(work))
        second = asyncio.ensure_future(queue.run_coroutine(work))
        await asyncio.sleep(0)
        with pytest.raises(service_errors.ResourceExhausted, match="busy"):
            await queue.run_coroutine(work)
        release.set()
        outcomes += [await first, await second]
        outcomes.append(await queue.run_coroutine(work))  # room again once they finished
        return outcomes

    assert asyncio.run(scenario()) == ["done", "done", "done"]


def test_result_cache_replays_and_runs_once() -> None:
    async def scenario() -> tuple[int, bool, bool]:
        cache = ResultCache(size=2)
        runs = 0
        gate = asyncio.Event()

        async def work() -> inpaint_pb2.InpaintResponse:
            nonlocal runs
            runs += 1
            await gate.wait()
            return inpaint_pb2.InpaintResponse(request_id="r1", best_candidate_id="g3")

        first = asyncio.ensure_future(cache.run("r1", "fp", work))
        concurrent = asyncio.ensure_future(cache.run("r1", "fp", work))  # a retry while the first still runs
        await asyncio.sleep(0)
        gate.set()
        a, b = await first, await concurrent
        c = await cache.run("r1", "fp", work)
        with pytest.raises(InvalidInputError, match="request_id"):
            await cache.run("r1", "another request", work)
        return runs, b.replayed and c.replayed, not a.replayed and c.best_candidate_id == "g3"

    assert asyncio.run(scenario()) == (1, True, True)


def test_a_failed_run_is_not_stored() -> None:
    async def scenario() -> int:
        cache = ResultCache(size=2)
        calls = 0

        async def failing() -> inpaint_pb2.InpaintResponse:
            nonlocal calls
            calls += 1
            raise ModelUnavailableError("triton", "down")

        for _ in range(2):
            with pytest.raises(ModelUnavailableError):
                await cache.run("r2", "fp", failing)
        return calls

    assert asyncio.run(scenario()) == 2


def test_the_fingerprint_ignores_only_the_request_id() -> None:
    a = inpaint_pb2.InpaintRequest(request_id="x", task_id="t1")
    b = inpaint_pb2.InpaintRequest(request_id="y", task_id="t1")
    c = inpaint_pb2.InpaintRequest(request_id="x", task_id="t2")
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (InvalidInputError("mask", "is empty"), "INVALID_ARGUMENT", "mask: is empty"),
        (SearchConfigError("k_local", "must be at least 0"), "INVALID_ARGUMENT", "settings.k_local"),
        (NoFaceError("character_image"), "FAILED_PRECONDITION", "character_image: no face"),
        (ModelUnavailableError("det_10g", "refused"), "UNAVAILABLE", "det_10g is unavailable"),
        (DeadlineExceededError("late"), "DEADLINE_EXCEEDED", "late"),
        (RuntimeError("bug"), "INTERNAL", "RuntimeError: bug"),
    ],
)
def test_domain_errors_map_to_status_codes_once(error: Exception, code: str, text: str) -> None:
    mapped = to_service_error(error)
    assert status_for(mapped).name == code
    assert text in str(mapped)


def test_the_pipeline_raises_deadline_exceeded_when_the_face_stage_outlasts_the_budget() -> None:
    """The server's own DEADLINE_EXCEEDED path (not the client's): no time left once the face stage ends."""
    import time
    from unittest import mock

    import numpy as np

    from orchestrator.config import OrchestratorConfig, RequestSettings
    from orchestrator.faces.stage import FaceStage
    from orchestrator.pipeline import InpaintPipeline
    from orchestrator.requests import Task, TaskImages
    from orchestrator.search import Deadline

    config = OrchestratorConfig()
    pipeline = InpaintPipeline(config)
    slow = mock.Mock(side_effect=lambda *args: time.sleep(0.3))
    images = TaskImages(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), np.zeros((8, 8, 3), np.uint8))
    task = Task("late", images, RequestSettings(), config, Deadline.after(0.2))
    with (
        mock.patch.object(FaceStage, "run", slow),
        mock.patch.object(InpaintPipeline, "analyzer", None),
        pytest.raises(DeadlineExceededError, match="face stage"),
    ):
        asyncio.run(pipeline.run(task))
    assert slow.called
