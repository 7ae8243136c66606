"""Health transitions and the graceful SIGTERM drain, each on a server process of its own."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from inpaint.v1 import qwen_edit_pb2_grpc

from stack.process import NOT_SERVING, SERVING, ServerStartError
from tests.qwen_edit.conftest import edit_request, log_events, metric, rpc_error, server_process
from tests.qwen_edit.test_limits import wait_until

SERVICE = "inpaint.v1.QwenEditService"


def test_health_is_not_serving_while_the_model_loads_then_serving(qwen_standin: Path, tmp_path: Path) -> None:
    process = server_process(qwen_standin, tmp_path / "server.log").start(wait=False)
    try:
        # The port is bound before the model (torch, diffusers, weights) loads, which takes seconds.
        seen = process.wait_for_status(SERVING, timeout_s=120)
        assert seen[0] == NOT_SERVING, f"first status answered was {seen[0]}; expected NOT_SERVING during the load"
        assert seen[-1] == SERVING
        assert process.health(SERVICE) == SERVING
        stub = qwen_edit_pb2_grpc.QwenEditServiceStub(process.channel())
        assert len(stub.Edit(edit_request(), timeout=30).images) == 1
    finally:
        process.stop()
    assert process.process is not None and process.process.returncode == 0


def test_sigterm_drains_in_flight_work_refuses_new_calls_and_exits(qwen_standin: Path, tmp_path: Path) -> None:
    process = server_process(qwen_standin, tmp_path / "server.log").start()
    try:
        statuses, _ = process.watch_health(SERVICE)
        wait_until(lambda: statuses[-1:] == [SERVING], 10, "the health watch to start")
        stub = qwen_edit_pb2_grpc.QwenEditServiceStub(process.channel())
        in_flight = stub.Edit.future(edit_request(seeds=[1, 2], num_inference_steps=300), timeout=180)
        wait_until(lambda: metric(process, "qwen_edit_in_flight") == 1, 30, "the call to start")

        assert process.process is not None
        process.process.terminate()  # SIGTERM
        wait_until(lambda: NOT_SERVING in statuses, 10, "health to turn NOT_SERVING")
        refused = rpc_error(lambda: stub.Edit(edit_request(), timeout=10))
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        assert not in_flight.done(), "the in-flight call should still be running when the drain starts"

        response = in_flight.result(timeout=120)
        assert [image.seed for image in response.images] == [1, 2]
        assert process.process.wait(timeout=60) == 0
    finally:
        process.stop()
    events = [event["event"] for event in log_events(process)]
    assert events.index("draining") < events.index("stopped")


def test_a_missing_checkpoint_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    process = server_process(tmp_path / "no_such_model", tmp_path / "server.log")
    started = time.monotonic()
    with pytest.raises(ServerStartError, match=r"model_index\.json missing"):
        process.start()
    process.stop()
    assert process.process is not None and process.process.returncode != 0
    assert time.monotonic() - started < 60
