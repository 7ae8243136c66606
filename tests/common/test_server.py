"""The shared server scaffolding, in process, with a fake model behind a generic (bytes in, bytes out) RPC."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2

from servers.common.errors import InvalidArgument
from servers.common.interceptor import ErrorStatus
from servers.common.server import ModelServer, token_for
from servers.common.settings import ServerSettings
from stack.process import CHANNEL_OPTIONS, free_port, health_check, health_watch

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class FakeModel:
    """Loads when told to; `block` work runs until released, checking its token between 'steps'."""

    load_released: threading.Event = field(default_factory=threading.Event)
    work_released: threading.Event = field(default_factory=threading.Event)
    work_started: threading.Event = field(default_factory=threading.Event)
    steps: int = 0

    def load(self) -> None:
        assert self.load_released.wait(10), "the test never released the load"

    def blocking_work(self, check: Callable[[], None]) -> bytes:
        self.work_started.set()
        while not self.work_released.wait(0.01):
            self.steps += 1
            check()
        return b"done"


class InProcessServer:
    def __init__(self, error_status: ErrorStatus | None = None, **config: Any) -> None:
        self.model = FakeModel()
        self.config = ServerSettings(port=0, metrics_port=free_port(), **config)
        self.server = ModelServer("fake", self.config, error_status=error_status)
        self.server.add_service("test.Fake", self._register)
        self.bound = threading.Event()
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _register(self, server: grpc.aio.Server) -> None:
        async def run(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.server.require_ready()
            command = request[:16].rstrip(b"\0").decode()
            if command == "invalid":
                raise InvalidArgument("seeds", "is empty")
            if command == "crash":
                raise RuntimeError("a bug")
            token = token_for(context)
            if command == "block":
                return await self.server.work.run(lambda: self.model.blocking_work(token.check), token)
            return await self.server.work.run(lambda: request, token)

        async def stream(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
            """Progress messages, the last one after the (blocking) work: a server stream like StreamInpaint."""
            self.server.require_ready()
            if request == b"invalid":
                raise InvalidArgument("seeds", "is empty")
            yield b"started"
            token = token_for(context)
            yield await self.server.work.run(lambda: self.model.blocking_work(token.check), token)

        handler = grpc.method_handlers_generic_handler(
            "test.Fake",
            {
                "Run": grpc.unary_unary_rpc_method_handler(run),
                "Stream": grpc.unary_stream_rpc_method_handler(stream),
            },
        )
        server.add_generic_rpc_handlers((handler,))

    def _run(self) -> None:
        def on_bound(port: int) -> None:
            self.port = port
            self.bound.set()

        try:
            self.loop.run_until_complete(self.server.serve(self.model.load, bound=on_bound))
        except BaseException as e:
            self.error = e
        finally:
            self.bound.set()

    def start(self) -> InProcessServer:
        self.thread.start()
        assert self.bound.wait(10)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=CHANNEL_OPTIONS)
        self.call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self.channel.unary_unary("/test.Fake/Run")
        self.stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = self.channel.unary_stream("/test.Fake/Stream")
        return self

    def health(self) -> int:
        return int(health_check(self.channel)(health_pb2.HealthCheckRequest(service="test.Fake"), timeout=5).status)

    def wait_health(self, status: int) -> None:
        deadline = time.monotonic() + 10
        while self.health() != status:
            assert time.monotonic() < deadline, f"health never became {status}"
            time.sleep(0.01)

    def request_stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.request_stop)

    def stop(self) -> None:
        self.model.load_released.set()
        self.model.work_released.set()
        if self.thread.is_alive():
            self.request_stop()
            self.thread.join(30)
        self.channel.close()


@pytest.fixture
def fake() -> Iterator[InProcessServer]:
    server = InProcessServer(max_concurrent=1, max_queue=1, drain_grace_s=20).start()
    yield server
    server.stop()


@pytest.fixture
def ready(fake: InProcessServer) -> InProcessServer:
    fake.model.load_released.set()
    fake.wait_health(SERVING)
    return fake


def error_of(call: Callable[[], object]) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("expected an RPC error")


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_not_serving_and_unavailable_until_the_model_loads(fake: InProcessServer) -> None:
    assert fake.health() == NOT_SERVING
    error = error_of(lambda: fake.call(b"echo", timeout=5))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "loading" in (error.details() or "")

    fake.model.load_released.set()
    fake.wait_health(SERVING)

    assert fake.call(b"echo", timeout=5) == b"echo"


def test_domain_errors_become_status_codes(ready: InProcessServer) -> None:
    invalid = error_of(lambda: ready.call(b"invalid", timeout=5))
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.details() == "seeds: is empty"

    crash = error_of(lambda: ready.call(b"crash", metadata=(("x-request-id", "req-42"),), timeout=5))
    assert crash.code() == grpc.StatusCode.INTERNAL
    assert crash.details() == "internal error (request id req-42)"  # no internals leak to the caller


def test_request_id_is_echoed(ready: InProcessServer) -> None:
    _, call = ready.call.with_call(b"echo", metadata=(("x-request-id", "abc123"),), timeout=5)

    assert ("x-request-id", "abc123") in tuple(call.initial_metadata() or ())


def test_messages_larger_than_grpcs_default_limit(ready: InProcessServer) -> None:
    payload = b"echo" + bytes(20 * 1024 * 1024)

    assert len(ready.call(payload, timeout=30)) == len(payload)


def test_one_at_a_time_with_a_bounded_queue(ready: InProcessServer) -> None:
    running = ready.call.future(b"block", timeout=30)
    assert ready.model.work_started.wait(10)
    queued = ready.call.future(b"echo", timeout=30)
    wait_until(lambda: ready.server.work.waiting == 1)

    refused = error_of(lambda: ready.call(b"echo", timeout=5))

    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not queued.done()  # waits for the device, not run beside the blocked call
    ready.model.work_released.set()
    assert running.result(timeout=10) == b"done"
    assert queued.result(timeout=10) == b"echo"
    assert ready.server.metrics.rejected._value.get() == 1


def test_deadline_stops_the_work_between_steps(ready: InProcessServer) -> None:
    error = error_of(lambda: ready.call(b"block", timeout=0.3))

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: ready.server.work.running == 0)
    assert ready.server.metrics.stopped_work._value.get() == 1
    recorded = ready.server.metrics.requests.labels(method="/test.Fake/Run", code="DEADLINE_EXCEEDED")
    wait_until(lambda: recorded._value.get() == 1)
    steps = ready.model.steps
    time.sleep(0.1)  # no step may happen after the stop
    assert ready.model.steps == steps
    assert ready.call(b"echo", timeout=5) == b"echo"


def test_client_cancellation_stops_the_work(ready: InProcessServer) -> None:
    future = ready.call.future(b"block", timeout=30)
    assert ready.model.work_started.wait(10)

    future.cancel()

    wait_until(lambda: ready.server.work.running == 0)
    assert ready.server.metrics.stopped_work._value.get() == 1


def test_drain_finishes_in_flight_work_refuses_new_calls_and_returns(ready: InProcessServer) -> None:
    statuses: list[int] = []

    def watch() -> None:
        try:
            for response in health_watch(ready.channel)(health_pb2.HealthCheckRequest(service="test.Fake")):
                statuses.append(int(response.status))
        except grpc.RpcError:
            pass

    threading.Thread(target=watch, daemon=True).start()
    wait_until(lambda: statuses[-1:] == [SERVING])
    in_flight = ready.call.future(b"block", timeout=30)
    assert ready.model.work_started.wait(10)

    ready.request_stop()

    wait_until(lambda: NOT_SERVING in statuses)
    refused = error_of(lambda: ready.call(b"echo", timeout=5))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert ready.thread.is_alive() and not in_flight.done()
    ready.model.work_released.set()
    assert in_flight.result(timeout=10) == b"done"
    ready.thread.join(10)
    assert not ready.thread.is_alive()
    assert ready.error is None


def test_metrics_are_served_on_their_own_port(ready: InProcessServer) -> None:
    import urllib.request

    ready.call(b"echo", timeout=5)
    error_of(lambda: ready.call(b"invalid", timeout=5))

    with urllib.request.urlopen(f"http://127.0.0.1:{ready.config.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'fake_requests_total{code="OK",method="/test.Fake/Run"} 1.0' in text
    assert 'fake_requests_total{code="INVALID_ARGUMENT",method="/test.Fake/Run"} 1.0' in text
    assert "fake_request_latency_seconds_bucket" in text
    assert "fake_queue_depth 0.0" in text


def test_a_stream_in_flight_is_drained_not_cut(ready: InProcessServer) -> None:
    """Before: SIGTERM cut a StreamInpaint 22 events in with UNAVAILABLE "Cancelling all calls"."""
    received: list[bytes] = []
    finished = threading.Event()
    failure: list[grpc.RpcError] = []

    def consume() -> None:
        try:
            received.extend(ready.stream(b"block", timeout=30))
        except grpc.RpcError as error:
            failure.append(error)
        finished.set()

    threading.Thread(target=consume, daemon=True).start()
    assert ready.model.work_started.wait(10)
    ready.request_stop()
    time.sleep(1.5)  # past the 1 s that ending the server leaves unfinished calls: still open
    assert ready.thread.is_alive() and not finished.is_set()
    ready.model.work_released.set()
    assert finished.wait(10)
    assert failure == [] and received == [b"started", b"done"]
    ready.thread.join(10)
    assert not ready.thread.is_alive()


def test_streams_get_the_error_mapping_metrics_and_a_log_line(
    ready: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    import urllib.request

    refused = error_of(lambda: list(ready.stream(b"invalid", timeout=5)))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and "seeds: is empty" in (refused.details() or "")
    ready.model.work_released.set()
    assert list(ready.stream(b"echo", timeout=5)) == [b"started", b"done"]
    with urllib.request.urlopen(f"http://127.0.0.1:{ready.config.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'fake_requests_total{code="OK",method="/test.Fake/Stream"} 1.0' in text
    assert 'fake_requests_total{code="INVALID_ARGUMENT",method="/test.Fake/Stream"} 1.0' in text


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str], ...]


def test_a_service_gives_every_failed_call_its_own_status_unary_and_stream_alike() -> None:
    """The orchestrator adds google.rpc details to every error through this hook (one place), instead of a
    try/except in each handler: domain errors, bugs and stream errors all end with the hook's status."""

    def error_status(error: Exception) -> grpc.Status:
        code = grpc.StatusCode.INVALID_ARGUMENT if isinstance(error, InvalidArgument) else grpc.StatusCode.INTERNAL
        return _Status(code, f"hooked: {error}", (("x-error-kind", type(error).__name__),))

    server = InProcessServer(error_status=error_status).start()
    try:
        server.model.load_released.set()
        server.wait_health(SERVING)
        failures = {
            "invalid": error_of(lambda: server.call(b"invalid", timeout=5)),
            "crash": error_of(lambda: server.call(b"crash", timeout=5)),
            "stream": error_of(lambda: list(server.stream(b"invalid", timeout=5))),
        }
    finally:
        server.request_stop()
        server.thread.join(10)

    def kind(error: grpc.RpcError) -> str:
        metadata: Any = error.trailing_metadata()
        return next(str(value) for key, value in metadata if key == "x-error-kind")

    kinds = {name: kind(error) for name, error in failures.items()}
    assert kinds == {"invalid": "InvalidArgument", "crash": "RuntimeError", "stream": "InvalidArgument"}
    assert failures["invalid"].code() == failures["stream"].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failures["invalid"].details() == "hooked: seeds: is empty"
    assert failures["crash"].code() == grpc.StatusCode.INTERNAL and failures["crash"].details() == "hooked: a bug"
