"""Health transitions and the graceful SIGTERM drain of a server process of its own."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc

from stack.moondream import MoondreamServerProcess
from stack.process import NOT_SERVING, SERVING
from tests.moondream.conftest import png, start_server


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def watch_health(channel: grpc.Channel) -> Any:
    """The overall health stream, opened before the test changes anything (a watch opened after SIGTERM
    could come too late to be served)."""
    stub: Any = health_pb2_grpc.HealthStub(channel)
    return stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)


def wait_until_running(server: MoondreamServerProcess, timeout_s: float = 10.0) -> None:
    """Until the model is generating for a call (the work queue's in-flight gauge)."""
    deadline = time.monotonic() + timeout_s
    while server.metrics().get("moondream_in_flight", 0.0) < 1:
        assert time.monotonic() < deadline, "the call never started running"
        time.sleep(0.01)


def test_health_serving_after_load_then_sigterm_drains(
    moondream_standin: Path, tmp_path: Path, face_photo: np.ndarray
) -> None:
    server = start_server(moondream_standin, tmp_path, wait=False)
    try:
        # NOT_SERVING while the model loads (importing torch alone takes seconds), SERVING after.
        seen = server.wait_for_status(SERVING)
        assert seen == [NOT_SERVING, SERVING]

        channel = server.channel()
        stub = moondream_pb2_grpc.MoondreamServiceStub(channel)
        long_request = moondream_pb2.QueryRequest(
            image=png(face_photo), question="Describe everything.", max_new_tokens=300
        )
        in_flight: Future[Any] = stub.Query.future(long_request, timeout=60)
        wait_until_running(server)

        health = watch_health(channel)
        assert next(health).status == SERVING
        assert server.process is not None
        server.process.send_signal(15)  # SIGTERM
        assert next(health).status == NOT_SERVING  # told before the server stops taking calls
        health.cancel()  # an open watch is an in-flight call too: the drain would wait the whole grace for it

        # A call that was running when the drain began still gets its answer ...
        response = in_flight.result()
        assert response.model.standin
        # ... and the process exits cleanly once it has.
        assert server.process.wait(timeout=60) == 0

        events = {event["event"]: event for event in log_events(tmp_path / "moondream.log")}
        assert events["draining"]["running"] + events["draining"]["waiting"] == 1
        # Done once the running call was: well inside the 60 s grace.
        assert events["stopped"]["drain_s"] < 30
    finally:
        server.stop()


def test_new_calls_during_the_drain_are_refused(
    moondream_standin: Path, tmp_path: Path, face_photo: np.ndarray
) -> None:
    server = start_server(moondream_standin, tmp_path)
    try:
        channel = server.channel()
        stub = moondream_pb2_grpc.MoondreamServiceStub(channel)
        long_request = moondream_pb2.QueryRequest(
            image=png(face_photo), question="Describe everything.", max_new_tokens=300
        )
        in_flight: Future[Any] = stub.Query.future(long_request, timeout=60)
        wait_until_running(server)
        health = watch_health(channel)
        assert next(health).status == SERVING
        assert server.process is not None
        server.process.send_signal(15)
        assert next(health).status == NOT_SERVING
        health.cancel()
        try:
            stub.Query(moondream_pb2.QueryRequest(image=png(face_photo), question="Who?"), timeout=10)
            refused = None
        except grpc.RpcError as error:
            refused = error.code()
        assert refused == grpc.StatusCode.UNAVAILABLE
        assert in_flight.result().model.standin
        assert server.process.wait(timeout=60) == 0
    finally:
        server.stop()
