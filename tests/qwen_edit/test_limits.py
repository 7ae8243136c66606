"""Deadlines stop the work between denoising steps; a full queue answers RESOURCE_EXHAUSTED."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from inpaint.v1 import qwen_edit_pb2_grpc

from stack.process import ModelServerProcess
from tests.qwen_edit.conftest import edit_request, metric, rpc_error

LONG_STEPS = 3000  # tens of seconds on the stand-in: far longer than any deadline below


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll `condition` (cheap, side-effect free) until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def test_deadline_stops_the_work_between_steps(
    qwen_server: ModelServerProcess, stub: qwen_edit_pb2_grpc.QwenEditServiceStub
) -> None:
    stopped_before = metric(qwen_server, "qwen_edit_stopped_work_total")
    started = time.monotonic()

    error = rpc_error(lambda: stub.Edit(edit_request(num_inference_steps=LONG_STEPS), timeout=1.0))

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The worker noticed within a few steps, not after the 3000 it was asked for.
    wait_until(lambda: metric(qwen_server, "qwen_edit_stopped_work_total") > stopped_before, 10, "the work to stop")
    wait_until(lambda: metric(qwen_server, "qwen_edit_in_flight") == 0, 10, "the device to free up")
    assert time.monotonic() - started < 12
    # And the device is free for the next caller.
    assert len(stub.Edit(edit_request(), timeout=30).images) == 1


def test_full_queue_answers_resource_exhausted_and_cancelled_calls_free_the_device(
    qwen_server: ModelServerProcess, stub: qwen_edit_pb2_grpc.QwenEditServiceStub
) -> None:
    # The session server runs one call and queues one more.
    running = stub.Edit.future(edit_request(num_inference_steps=LONG_STEPS), timeout=120)
    wait_until(lambda: metric(qwen_server, "qwen_edit_in_flight") == 1, 30, "the first call to run")
    queued = stub.Edit.future(edit_request(num_inference_steps=LONG_STEPS), timeout=120)
    wait_until(lambda: metric(qwen_server, "qwen_edit_queue_depth") == 1, 30, "the second call to queue")

    error = rpc_error(lambda: stub.Edit(edit_request(), timeout=30))

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "busy" in (error.details() or "")
    running.cancel()
    queued.cancel()
    wait_until(
        lambda: metric(qwen_server, "qwen_edit_in_flight") == 0 and metric(qwen_server, "qwen_edit_queue_depth") == 0,
        15,
        "the cancelled calls to leave the device",
    )
    assert len(stub.Edit(edit_request(), timeout=30).images) == 1
