"""The public gRPC service: `python -m orchestrator.service [--port 50050] [--triton-url ...] ...`.

Two services on the shared server scaffolding (health SERVING once Triton's face models answer,
reflection, metrics, graceful SIGTERM drain): `inpaint.v1.OperationsService` (tasks as long-running
operations, `orchestrator/operations/`) and `inpaint.v1.InpaintService`, whose `Inpaint` and
`StreamInpaint` are conveniences built on submit + watch. Tasks run as durable workflows on a queue shared
by every replica of one database (`--operations.database-url`), at most `--operations.worker-concurrency`
at once per replica. Settings:
see `orchestrator/config.py` (flags, INPAINT_* environment, or a TOML/JSON file). The Gemini key
comes from GEMINI_API_KEY or `--gemini-key-file`, never from a flag here (flags show in `ps`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
from inpaint.v1 import image_pb2, inpaint_pb2, inpaint_pb2_grpc, operations_pb2_grpc
from prometheus_client import CollectorRegistry, Counter

from orchestrator.config import OrchestratorConfig
from orchestrator.errors import ModelUnavailableError
from orchestrator.operations.blobs import BlobStoreError
from orchestrator.operations.engine import OperationsEngine
from orchestrator.operations.runner import PipelineRunner, queued_event
from orchestrator.operations.servicer import SERVICE_NAME as OPERATIONS_SERVICE_NAME
from orchestrator.operations.servicer import OperationsServicer
from orchestrator.operations.status import error_from_code, error_status
from orchestrator.pipeline import InpaintOutcome, InpaintPipeline
from orchestrator.requests import parse_request
from orchestrator.search.signals import REALISM
from orchestrator.tasks import TaskStore
from orchestrator.tracing import configure_tracing
from servers.common.auth import AuthConfigError, Authenticator
from servers.common.logs import configure_logging, fields
from servers.common.server import ModelServer
from servers.common.settings import ConfigError, load_settings

SERVICE_NAME = "inpaint.v1.InpaintService"
# Domain errors map to status codes in one place, `orchestrator/operations/status.py`.
__all__ = ["InpaintServicer", "TaskMetrics", "main"]


# The conveniences' task budget is the caller's time left less this, for the queue's dispatch and the reply.
DISPATCH_ALLOWANCE_S = 0.3


class TaskMetrics:
    """What the alerts read: degraded results, and where each candidate's realism came from."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.results = Counter(
            "results", "Finished searches, by whether the result was degraded", ["degraded"],
            namespace="orchestrator", registry=registry,
        )  # fmt: skip
        self.realism_scores = Counter(
            "realism_scores", "Candidates' realism scores by source: gemini, or fallback (local stand-in)",
            ["source"], namespace="orchestrator", registry=registry,
        )  # fmt: skip

    def record(self, outcome: InpaintOutcome) -> None:
        self.results.labels(degraded=str(outcome.degraded).lower()).inc()
        for candidate in outcome.ledger.candidates:
            for score in candidate.scores:
                if score.signal == REALISM:
                    gemini = score.source.startswith("gemini") and not score.fallback
                    self.realism_scores.labels(source="gemini" if gemini else "fallback").inc()


class InpaintServicer(inpaint_pb2_grpc.InpaintServiceServicer):
    """Inpaint and StreamInpaint: submit, then watch until done.

    The call is one watcher of the operation: its end (cancelled, or its deadline) does not stop the task,
    which other callers of the same request id may share; CancelOperation does. A caller that joins a task
    running with a shorter budget than its own, and gets a result cut short by that budget, has it run again
    with its own (a degraded result is never replayed by default).
    """

    def __init__(self, server: ModelServer, engine: OperationsEngine) -> None:
        self.server = server
        self.engine = engine

    async def _complete(
        self,
        request: inpaint_pb2.InpaintRequest,
        context: grpc.aio.ServicerContext[Any, Any],
        on_progress: Callable[[inpaint_pb2.ProgressEvent], None] | None,
    ) -> inpaint_pb2.InpaintResponse:
        self.server.require_ready()
        remaining = context.time_remaining()
        budget = 0.0 if remaining is None else max(remaining - DISPATCH_ALLOWANCE_S, 0.01)
        while True:
            operation, replayed = await self.engine.submit(request, budget_s=budget)
            done = None
            async for event in self.engine.watch(operation.name):
                if event.HasField("done"):
                    done = event.done
                elif on_progress is not None:
                    on_progress(
                        event.progress if event.HasField("progress") else queued_event(event.queued.queue_position)
                    )
            assert done is not None
            left = context.time_remaining()
            cut_short = done.response.degraded or done.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            joined_a_shorter_run = done.metadata.budget_seconds + 1.0 < budget and (left is None or left > 1.0)
            if cut_short and joined_a_shorter_run:
                budget = 0.0 if left is None else max(left - DISPATCH_ALLOWANCE_S, 0.01)
                continue
            if done.HasField("error"):
                raise error_from_code(done.error.code, done.error.message, done.error.field)
            response = inpaint_pb2.InpaintResponse()
            response.CopyFrom(done.response)
            response.replayed = replayed
            if request.return_candidate_images:
                for candidate_id in await self.engine.stored_candidates(operation.name):
                    data = await self.engine.candidate_image(operation.name, candidate_id)
                    response.candidate_images.add(
                        candidate_id=candidate_id, image=image_pb2.Image(data=data, mime_type="image/png")
                    )
            return response

    async def Inpaint(
        self, request: inpaint_pb2.InpaintRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inpaint_pb2.InpaintResponse:
        return await self._complete(request, context, None)

    async def StreamInpaint(
        self, request: inpaint_pb2.StreamInpaintRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[inpaint_pb2.StreamInpaintResponse]:
        events: asyncio.Queue[inpaint_pb2.ProgressEvent] = asyncio.Queue()
        run = asyncio.ensure_future(self._complete(request.request, context, events.put_nowait))
        try:
            while not run.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield inpaint_pb2.StreamInpaintResponse(progress=getter.result())
                else:
                    getter.cancel()
            result = run.result()
        finally:
            run.cancel()
        yield inpaint_pb2.StreamInpaintResponse(result=result)


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_settings(OrchestratorConfig, sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        # A bad setting stops the process here, before it reports SERVING and refuses every request.
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    try:
        auth = Authenticator.from_config(config.auth)
    except AuthConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    configure_tracing(config.tracing)
    server = ModelServer("orchestrator", config, error_status=error_status)
    pipeline = InpaintPipeline(config)
    task_metrics = TaskMetrics(server.metrics.registry)
    store = TaskStore(config.task_store)

    def report_load(running: int, queued_per_replica: float) -> None:
        # What the HorizontalPodAutoscaler reads (deploy/components/monitoring): tasks in flight on this
        # replica and its share of the queue.
        server.metrics.in_flight.set(running)
        server.metrics.queue_depth.set(queued_per_replica)

    try:
        engine = OperationsEngine(
            config.operations,
            PipelineRunner(pipeline, config, on_outcome=task_metrics.record),
            port=config.port,
            read_task_images=lambda task_id: store.find(task_id).read(),
            # The whole parse at submission (images decoded): bad inputs are refused before anything is queued.
            check_request=lambda request: parse_request(request, config, store),
            default_budget_s=config.default_deadline_s,
            report_load=report_load,
        )
    except BlobStoreError as error:
        # An object store that does not answer stops the replica before it reports SERVING.
        print(f"blob store error: {error}", file=sys.stderr)
        return 1
    servicer = InpaintServicer(server, engine)
    operations = OperationsServicer(server, engine)
    server.add_service(
        SERVICE_NAME, lambda s: inpaint_pb2_grpc.add_InpaintServiceServicer_to_server(servicer, auth.guard(s))
    )
    server.add_service(
        OPERATIONS_SERVICE_NAME,
        lambda s: operations_pb2_grpc.add_OperationsServiceServicer_to_server(operations, auth.guard(s)),
    )

    def load() -> None:
        # "Loaded" means Triton's face models answer: without them no task can run. Triton may start
        # after us (a fresh stack, a rolling update), so wait for it, within bounds.
        deadline = time.monotonic() + config.triton.startup_wait_s
        while True:
            try:
                pipeline.check_ready()
                break
            except ModelUnavailableError as error:
                if time.monotonic() > deadline:
                    raise
                server.log.info("waiting for triton", extra=fields(detail=str(error)))
                time.sleep(2.0)
        server.log.info(
            "ready",
            extra=fields(
                triton=config.triton.url,
                qwen_edit=config.qwen_edit.target,
                moondream=config.moondream.target,
                gemini_key=pipeline.gemini.has_key,
                stand_ins=pipeline.triton_standins,
            ),
        )

    for warning in config.gemini.check_models():
        server.log.warning("gemini model", extra=fields(detail=warning))

    async def serve() -> None:
        loop = asyncio.get_running_loop()

        async def probe() -> None:
            models = await pipeline.probe_models(config.probe_wait_s)
            server.log.info("models", extra=fields(**models))

        async def follow_triton() -> None:
            # Readiness follows the one hard dependency: NOT_SERVING while Triton's face models are away
            # (a load balancer stops sending tasks that could only fail), SERVING again when they are back.
            while not server.draining:
                await asyncio.sleep(config.readiness_interval_s)
                try:
                    await asyncio.to_thread(pipeline.triton.check_ready)
                except ModelUnavailableError as error:
                    await server.set_serving(False, str(error))
                else:
                    await server.set_serving(True)

        def load_then_probe() -> None:
            load()
            # Which weights serve this stack, in the start-up log; in the background, because only
            # Triton is needed to serve (the other servers degrade the result when missing).
            asyncio.run_coroutine_threadsafe(probe(), loop)
            asyncio.run_coroutine_threadsafe(follow_triton(), loop)

        # Blocking calls (Triton, Moondream, image work) run in threads: enough of them that a slow
        # dependency cannot starve the rest.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=config.worker_threads, thread_name_prefix="work"))
        # DBOS runs the queued tasks on this loop (the one it is launched from), beside the gRPC server.
        await engine.start()

        async def drain_on_sigterm() -> None:
            # The scaffolding owns SIGTERM; once it starts draining, this replica takes no more tasks. Its
            # running tasks go on while the drain grace lasts (unary callers wait for them).
            while not server.draining:
                await asyncio.sleep(config.operations.poll_s)
            engine.stop_taking_work()

        draining = loop.create_task(drain_on_sigterm())
        try:
            await server.serve(load_then_probe)
        finally:
            draining.cancel()
            # Whatever still runs is handed back: another replica resumes it from its checkpoints.
            await engine.stop(grace_s=0.0)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
