"""The grpc.aio server every model server runs: limits, interceptor, health, reflection, metrics, drain.

Life of a process:
  1. metrics on their own port; the gRPC port bound; health NOT_SERVING for "" and every service;
  2. `load()` runs in a thread (the model loads while health checks already answer);
  3. health SERVING;
  4. SIGTERM or SIGINT: health NOT_SERVING, no new calls, in-flight calls finish within the grace, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from servers.common.cancellation import CancelToken
from servers.common.errors import Unavailable
from servers.common.interceptor import CallTracker, ErrorStatus, ServiceInterceptor
from servers.common.logs import fields, get_logger
from servers.common.metrics import ServerMetrics
from servers.common.settings import ServerSettings
from servers.common.work_queue import WorkQueue

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def token_for(context: grpc.aio.ServicerContext[Any, Any]) -> CancelToken:
    """A CancelToken carrying the caller's deadline and cancelled when the call ends early."""
    token = CancelToken(context.time_remaining())

    def on_done(ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        if ctx.cancelled():
            token.cancel("the caller cancelled the call")

    context.add_done_callback(on_done)  # type: ignore[arg-type]  # the stub types the callback as a class
    return token


def connection_age_options(age_s: float, grace_s: float) -> list[tuple[str, int]]:
    """Close each client connection after `age_s` (+ `grace_s` for calls in flight): clients re-resolve DNS
    only when a connection closes, so without this, replicas added behind a headless Service get no traffic."""
    if age_s <= 0:
        return []
    return [
        ("grpc.max_connection_age_ms", int(age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(grace_s * 1000)),
    ]


class ModelServer:
    """Owns the transport-level pieces. A component creates one, registers its servicer, and runs `serve`."""

    def __init__(self, name: str, config: ServerSettings, error_status: ErrorStatus | None = None) -> None:
        """`error_status`: how an error becomes the call's status, when a service wants more than its code and
        message (the orchestrator adds google.rpc details)."""
        self.name = name
        self.config = config
        self.error_status = error_status
        self.log = get_logger(name)
        self.metrics = ServerMetrics(name)
        self.work = WorkQueue(config.max_concurrent, config.max_queue, self.metrics)
        self.ready = False
        self._loading = True
        self.not_ready_reason = "the model is still loading"
        self.draining = False
        # Created in serve(): grpc.aio objects belong to the event loop that runs them.
        self.health: HealthServicer | None = None
        self.server: grpc.aio.Server | None = None
        self.service_names: list[str] = []
        self._registrations: list[Callable[[grpc.aio.Server], None]] = []
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self.calls = CallTracker()
        self.port = 0

    def add_service(self, full_name: str, register: Callable[[grpc.aio.Server], None]) -> None:
        """`register` is the generated `add_<Service>Servicer_to_server` bound to a servicer; call before serve()."""
        self._registrations.append(register)
        self.service_names.append(full_name)

    def require_ready(self) -> None:
        """Servicers call this first: no model, a dependency away, or draining, means UNAVAILABLE."""
        if self.draining:
            raise Unavailable("the server is shutting down")
        if not self.ready:
            raise Unavailable(self.not_ready_reason)

    async def set_serving(self, serving: bool, reason: str = "") -> None:
        """Readiness that follows a dependency: NOT_SERVING (and UNAVAILABLE) while it is away, SERVING when back."""
        if self.draining or self._loading or self.ready == serving:
            return
        self.ready = serving
        self.not_ready_reason = reason or "a dependency is unavailable"
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self._set_health(status)
        if serving:
            self.log.info("serving again")
        else:
            self.log.warning("not serving", extra=fields(reason=self.not_ready_reason))

    async def _set_health(self, status: Any) -> None:
        assert self.health is not None
        for service in ["", *self.service_names]:
            await self.health.set(service, status)

    def request_stop(self) -> None:
        """Begin the graceful drain (what SIGTERM does). Call from the event loop's thread."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()

    async def serve(self, load: Callable[[], object], bound: Callable[[int], None] | None = None) -> None:
        """Serve until SIGTERM/SIGINT or `request_stop()`. `load` blocks (runs in a thread); `bound` gets the port."""
        config = self.config
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self.health = HealthServicer()
        self.server = server = grpc.aio.server(
            interceptors=[ServiceInterceptor(self.metrics, self.log, self.calls, self.error_status)],
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.max_send_message_length", config.max_message_bytes),
                *connection_age_options(config.max_connection_age_s, config.max_connection_age_grace_s),
            ],
        )
        for register in self._registrations:
            register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection([*self.service_names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.metrics.serve(config.host, config.metrics_port)
        self.port = server.add_insecure_port(f"{config.host}:{config.port}")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not possible outside the main thread (in-process tests call request_stop instead).
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await server.start()
        if bound is not None:
            bound(self.port)
        self.log.info(
            "listening", extra=fields(port=self.port, metrics_port=config.metrics_port, services=self.service_names)
        )
        try:
            await self._load_then_wait(load)
        finally:
            await self._drain()

    async def _load_then_wait(self, load: Callable[[], object]) -> None:
        started = time.monotonic()
        loading = asyncio.ensure_future(asyncio.to_thread(load))
        assert self._stop is not None
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({loading, stop}, return_when=asyncio.FIRST_COMPLETED)
        if loading in done:
            loading.result()  # a failed load ends the process with its error
            self.ready = True
            self._loading = False
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)
            self.log.info("serving", extra=fields(load_s=round(time.monotonic() - started, 3)))
            await stop
        else:
            self.log.info("stop requested while loading")
            loading.cancel()

    async def _drain(self) -> None:
        self.draining = True
        self.calls.draining = True  # new model calls get UNAVAILABLE from here on
        started = time.monotonic()
        assert self.health is not None and self.server is not None
        await self.health.enter_graceful_shutdown()
        grace = self.config.drain_grace_s
        self.log.info(
            "draining",
            extra=fields(calls=self.calls.active, running=self.work.running, waiting=self.work.waiting, grace_s=grace),
        )
        try:
            await asyncio.wait_for(self.calls.wait_idle(), timeout=grace)
        except TimeoutError:
            self.log.warning("drain grace expired", extra=fields(calls_cancelled=self.calls.active))
        # What is left are health watches and reflection streams (or calls past the grace): end them.
        await self.server.stop(1.0)
        self.work.shutdown()
        self.metrics.close()
        self.log.info("stopped", extra=fields(drain_s=round(time.monotonic() - started, 3)))


def run_server(server: ModelServer, load: Callable[[], object]) -> None:
    """Entry point for `__main__`: run the event loop until the drain completes."""
    asyncio.run(server.serve(load))
