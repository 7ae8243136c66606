"""Operations on DBOS: each task a durable workflow on a queue, the request id its workflow id.

Why DBOS (3.4, MIT), read in `.venv/lib/python3.11/site-packages/dbos/`: workflows and steps are
checkpointed in a system database that is SQLite by default and PostgreSQL in a cluster (`_sys_db_sqlite.py`,
`_sys_db_postgres.py`); a queue has a per-replica limit (`register_queue(worker_concurrency=...)`, enforced
in `_queue.py`); the workflow id is an idempotency key (`insert_workflow_status` returns the existing row);
cancel, list and delete are library calls; a step's recorded output is returned, not recomputed, when a
workflow runs again after a crash (`call_function_as_step`). procrastinate and pgqueuer need PostgreSQL
(no single-file default) and checkpoint jobs, not steps inside a job.

What DBOS does not do here, this module does:
- **Dead replicas**: open-source DBOS recovers only its own executor id's workflows at launch
  (`_recovery.py`); a Kubernetes pod that dies comes back under a new name, or not at all. Each replica
  writes a heartbeat (`tables.EXECUTORS`); a replica silent for `dead_after_s` is claimed by exactly one
  live replica (a conditional delete), which re-enqueues its PENDING workflows on the same queue
  (`DBOS._recover_pending_workflows`, idempotent by design). They resume from their recorded steps.
- **Attempts**: a finished workflow id cannot run again, so a retry after a degraded, failed or cancelled
  result (or with `fresh_run`) makes attempt n, workflow id `<request_id>/<n>` ('/' never appears in a
  request id). The operation is the latest attempt.
- **Progress** events go to `tables.PROGRESS`, so that any replica can replay them to a watcher.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dbos import DBOS, DBOSConfig, SetWorkflowID
from dbos._sys_db import WorkflowStatus
from inpaint.v1 import inpaint_pb2, operations_pb2

from orchestrator.errors import InvalidInputError
from orchestrator.operations.blobs import BlobNotFoundError, BlobStore, open_blob_store
from orchestrator.operations.config import OperationsConfig
from orchestrator.operations.status import NotFoundError, bounded, code_of, reason_of
from orchestrator.operations.tables import Tables, engine_for
from orchestrator.requests import check_request_id, request_settings
from orchestrator.search.memo import MemoStore
from servers.common import errors as service_errors
from servers.common.logs import fields

log = logging.getLogger("inpaint.operations")

NAME_PREFIX = "operations/"
QUEUE = "inpaint"
WORKFLOW = "inpaint_task"
# Workflows record this version; only executors of the same version dequeue or recover them.
APPLICATION_VERSION = "inpaint-operations-1"

_ACTIVE = ("ENQUEUED", "PENDING", "DELAYED")
_STATES = {
    "ENQUEUED": operations_pb2.OPERATION_STATE_QUEUED,
    "DELAYED": operations_pb2.OPERATION_STATE_QUEUED,
    "PENDING": operations_pb2.OPERATION_STATE_RUNNING,
    "SUCCESS": operations_pb2.OPERATION_STATE_SUCCEEDED,
    "ERROR": operations_pb2.OPERATION_STATE_FAILED,
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": operations_pb2.OPERATION_STATE_FAILED,
    "CANCELLED": operations_pb2.OPERATION_STATE_CANCELLED,
}
_FILTER_STATES = {
    "QUEUED": operations_pb2.OPERATION_STATE_QUEUED,
    "RUNNING": operations_pb2.OPERATION_STATE_RUNNING,
    "SUCCEEDED": operations_pb2.OPERATION_STATE_SUCCEEDED,
    "FAILED": operations_pb2.OPERATION_STATE_FAILED,
    "CANCELLED": operations_pb2.OPERATION_STATE_CANCELLED,
}

# A finished task's candidate images stored at once (each a blob-store round trip).
CONCURRENT_UPLOADS = 4


class TaskFailedError(Exception):
    """What a runner raises to fail an operation with a status code (a domain error, mapped once)."""

    def __init__(self, error: service_errors.ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class RunResult:
    """What one task produced: the response (no candidate images) and each candidate's PNG."""

    response: inpaint_pb2.InpaintResponse
    candidate_images: dict[str, bytes] = field(default_factory=dict)


@dataclass
class TaskRun:
    """One attempt as its runner sees it.

    Attributes:
        request: the request with its images inline (read from the blob store).
        budget_s: how long the task may run.
        on_event: record a progress event (the search's, as the public message).
        memo: the attempt's durable memory (`AttemptMemo`): what was generated and scored before a crash
            comes back from it instead of being made again.
    """

    request: inpaint_pb2.InpaintRequest
    budget_s: float
    on_event: Callable[[inpaint_pb2.ProgressEvent], None]
    memo: MemoStore


@dataclass(frozen=True)
class AttemptMemo:
    """One attempt's durable memory in the blob store (`<request_id>/<attempt>/memo/...`): what its
    candidates and scores were, so that a replica taking the attempt over after a crash makes none again.
    Deleted with the operation."""

    blobs: BlobStore
    prefix: str

    async def recall(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.blobs.get, f"{self.prefix}/{key}")
        except BlobNotFoundError:
            return None

    async def record(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.blobs.put, f"{self.prefix}/{key}", data)


class TaskRunner(Protocol):
    async def __call__(self, run: TaskRun) -> RunResult: ...


def operation_name(request_id: str) -> str:
    return f"{NAME_PREFIX}{request_id}"


def request_id_of(name: str) -> str:
    if not name.startswith(NAME_PREFIX):
        raise InvalidInputError("name", f"must be 'operations/<request_id>', got {bounded(name, 80)!r}")
    request_id = name.removeprefix(NAME_PREFIX)
    check_request_id(request_id)
    if not request_id:
        raise InvalidInputError("name", "names no request id")
    return request_id


def workflow_id(request_id: str, attempt: int) -> str:
    return request_id if attempt == 1 else f"{request_id}/{attempt}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def field_digests(request: inpaint_pb2.InpaintRequest, task_id: str = "") -> dict[str, str]:
    """A digest per request field that changes the task, so that a reused request id names what differs.

    `request` has its images inline (a task id resolved to its images); `task_id` is the one it came from.
    Generic over the messages' fields, so fields added to the contract later are compared too.
    """

    def digest_of(message: Any) -> str:
        return _digest(message.SerializeToString(deterministic=True))

    digests: dict[str, str] = {}
    for descriptor, value in request.images.ListFields():
        digests[f"images.{descriptor.name}"] = digest_of(inpaint_pb2.TaskImages(**{descriptor.name: value}))
    if task_id:
        digests["task_id"] = _digest(task_id.encode())
    for descriptor, value in request.settings.ListFields():
        digests[f"settings.{descriptor.name}"] = _digest(repr(value).encode())
    rest = inpaint_pb2.InpaintRequest()
    rest.CopyFrom(request)
    # The id, the images (above), and whether candidates come back inline do not change the task itself.
    for name in ("request_id", "images", "task_id", "settings", "return_candidate_images"):
        rest.ClearField(name)
    for descriptor, _ in rest.ListFields():
        part = inpaint_pb2.InpaintRequest()
        part.CopyFrom(rest)
        for other, _ in rest.ListFields():
            if other.name != descriptor.name:
                part.ClearField(other.name)
        digests[descriptor.name] = digest_of(part)
    return digests


def first_difference(stored: dict[str, str], given: dict[str, str]) -> str | None:
    for key in sorted(set(stored) | set(given)):
        if stored.get(key) != given.get(key):
            return key
    return None


def _error_dict(error: service_errors.ServiceError, code: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": bounded(str(error)),
        "reason": reason_of(error),
        "field": getattr(error, "field", ""),
    }


_current: OperationsEngine | None = None


@DBOS.workflow(name=WORKFLOW)
async def inpaint_task(spec: dict[str, Any]) -> dict[str, Any]:
    """The durable workflow of one attempt (see `OperationsEngine.execute`)."""
    if _current is None:
        raise RuntimeError("no operations engine in this process")
    return await _current.execute(spec)


@dataclass
class Attempt:
    """The latest attempt of an operation, as DBOS records it."""

    request_id: str
    attempt: int
    status: WorkflowStatus

    @classmethod
    def of(cls, status: WorkflowStatus) -> Attempt:
        """The attempt a workflow is: `<request_id>` is attempt 1, `<request_id>/<n>` attempt n."""
        request_id, _, number = status.workflow_id.partition("/")
        return cls(request_id, int(number or 1), status)

    @property
    def state(self) -> operations_pb2.OperationState:
        """The operation's public state; a runner's failure is recorded as a successful workflow with an error."""
        state = _STATES.get(self.status.status, operations_pb2.OPERATION_STATE_UNSPECIFIED)
        if state == operations_pb2.OPERATION_STATE_SUCCEEDED and "error" in self.output:
            return operations_pb2.OPERATION_STATE_FAILED
        return state

    @property
    def spec(self) -> dict[str, Any]:
        inputs = self.status.input
        return dict(inputs["args"][0]) if inputs and inputs.get("args") else {}

    @property
    def output(self) -> dict[str, Any]:
        return dict(self.status.output) if isinstance(self.status.output, dict) else {}

    @property
    def active(self) -> bool:
        return self.status.status in _ACTIVE

    @property
    def complete(self) -> bool:
        """Finished with a full result: what a retry gets back instead of a new run."""
        out = self.output
        return self.status.status == "SUCCESS" and "response_key" in out and not out.get("degraded", True)


class OperationsEngine:
    """The operations of one replica. One per process (DBOS is a process-wide singleton)."""

    def __init__(
        self,
        config: OperationsConfig,
        runner: TaskRunner,
        *,
        port: int,
        read_task_images: Callable[[str], tuple[bytes, bytes, bytes]],
        check_request: Callable[[inpaint_pb2.InpaintRequest], object],
        default_budget_s: float,
        report_load: Callable[[int, float], None] | None = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.database_url = config.resolved_database_url(port)
        if self.database_url.startswith("sqlite:///"):
            Path(self.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.blobs = open_blob_store(config, port)
        self.tables = Tables(engine_for(self.database_url))
        self.executor_id = config.resolved_executor_id()
        self.read_task_images = read_task_images
        self.check_request = check_request  # raises on a bad request (what it returns is not used)
        self.default_budget_s = default_budget_s
        # (tasks running here, queued tasks per live replica): the autoscaler's signals, reported each heartbeat.
        self.report_load = report_load
        self.draining = False
        self._running: dict[str, asyncio.Task[RunResult]] = {}
        self._housekeeping: list[asyncio.Task[None]] = []

    # Life of a replica.

    async def start(self) -> None:
        """Launch DBOS on the running event loop (queued workflows then run on it) and the housekeeping."""
        global _current
        _current = self
        await asyncio.to_thread(self.tables.create)
        DBOS(
            config=DBOSConfig(
                name="inpaint",
                system_database_url=self.database_url,
                executor_id=self.executor_id,
                application_version=APPLICATION_VERSION,
                log_level="WARNING",
                notification_listener_polling_interval_sec=self.config.poll_s,
            )
        )
        DBOS.launch()
        await DBOS.register_queue_async(
            QUEUE, worker_concurrency=self.config.worker_concurrency, polling_interval_sec=self.config.poll_s
        )
        await asyncio.to_thread(self.tables.heartbeat, self.executor_id)
        loop = asyncio.get_running_loop()
        self._housekeeping = [
            loop.create_task(self._every(self.config.heartbeat_s, self._heartbeat_and_recover)),
            loop.create_task(self._every(min(0.5, self.config.heartbeat_s), self._follow_cancellations)),
            loop.create_task(self._every(self.config.sweep_s, self.sweep)),
        ]
        log.info("operations started", extra=fields(executor=self.executor_id, database=self._shown_url()))

    def _shown_url(self) -> str:
        # Never log a password.
        url = self.database_url
        if "@" in url:
            scheme, rest = url.split("://", 1)
            return f"{scheme}://...@{rest.split('@', 1)[1]}"
        return url

    async def _every(self, period_s: float, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("operations housekeeping failed", extra=fields(work=work.__name__))
            await asyncio.sleep(period_s)

    async def _heartbeat_and_recover(self) -> None:
        if self.draining:
            return
        await asyncio.to_thread(self.tables.heartbeat, self.executor_id)
        if self.report_load is not None:
            queued = await DBOS.list_queued_workflows_async(
                queue_name=QUEUE, status="ENQUEUED", load_input=False, load_output=False
            )
            replicas = await asyncio.to_thread(self.tables.live_executors, self.config.dead_after_s)
            # Each replica reports its share of the queue, so that the autoscaler's average over pods is
            # the queue per replica (every pod reporting the whole queue would scale out N times too far).
            self.report_load(len(self._running), len(queued) / max(replicas, 1))
        dead = await asyncio.to_thread(self.tables.claim_dead, self.config.dead_after_s)
        if dead:
            handles = await asyncio.to_thread(DBOS._recover_pending_workflows, dead)
            log.warning(
                "took over a dead replica's tasks",
                extra=fields(dead=dead, workflows=[h.get_workflow_id() for h in handles]),
            )

    async def _follow_cancellations(self) -> None:
        """A cancel may land on another replica: stop local work whose workflow was cancelled."""
        for wid, task in list(self._running.items()):
            status = await DBOS.get_workflow_status_async(wid)
            if status is not None and status.status == "CANCELLED" and not task.done():
                task.cancel()

    def stop_taking_work(self) -> None:
        """The first thing SIGTERM does: no new submissions here, and this replica dequeues no more tasks."""
        if not self.draining:
            self.draining = True
            _stop_dequeuing()
            log.info("draining", extra=fields(running=sorted(self._running)))

    async def stop(self, grace_s: float) -> None:
        """SIGTERM: take no more tasks, finish the running ones within the grace, hand back the rest."""
        self.stop_taking_work()
        deadline = time.monotonic() + grace_s
        while self._running and time.monotonic() < deadline:
            await asyncio.wait(list(self._running.values()), timeout=deadline - time.monotonic())
        left = sorted(self._running)
        for task in self._housekeeping:
            task.cancel()
        if left:
            # Handed back: a heartbeat older than any cutoff makes the next live replica recover them now.
            await asyncio.to_thread(self.tables.heartbeat, self.executor_id, 0.0)
            log.warning("handed back unfinished tasks", extra=fields(workflows=left))
        else:
            await asyncio.to_thread(self.tables.forget, self.executor_id)
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)

    # The workflow.

    async def execute(self, spec: dict[str, Any]) -> dict[str, Any]:
        wid = workflow_id(spec["request_id"], spec["attempt"])
        request = inpaint_pb2.InpaintRequest.FromString(await asyncio.to_thread(self.blobs.get, spec["request_key"]))

        def on_event(event: inpaint_pb2.ProgressEvent) -> None:
            # Synchronous on purpose: the event is stored before the search goes on, so a watcher on any
            # replica sees it in order (one small insert).
            self.tables.append_progress(wid, _event_dict(event))

        memo = AttemptMemo(self.blobs, f"{spec['request_id']}/{spec['attempt']}/memo")
        run = TaskRun(request=request, budget_s=spec["budget_s"], on_event=on_event, memo=memo)
        task = asyncio.ensure_future(self.runner(run))
        self._running[wid] = task
        try:
            result = await task
        except TaskFailedError as failure:
            return {"error": _error_dict(failure.error, code_of(failure.error).value[0])}
        finally:
            self._running.pop(wid, None)
        prefix = f"{spec['request_id']}/{spec['attempt']}"
        response_key = f"{prefix}/response.pb"
        # Stored a few at a time: on an object store each is a round trip, and the caller waits for all of them.
        uploads = asyncio.Semaphore(CONCURRENT_UPLOADS)

        async def upload(candidate_id: str, png: bytes) -> None:
            async with uploads:
                await asyncio.to_thread(self.blobs.put, f"{prefix}/candidates/{candidate_id}.png", png)

        await asyncio.gather(*(upload(cid, png) for cid, png in result.candidate_images.items()))
        result.response.ClearField("candidate_images")
        await asyncio.to_thread(self.blobs.put, response_key, result.response.SerializeToString())
        return {
            "response_key": response_key,
            "candidates": sorted(result.candidate_images),
            "degraded": result.response.degraded,
        }

    # The operations.

    @staticmethod
    async def _attempt_statuses(request_id: str, *, loaded: bool) -> list[WorkflowStatus]:
        """Every attempt's workflow of one request id: `<request_id>` and `<request_id>/<n>`."""
        statuses = await DBOS.list_workflows_async(
            workflow_ids=[request_id], name=WORKFLOW, load_input=loaded, load_output=loaded
        )
        statuses += await DBOS.list_workflows_async(
            workflow_id_prefix=f"{request_id}/", name=WORKFLOW, load_input=loaded, load_output=loaded
        )
        return statuses

    async def latest(self, request_id: str) -> Attempt | None:
        attempts = [Attempt.of(s) for s in await self._attempt_statuses(request_id, loaded=True)]
        return max(attempts, key=lambda a: a.attempt, default=None)

    async def _require(self, name: str) -> Attempt:
        request_id = request_id_of(name)
        attempt = await self.latest(request_id)
        if attempt is None:
            raise NotFoundError(f"no operation {bounded(name, 200)!r}")
        return attempt

    async def submit(
        self, request: inpaint_pb2.InpaintRequest, *, fresh_run: bool = False, budget_s: float = 0.0
    ) -> tuple[operations_pb2.Operation, bool]:
        """(the operation, whether it already existed with a complete result: a replay)."""
        if self.draining:
            raise service_errors.Unavailable("the server is shutting down; submit to another replica")
        check_request_id(request.request_id)
        request_settings(request.settings)
        if budget_s < 0 or budget_s != budget_s:
            raise InvalidInputError("budget_seconds", f"must be 0 (the default) or positive, got {budget_s}")
        inline = await asyncio.to_thread(self._inline, request)
        # The whole parse (images decoded): a bad input is INVALID_ARGUMENT now, not a failed operation later.
        await asyncio.to_thread(self.check_request, inline)
        task_id = request.task_id if request.WhichOneof("task") == "task_id" else ""
        digests = field_digests(inline, task_id)
        request_id = request.request_id or _digest("".join(sorted(digests.values())).encode())[:32]
        inline.request_id = request_id
        latest = await self.latest(request_id)
        attempt = 1
        if latest is not None:
            self._check_same(latest.spec, digests)
            if latest.active or (latest.complete and not fresh_run):
                return await self.operation_of(latest), latest.complete
            attempt = latest.attempt + 1
        queued = await DBOS.list_queued_workflows_async(queue_name=QUEUE, status="ENQUEUED", load_input=False)
        if len(queued) >= self.config.max_queued:
            raise service_errors.ResourceExhausted(
                f"{len(queued)} tasks are queued (at most {self.config.max_queued}); retry later"
            )
        request_key = await asyncio.to_thread(
            self.blobs.put, f"{request_id}/request-{attempt}.pb", inline.SerializeToString()
        )
        spec = {
            "request_id": request_id,
            "attempt": attempt,
            "request_key": request_key,
            "budget_s": budget_s or self.default_budget_s,
            "task_id": task_id,
            "digests": digests,
        }
        with SetWorkflowID(workflow_id(request_id, attempt)):
            await DBOS.enqueue_workflow_async(QUEUE, inpaint_task, spec)
        # Another replica may have enqueued this attempt first, with other inputs: the stored one wins.
        stored = await self.latest(request_id)
        assert stored is not None
        self._check_same(stored.spec, digests)
        log.info("submitted", extra=fields(request_id=request_id, attempt=stored.attempt))
        return await self.operation_of(stored), False

    def _inline(self, request: inpaint_pb2.InpaintRequest) -> inpaint_pb2.InpaintRequest:
        """The request with a task id resolved to its images: a task never depends on a replica's files."""
        inline = inpaint_pb2.InpaintRequest()
        inline.CopyFrom(request)
        if request.WhichOneof("task") == "task_id":
            init, mask, character = self.read_task_images(request.task_id)
            inline.images.init_image.data, inline.images.mask.data = init, mask
            inline.images.character_image.data = character
        elif request.WhichOneof("task") is None:
            raise InvalidInputError("task", "give either images or task_id")
        return inline

    @staticmethod
    def _check_same(stored: dict[str, Any], given: dict[str, str]) -> None:
        differs = first_difference(dict(stored.get("digests", {})), given)
        if differs is not None:
            raise InvalidInputError(
                differs, "differs from the request first submitted under this request_id (use another request_id)"
            )

    async def operation_of(self, attempt: Attempt) -> operations_pb2.Operation:
        status = attempt.status
        spec = attempt.spec
        state = attempt.state
        output = attempt.output
        metadata = operations_pb2.OperationMetadata(
            request_id=attempt.request_id,
            state=state,
            attempt=attempt.attempt,
            create_time_unix_ms=status.created_at or 0,
            update_time_unix_ms=status.updated_at or 0,
            executor=status.executor_id or "",
            task_id=spec.get("task_id", ""),
            budget_seconds=spec.get("budget_s", 0.0),
        )
        wid = status.workflow_id
        if state == operations_pb2.OPERATION_STATE_QUEUED:
            metadata.queue_position = await self.queue_position(wid)
        last = await asyncio.to_thread(self.tables.last_progress, wid)
        if last is not None:
            metadata.progress.CopyFrom(_event_message(last))
        operation = operations_pb2.Operation(name=operation_name(attempt.request_id), metadata=metadata)
        if attempt.active:
            return operation
        operation.done = True
        if "response_key" in output:
            data = await asyncio.to_thread(self.blobs.get, output["response_key"])
            operation.response.ParseFromString(data)
        elif "error" in output:
            error = output["error"]
            operation.error.CopyFrom(
                operations_pb2.OperationError(
                    code=error["code"], message=error["message"], reason=error["reason"], field=error["field"]
                )
            )
        elif status.status == "CANCELLED":
            operation.error.CopyFrom(
                operations_pb2.OperationError(code=1, message="the operation was cancelled", reason="CANCELLED")
            )
        else:
            message = bounded(f"{type(status.error).__name__}: {status.error}" if status.error else status.status)
            operation.error.CopyFrom(operations_pb2.OperationError(code=13, message=message, reason="INTERNAL"))
        return operation

    async def queue_position(self, wid: str) -> int:
        queued = await DBOS.list_queued_workflows_async(
            queue_name=QUEUE, status="ENQUEUED", load_input=False, load_output=False
        )
        ids = [s.workflow_id for s in queued]
        return ids.index(wid) + 1 if wid in ids else 0

    async def get(self, name: str) -> operations_pb2.Operation:
        return await self.operation_of(await self._require(name))

    async def watch(self, name: str) -> AsyncIterator[operations_pb2.OperationEvent]:
        """Progress so far, then each new event, then the finished operation (the last message)."""
        request_id = request_id_of(name)
        seen_workflow = ""
        seq = 0
        position: int | None = None
        while True:
            attempt = await self._require(name)
            wid = attempt.status.workflow_id
            if wid != seen_workflow:  # a new attempt: its own story from the start
                seen_workflow, seq, position = wid, 0, None
            if attempt.status.status in ("ENQUEUED", "DELAYED"):
                now = await self.queue_position(wid)
                if now != position:
                    position = now
                    yield operations_pb2.OperationEvent(queued=operations_pb2.QueueState(queue_position=now))
            for number, event in await asyncio.to_thread(self.tables.progress_after, wid, seq):
                seq = number
                yield operations_pb2.OperationEvent(progress=_event_message(event))
            if not attempt.active:
                final = await self.latest(request_id)
                assert final is not None
                if final.status.workflow_id == wid:
                    for _, event in await asyncio.to_thread(self.tables.progress_after, wid, seq):
                        yield operations_pb2.OperationEvent(progress=_event_message(event))
                    yield operations_pb2.OperationEvent(done=await self.operation_of(final))
                    return
                continue
            await asyncio.sleep(self.config.poll_s)

    async def cancel(self, name: str) -> operations_pb2.Operation:
        attempt = await self._require(name)
        wid = attempt.status.workflow_id
        if attempt.active:
            await DBOS.cancel_workflow_async(wid)
            task = self._running.get(wid)
            if task is not None:
                task.cancel()  # here: at once (elsewhere, that replica's _follow_cancellations)
            log.info("cancelled", extra=fields(request_id=attempt.request_id, workflow=wid))
        return await self.get(name)

    async def list_operations(
        self, filter_text: str, page_size: int, page_token: str
    ) -> tuple[list[operations_pb2.Operation], str]:
        states, prefix = parse_filter(filter_text)
        size = min(page_size or 50, 1000)
        try:
            offset = int(page_token or 0)
        except ValueError:
            raise InvalidInputError("page_token", "is not a token from a previous response") from None
        statuses = await DBOS.list_workflows_async(
            name=WORKFLOW, workflow_id_prefix=prefix or None, sort_desc=True, load_input=True, load_output=True
        )
        latest: dict[str, Attempt] = {}
        for status in statuses:
            attempt = Attempt.of(status)
            if attempt.request_id not in latest or latest[attempt.request_id].attempt < attempt.attempt:
                latest[attempt.request_id] = attempt
        matching = [
            attempt
            for attempt in sorted(latest.values(), key=lambda a: -(a.status.created_at or 0))
            if not states or attempt.state in states
        ]
        # Only the page's operations are built: each reads its result (images included) from the blob store.
        page = [await self.operation_of(attempt) for attempt in matching[offset : offset + size]]
        more = offset + size < len(matching)
        return page, str(offset + size) if more else ""

    async def delete(self, name: str) -> None:
        attempt = await self._require(name)
        if attempt.active:
            raise service_errors.FailedPrecondition(f"{bounded(name, 200)} is still running: cancel it first")
        await self._forget(attempt.request_id)

    async def _forget(self, request_id: str) -> None:
        ids = [s.workflow_id for s in await self._attempt_statuses(request_id, loaded=False)]
        await DBOS.delete_workflows_async(ids)
        await asyncio.to_thread(self.tables.delete_progress, ids)
        await asyncio.to_thread(self.blobs.delete_prefix, request_id)

    async def stored_candidates(self, name: str) -> list[str]:
        """The ids of the candidates whose images a finished operation kept."""
        return list((await self._require(name)).output.get("candidates", []))

    async def candidate_image(self, name: str, candidate_id: str) -> bytes:
        attempt = await self._require(name)
        if attempt.active or "response_key" not in attempt.output:
            raise service_errors.FailedPrecondition(f"{bounded(name, 200)} has no result yet")
        if candidate_id not in attempt.output.get("candidates", []):
            raise InvalidInputError("candidate_id", f"no candidate {bounded(candidate_id, 80)!r} in {name}")
        prefix = f"{attempt.request_id}/{attempt.attempt}"
        try:
            return await asyncio.to_thread(self.blobs.get, f"{prefix}/candidates/{candidate_id}.png")
        except BlobNotFoundError:
            raise NotFoundError(f"the image of {candidate_id!r} has expired") from None

    async def sweep(self) -> int:
        """Delete finished operations older than the retention, with their images; how many.

        DBOS's SQLite timestamps have a resolution of one second: retention is not meant to be finer.
        """
        cutoff_ms = (time.time() - self.config.retention_s) * 1000
        statuses = await DBOS.list_workflows_async(
            name=WORKFLOW, status=["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"],
            load_input=False, load_output=False,
        )  # fmt: skip
        expired = {s.workflow_id.partition("/")[0] for s in statuses if (s.updated_at or 0) < cutoff_ms}
        deleted = 0
        for request_id in sorted(expired):
            latest = await self.latest(request_id)
            if latest is not None and not latest.active and (latest.status.updated_at or 0) < cutoff_ms:
                await self._forget(request_id)
                deleted += 1
        if deleted:
            log.info("expired operations deleted", extra=fields(count=deleted))
        return deleted


def parse_filter(text: str) -> tuple[set[int], str]:
    states: set[int] = set()
    prefix = ""
    for term in filter(None, (t.strip() for t in text.replace(" and ", " AND ").split(" AND "))):
        key, sep, value = (part.strip() for part in term.partition("="))
        if not sep:
            raise InvalidInputError("filter", f"term {bounded(term, 80)!r} is not key=value")
        if key == "state":
            for state in value.split("|"):
                if state.strip().upper() not in _FILTER_STATES:
                    raise InvalidInputError(
                        "filter", f"state {bounded(state, 40)!r} is not one of {sorted(_FILTER_STATES)}"
                    )
                states.add(_FILTER_STATES[state.strip().upper()])
        elif key == "request_id_prefix":
            prefix = value
        else:
            raise InvalidInputError("filter", f"unknown key {bounded(key, 40)!r} (state, request_id_prefix)")
    return states, prefix


def _event_dict(event: inpaint_pb2.ProgressEvent) -> dict[str, Any]:
    from google.protobuf import json_format

    return dict(json_format.MessageToDict(event))


def _event_message(event: dict[str, Any]) -> inpaint_pb2.ProgressEvent:
    from google.protobuf import json_format

    return json_format.ParseDict(event, inpaint_pb2.ProgressEvent())


def _stop_dequeuing() -> None:
    """Stop this process's DBOS queue thread (DBOS 3.4 has no public call for it; `_dbos.py` `_launch`
    starts `queue_thread` with its own stop event, kept in `background_thread_stop_events`)."""
    from dbos import _dbos
    from dbos._queue import queue_thread

    instance = _dbos._dbos_global_instance
    if instance is None:
        return
    for thread in instance._background_threads:
        if getattr(thread, "_target", None) is queue_thread:
            thread._args[0].set()  # type: ignore[attr-defined]  # threading.Thread(target=queue_thread, args=(evt, self))


__all__ = [
    "NAME_PREFIX",
    "NotFoundError",
    "OperationsEngine",
    "RunResult",
    "TaskFailedError",
    "TaskRun",
    "TaskRunner",
    "operation_name",
]
