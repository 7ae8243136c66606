"""Degraded operation: a model server dies mid-search, Qwen-Edit is down, Triton is down."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from inpaint.v1 import inpaint_pb2

from tests.fakes.fake_gemini import FakeGemini
from tests.orchestrator.conftest import LiveStack, start_stack, task_images, write_task


@pytest.fixture(scope="module")
def doomed(tmp_path_factory: pytest.TempPathFactory, standin_repository: Path) -> Iterator[LiveStack]:
    """A stack of its own, whose servers the tests kill one by one."""
    store = tmp_path_factory.mktemp("tasks")
    write_task(store, "t1")
    with FakeGemini() as gemini:
        stack = start_stack(tmp_path_factory.mktemp("doomed"), standin_repository, gemini, store)
        try:
            yield LiveStack(stack, gemini, store)
        finally:
            stack.down()


def _kill(live: LiveStack, name: str) -> None:
    service = next(s for s in live.stack.started if s.name == name)
    os.killpg(service.pid, signal.SIGKILL)


def test_moondream_dying_mid_search_gives_flagged_fallbacks_and_still_a_result(doomed: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(request_id="md-dies", images=task_images())
    killed = False
    result = None
    for message in doomed.stub().StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=300):
        if (
            message.HasField("progress")
            and message.progress.kind == inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED
            and not killed
        ):
            _kill(doomed, "moondream")
            killed = True
        if message.HasField("result"):
            result = message.result
    assert killed and result is not None
    assert result.degraded and result.best_candidate_id
    moondream = [s for c in result.candidates for s in c.scores if s.signal in ("identity", "consistency")]
    failed = [s for s in moondream if s.fallback]
    assert failed, "candidates scored after the kill must carry flagged fallbacks"
    assert any("moondream call failed: UNAVAILABLE" in s.reason for s in failed), {s.reason for s in failed}
    assert any(note.startswith("fallback identity") for note in result.notes)


def test_qwen_edit_down_returns_the_raw_swap_flagged(doomed: LiveStack) -> None:
    _kill(doomed, "qwen_edit")
    result = doomed.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id="t1"), timeout=120)
    assert result.best_candidate_id == "g0"
    assert result.degraded
    assert any(note.startswith("global stage failed") and "qwen-edit" in note for note in result.notes), result.notes
    failed = [c for c in result.candidates if c.status == inpaint_pb2.CANDIDATE_STATUS_GENERATION_FAILED]
    assert len(failed) == 2


def test_triton_down_is_unavailable(doomed: LiveStack) -> None:
    _kill(doomed, "triton")
    with pytest.raises(grpc.RpcError) as error:
        doomed.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id="t1"), timeout=60)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "det_10g" in (error.value.details() or "") or "triton" in (error.value.details() or "")
