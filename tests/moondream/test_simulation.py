"""Fleet simulation: a stand-in Moondream server whose answers take a configured time (a sleep, not CPU),
so that many replicas can run on two cores in the fleet benchmark."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc

from servers.common.settings import ConfigError, load_settings
from servers.moondream.config import MoondreamServerConfig
from tests.moondream.conftest import png, start_server


def test_each_answer_takes_the_simulated_time(moondream_standin: Path, tmp_path: Path, face_photo: np.ndarray) -> None:
    server = start_server(moondream_standin, tmp_path, "--simulate-answer-s=0.5")
    try:
        stub = moondream_pb2_grpc.MoondreamServiceStub(server.channel())
        queries = [moondream_pb2.ScoreQuery(image=png(face_photo), question=f"Rate {i}") for i in range(3)]
        stub.Score(moondream_pb2.ScoreRequest(queries=queries[:1]), timeout=60)  # warm: encodes the image
        started = time.monotonic()
        answer = stub.Score(moondream_pb2.ScoreRequest(queries=queries), timeout=60)
        elapsed = time.monotonic() - started
        assert len(answer.results) == 3 and answer.model.standin
        assert elapsed >= 1.5, "three answers at 0.5 s each"
    finally:
        server.stop()


def test_a_negative_simulated_time_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="simulate_answer_s"):
        load_settings(MoondreamServerConfig, ["--simulate-answer-s=-1"], env={})


def test_cancelling_the_search_cancels_the_moondream_call(
    moondream_standin: Path, tmp_path: Path, face_photo: np.ndarray
) -> None:
    """The search's Moondream scorer awaits the call on the event loop: cancelling a task cancels the call,
    and the server stops the work between answers (before, a blocking call in a worker thread ran on)."""
    import asyncio

    from orchestrator.channels import ServerAddress
    from orchestrator.scoring.moondream_client import MoondreamJudge

    server = start_server(moondream_standin, tmp_path, "--simulate-answer-s=2")
    judge = MoondreamJudge(ServerAddress(server.config.target, timeout_s=60))
    try:

        async def cancelled_soon() -> float:
            call = asyncio.ensure_future(
                judge.score_async([(face_photo, f"Rate {i}") for i in range(4)], request_id="cancel-me")
            )
            await asyncio.sleep(1.0)
            started = time.monotonic()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            return time.monotonic() - started

        assert asyncio.run(cancelled_soon()) < 1.0
        deadline = time.monotonic() + 10
        while server.metrics().get("moondream_stopped_work_total", 0.0) < 1:
            assert time.monotonic() < deadline, "the server never stopped the cancelled work"
            time.sleep(0.1)
        log = (tmp_path / "moondream.log").read_text()
        assert '"request_id": "cancel-me"' in log and '"code": "CANCELLED"' in log
    finally:
        judge.close()
        server.stop()
