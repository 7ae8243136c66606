"""The public gRPC service: `python -m orchestrator.service [--port 50050] [--triton-url ...] ...`.

A thin shell around `InpaintPipeline` on the shared server scaffolding (health SERVING once Triton's
face models answer, reflection, metrics, bounded concurrency, graceful SIGTERM drain). Settings:
see `orchestrator/config.py` (flags, INPAINT_* environment, or a TOML/JSON file). The Gemini key
comes from GEMINI_API_KEY or `--gemini-key-file`, never from a flag here (flags show in `ps`).
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
import grpc.aio
from inpaint.v1 import inpaint_pb2, inpaint_pb2_grpc
from prometheus_client import CollectorRegistry, Counter

from orchestrator import api
from orchestrator.config import OrchestratorConfig
from orchestrator.errors import DeadlineExceededError, InvalidInputError, ModelUnavailableError, NoFaceError
from orchestrator.pipeline import InpaintOutcome, InpaintPipeline
from orchestrator.requests import fingerprint, parse_request, parse_settings
from orchestrator.search import ProgressEvent, SearchConfigError
from orchestrator.search.signals import REALISM
from orchestrator.tasks import TaskStore
from servers.common import errors as service_errors
from servers.common.interceptor import status_for
from servers.common.logs import configure_logging, fields
from servers.common.server import ModelServer
from servers.common.settings import ConfigError, load_settings

SERVICE_NAME = "inpaint.v1.InpaintService"
T = TypeVar("T")


def to_service_error(error: Exception) -> service_errors.ServiceError:
    """Domain errors to the scaffolding's typed errors (which the interceptor maps to status codes)."""
    if isinstance(error, service_errors.ServiceError):
        return error
    if isinstance(error, InvalidInputError):
        return service_errors.InvalidArgument(error.field, error.problem)
    if isinstance(error, SearchConfigError):
        return service_errors.InvalidArgument(f"settings.{error.field}", error.problem)
    if isinstance(error, NoFaceError):
        return service_errors.FailedPrecondition(str(error))
    if isinstance(error, ModelUnavailableError):
        return service_errors.Unavailable(str(error))
    if isinstance(error, DeadlineExceededError):
        return service_errors.DeadlineExceeded(str(error))
    return service_errors.Internal(f"{type(error).__name__}: {error}")


class ResultCache:
    """Idempotency by request_id: finished responses (LRU) and in-flight runs, with their fingerprints."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._done: collections.OrderedDict[str, tuple[str, inpaint_pb2.InpaintResponse]] = collections.OrderedDict()
        self._running: dict[str, tuple[str, asyncio.Future[inpaint_pb2.InpaintResponse]]] = {}

    def _check(self, stored: str, fingerprint: str) -> None:
        if stored != fingerprint:
            raise InvalidInputError("request_id", "was already used for a different request")

    async def run(
        self, request_id: str, fingerprint: str, work: Callable[[], Awaitable[inpaint_pb2.InpaintResponse]]
    ) -> inpaint_pb2.InpaintResponse:
        if request_id in self._done:
            stored, response = self._done[request_id]
            self._check(stored, fingerprint)
            self._done.move_to_end(request_id)
            replay = inpaint_pb2.InpaintResponse()
            replay.CopyFrom(response)
            replay.replayed = True
            return replay
        if request_id in self._running:
            stored, running = self._running[request_id]
            self._check(stored, fingerprint)
            result = await asyncio.shield(running)
            replay = inpaint_pb2.InpaintResponse()
            replay.CopyFrom(result)
            replay.replayed = True
            return replay
        future: asyncio.Future[inpaint_pb2.InpaintResponse] = asyncio.get_running_loop().create_future()
        self._running[request_id] = (fingerprint, future)
        try:
            response = await work()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: a failed run must not be reported as never awaited
            raise
        finally:
            self._running.pop(request_id, None)
        future.set_result(response)
        # Kept for replays without the candidates' images (several MB each): the final image, the
        # mask and the ledger are what a retry needs.
        kept = inpaint_pb2.InpaintResponse()
        kept.CopyFrom(response)
        kept.ClearField("candidate_images")
        self._done[request_id] = (fingerprint, kept)
        while len(self._done) > self.size:
            self._done.popitem(last=False)
        return response


def _with_request_id(request: inpaint_pb2.InpaintRequest, request_id: str) -> inpaint_pb2.InpaintRequest:
    named = inpaint_pb2.InpaintRequest()
    named.CopyFrom(request)
    named.request_id = request_id
    return named


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
    def __init__(self, server: ModelServer, config: OrchestratorConfig, pipeline: InpaintPipeline) -> None:
        self.server = server
        self.config = config
        self.pipeline = pipeline
        self.tasks = TaskStore(config.task_store)
        self.results = ResultCache(config.result_cache_size)
        self.task_metrics = TaskMetrics(server.metrics.registry)

    async def _run(
        self,
        request: inpaint_pb2.InpaintRequest,
        context: grpc.aio.ServicerContext[Any, Any],
        on_event: Callable[[ProgressEvent], None] | None,
    ) -> inpaint_pb2.InpaintResponse:
        self.server.require_ready()
        try:
            request_id, _ = parse_settings(request)  # the cheap checks, before any slot is taken
        except InvalidInputError as error:
            raise to_service_error(error) from error
        if not request.request_id:
            request = _with_request_id(request, request_id)
        time_remaining = context.time_remaining()

        async def work() -> inpaint_pb2.InpaintResponse:
            task = await asyncio.to_thread(parse_request, request, self.config, self.tasks, time_remaining)
            outcome = await self.pipeline.run(task, on_event=on_event)
            self.task_metrics.record(outcome)
            self.server.log.info(
                "task done",
                extra=fields(
                    request_id=request_id,
                    best=outcome.ledger.best_id,
                    degraded=outcome.degraded,
                    total_s=round(outcome.timings_s["total"], 3),
                ),
            )
            return await asyncio.to_thread(api.response, outcome, task.return_candidate_images)

        try:
            # Replays are answered before admission: they need no slot and must not be refused for load.
            return await self.results.run(
                request_id, fingerprint(request), lambda: self.server.work.run_coroutine(work)
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise to_service_error(error) from error

    async def Inpaint(
        self, request: inpaint_pb2.InpaintRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inpaint_pb2.InpaintResponse:
        return await self._run(request, context, None)

    async def StreamInpaint(
        self, request: inpaint_pb2.StreamInpaintRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[inpaint_pb2.StreamInpaintResponse]:
        events: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        run = asyncio.ensure_future(self._run(request.request, context, events.put_nowait))
        try:
            while not run.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield inpaint_pb2.StreamInpaintResponse(progress=api.progress(getter.result()))
                else:
                    getter.cancel()
            result = run.result()
        except service_errors.ServiceError as error:
            # The interceptor maps unary calls; a stream reports its error itself, the same way.
            await context.abort(status_for(error), str(error))
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
    configure_logging(config.log_level)
    server = ModelServer("orchestrator", config)
    pipeline = InpaintPipeline(config)
    servicer = InpaintServicer(server, config, pipeline)
    server.add_service(SERVICE_NAME, lambda s: inpaint_pb2_grpc.add_InpaintServiceServicer_to_server(servicer, s))

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
        await server.serve(load_then_probe)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
