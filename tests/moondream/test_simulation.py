"""Fleet simulation: a stand-in Moondream server whose answers take a configured time (a sleep, not CPU),
so that many replicas can run on two cores in the fleet benchmark."""

from __future__ import annotations

import os
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


def test_simulated_answers_use_no_cpu_and_say_they_are_simulated(
    moondream_standin: Path, tmp_path: Path, face_photo: np.ndarray
) -> None:
    """Before, the stand-in ran as well as sleeping: 7.6 s of CPU per fleet task, which capped the fleet
    benchmark at the two cores' speed; and its answers were noise that fell back, so every task was degraded."""
    server = start_server(moondream_standin, tmp_path, "--simulate-answer-s=0.2")
    try:
        stub = moondream_pb2_grpc.MoondreamServiceStub(server.channel())
        queries = [
            moondream_pb2.ScoreQuery(image=png(np.roll(face_photo, i * 7, axis=1)), question=f"Rate {i}")
            for i in range(10)
        ]
        stub.Score(moondream_pb2.ScoreRequest(queries=queries[:1]), timeout=60)
        assert server.process is not None
        pid = server.process.pid
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        answer = stub.Score(moondream_pb2.ScoreRequest(queries=queries), timeout=60)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        again = stub.Score(moondream_pb2.ScoreRequest(queries=queries), timeout=60)
    finally:
        server.stop()
    assert elapsed >= 2.0, "ten answers at 0.2 s each"
    assert cpu < 0.25 * elapsed, (cpu, elapsed)
    assert not any(r.fallback for r in answer.results)
    assert all("simulated" in r.raw_answer and 0 <= r.score <= 10 for r in answer.results)
    assert len({r.score for r in answer.results}) > 1, "candidates must differ for the search to rank them"
    assert [r.score for r in again.results] == [r.score for r in answer.results]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


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
