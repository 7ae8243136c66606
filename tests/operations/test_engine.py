"""Operations on the durable engine, on SQLite and on a real PostgreSQL server, with a runner that needs no models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from inpaint.v1 import image_pb2, inpaint_pb2, operations_pb2

from orchestrator.errors import InvalidInputError
from orchestrator.operations.engine import OperationsEngine
from orchestrator.operations.status import NotFoundError
from servers.common import errors as service_errors
from tests.operations.conftest import config_for, running_engine
from tests.operations.fake_runner import FakeRunner, generated


def request(request_id: str, init: bytes = b"init", seed: int | None = None) -> inpaint_pb2.InpaintRequest:
    settings = inpaint_pb2.SearchSettings()
    if seed is not None:
        settings.seed = seed
    return inpaint_pb2.InpaintRequest(
        request_id=request_id,
        images=inpaint_pb2.TaskImages(
            init_image=image_pb2.Image(data=init),
            mask=image_pb2.Image(data=b"mask"),
            character_image=image_pb2.Image(data=b"character"),
        ),
        settings=settings,
    )


async def finished(
    engine: OperationsEngine, name: str
) -> tuple[list[operations_pb2.OperationEvent], operations_pb2.Operation]:
    events = [event async for event in engine.watch(name)]
    assert events[-1].HasField("done")
    return events[:-1], events[-1].done


def test_submit_returns_at_once_and_watch_ends_with_the_result(database_url: str, tmp_path: Path) -> None:
    runner = FakeRunner(tmp_path / "log", gate=tmp_path / "go")

    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), runner) as engine:
            operation, replayed = await engine.submit(request("r1"))
            assert operation.name == "operations/r1" and not operation.done and not replayed
            (tmp_path / "go").touch()
            events, done = await finished(engine, operation.name)
            scored = [e.progress.candidate_id for e in events if e.HasField("progress")]
            assert scored == ["g0", "g1", "g2"]
            assert done.metadata.state == operations_pb2.OPERATION_STATE_SUCCEEDED
            assert done.response.image.data == b"init" and done.response.best_candidate_id == "g0"
            assert await engine.candidate_image(operation.name, "g1") == b"png of g1"
            # A watcher that comes later is told the whole story again.
            again, _ = await finished(engine, operation.name)
            assert [e.progress.candidate_id for e in again if e.HasField("progress")] == scored

    asyncio.run(scenario())


def test_the_same_id_and_inputs_return_the_same_operation_and_never_run_twice(
    database_url: str, tmp_path: Path
) -> None:
    runner = FakeRunner(tmp_path / "log")

    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), runner) as engine:
            first, _ = await engine.submit(request("same"))
            second, _ = await engine.submit(request("same"))
            assert first.name == second.name
            await finished(engine, first.name)
            third, replayed = await engine.submit(request("same"))
            assert replayed and third.done and third.metadata.attempt == 1
        assert runner.started == ["same"]
        assert generated(tmp_path / "log") == ["same g0", "same g1", "same g2"]

    asyncio.run(scenario())


def test_the_same_id_with_other_inputs_is_refused_naming_the_field(database_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), FakeRunner(tmp_path / "log")) as engine:
            await engine.submit(request("taken", seed=1))
            with pytest.raises(InvalidInputError) as image_differs:
                await engine.submit(request("taken", init=b"another photo", seed=1))
            assert image_differs.value.field == "images.init_image"
            with pytest.raises(InvalidInputError) as seed_differs:
                await engine.submit(request("taken", seed=2))
            assert seed_differs.value.field == "settings.seed"

    asyncio.run(scenario())


def test_a_degraded_result_is_not_replayed_and_a_fresh_run_can_be_asked_for(database_url: str, tmp_path: Path) -> None:
    runner = FakeRunner(tmp_path / "log", degraded=True)

    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), runner) as engine:
            first, _ = await engine.submit(request("deg"))
            _, done = await finished(engine, first.name)
            assert done.response.degraded and list(done.response.notes) == ["cut short"]
            retry, replayed = await engine.submit(request("deg"))
            assert not replayed and retry.metadata.attempt == 2
            await finished(engine, retry.name)
            runner.degraded = False
            await engine.submit(request("deg"))
            _, complete = await finished(engine, retry.name)
            assert complete.metadata.attempt == 3 and not complete.response.degraded
            replay, replayed = await engine.submit(request("deg"))
            assert replayed and replay.metadata.attempt == 3
            fresh, replayed = await engine.submit(request("deg"), fresh_run=True)
            assert not replayed and fresh.metadata.attempt == 4
            await finished(engine, fresh.name)
        assert runner.started == ["deg"] * 4

    asyncio.run(scenario())


def test_a_failed_task_is_an_operation_error_with_its_code_and_field(database_url: str, tmp_path: Path) -> None:
    runner = FakeRunner(tmp_path / "log", fail_with=service_errors.InvalidArgument("init_image", "x" * 5000))

    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), runner) as engine:
            operation, _ = await engine.submit(request("bad"))
            _, done = await finished(engine, operation.name)
            assert done.metadata.state == operations_pb2.OPERATION_STATE_FAILED
            assert done.error.code == 3 and done.error.field == "init_image"
            assert len(done.error.message) <= 1024

    asyncio.run(scenario())


def test_cancel_stops_the_running_task(database_url: str, tmp_path: Path) -> None:
    runner = FakeRunner(tmp_path / "log", gate=tmp_path / "never")

    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), runner) as engine:
            operation, _ = await engine.submit(request("stop-me"))
            while not runner.started:
                await asyncio.sleep(0.02)
            cancelled = await engine.cancel(operation.name)
            _, done = await finished(engine, operation.name)
            assert done.metadata.state == operations_pb2.OPERATION_STATE_CANCELLED
            assert cancelled.name == operation.name and not engine._running
        assert generated(tmp_path / "log") == []

    asyncio.run(scenario())


def test_queued_tasks_see_their_position_and_all_complete(database_url: str, tmp_path: Path) -> None:
    runner = FakeRunner(tmp_path / "log", candidates=1, gate=tmp_path / "go")

    async def scenario() -> None:
        config = config_for(database_url, tmp_path, worker_concurrency=2)
        async with running_engine(config, runner) as engine:
            names = [(await engine.submit(request(f"q{i}", init=f"{i}".encode())))[0].name for i in range(16)]
            while len(runner.started) < 2:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # several queue polls: the limit must still hold
            assert len(runner.started) == 2
            last = await engine.get(names[-1])
            assert last.metadata.state == operations_pb2.OPERATION_STATE_QUEUED
            assert last.metadata.queue_position == 14
            watchers = [asyncio.ensure_future(finished(engine, name)) for name in names]
            await asyncio.sleep(0.2)
            (tmp_path / "go").touch()
            results = await asyncio.gather(*watchers)
            for events, done in results[2:]:
                assert any(e.HasField("queued") and e.queued.queue_position >= 1 for e in events)
                assert done.metadata.state == operations_pb2.OPERATION_STATE_SUCCEEDED
        assert sorted(runner.started) == sorted(f"q{i}" for i in range(16))

    asyncio.run(scenario())


def test_the_autoscalers_signals_follow_the_queue(database_url: str, tmp_path: Path) -> None:
    """Tasks run through the durable queue, not the server's work queue: the engine itself reports what the
    HorizontalPodAutoscaler reads (in flight on this replica, and its share of the queue)."""
    runner = FakeRunner(tmp_path / "log", candidates=1, gate=tmp_path / "go")
    reports: list[tuple[int, float]] = []

    async def scenario() -> None:
        config = config_for(database_url, tmp_path, worker_concurrency=2, heartbeat_s=0.1, dead_after_s=1.0)
        async with running_engine(config, runner, lambda running, queued: reports.append((running, queued))) as engine:
            names = [(await engine.submit(request(f"a{i}", init=f"{i}".encode())))[0].name for i in range(5)]
            while len(runner.started) < 2 or not reports or reports[-1] != (2, 3.0):
                await asyncio.sleep(0.05)
            (tmp_path / "go").touch()
            for name in names:
                await finished(engine, name)
            while reports[-1] != (0, 0.0):
                await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert (2, 3.0) in reports and reports[-1] == (0, 0.0)


def test_list_filters_by_state_and_prefix_and_delete_forgets_everything(database_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), FakeRunner(tmp_path / "log")) as engine:
            for request_id in ("order-1", "order-2", "other-1"):
                operation, _ = await engine.submit(request(request_id, init=request_id.encode()))
                await finished(engine, operation.name)
            orders, token = await engine.list_operations("state=SUCCEEDED AND request_id_prefix=order-", 0, "")
            assert sorted(o.name for o in orders) == ["operations/order-1", "operations/order-2"] and token == ""
            page, token = await engine.list_operations("", 2, "")
            assert len(page) == 2 and token
            rest, _ = await engine.list_operations("", 2, token)
            assert len(rest) == 1
            assert (await engine.list_operations("state=RUNNING", 0, ""))[0] == []
            with pytest.raises(InvalidInputError, match="filter"):
                await engine.list_operations("colour=blue", 0, "")
            await engine.delete("operations/order-1")
            with pytest.raises(NotFoundError):
                await engine.get("operations/order-1")
            assert not engine.blobs.exists("order-1") and engine.blobs.exists("order-2")

    asyncio.run(scenario())


def test_list_reads_only_its_pages_results_and_filters_failed_tasks_by_state(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: every operation that matched had its result read from the blob store, and all but one page of
    them was then dropped."""
    runner = FakeRunner(tmp_path / "log", candidates=1)

    async def scenario() -> None:
        async with running_engine(config_for(database_url, tmp_path), runner) as engine:
            for request_id in ("list-1", "list-2", "list-3"):
                operation, _ = await engine.submit(request(request_id, init=request_id.encode()))
                await finished(engine, operation.name)
            runner.fail_with = service_errors.FailedPrecondition("no face in init_image")
            failed, _ = await engine.submit(request("list-4", init=b"list-4"))
            await finished(engine, failed.name)
            read: list[str] = []
            get = engine.blobs.get

            def counted_get(key: str) -> bytes:
                read.append(key)
                return get(key)

            monkeypatch.setattr(engine.blobs, "get", counted_get)
            page, token = await engine.list_operations("state=SUCCEEDED", 1, "")
            assert len(page) == 1 and token == "1" and page[0].response.best_candidate_id == "g0"
            assert read == [f"{page[0].metadata.request_id}/1/response.pb"]
            rest, token = await engine.list_operations("state=SUCCEEDED", 5, "1")
            assert len(rest) == 2 and token == ""
            assert {o.name for o in [*page, *rest]} == {f"operations/list-{i}" for i in (1, 2, 3)}
            failures, _ = await engine.list_operations("state=FAILED", 0, "")
            assert [o.name for o in failures] == ["operations/list-4"]
            assert failures[0].metadata.state == operations_pb2.OPERATION_STATE_FAILED
            assert failures[0].error.reason == "FAILED_PRECONDITION"

    asyncio.run(scenario())


def test_expired_operations_and_their_blobs_are_deleted(database_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        config = config_for(database_url, tmp_path, retention_s=1.5)
        async with running_engine(config, FakeRunner(tmp_path / "log")) as engine:
            old, _ = await engine.submit(request("old"))
            await finished(engine, old.name)
            await asyncio.sleep(2.6)  # retention is wall-clock time (SQLite records whole seconds): let it pass
            new, _ = await engine.submit(request("new", init=b"new"))
            await finished(engine, new.name)
            assert await engine.sweep() == 1
            with pytest.raises(NotFoundError):
                await engine.get(old.name)
            assert not engine.blobs.exists("old")
            assert (await engine.get(new.name)).done

    asyncio.run(scenario())
