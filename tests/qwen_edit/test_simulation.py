"""Fleet simulation: with `simulate_step_s` each denoising step of the stand-in also sleeps, scaled by pixels."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inpaint.v1 import qwen_edit_pb2, qwen_edit_pb2_grpc

from stack.process import ModelServerProcess
from tests.qwen_edit.conftest import decode, edit_request, encode, photo, server_process

STEP_S_AT_64 = 0.2
# simulate_step_s is per image at 1024x1024; a 64x64 image has 1/256 of its pixels.
STEP_S_AT_1024 = STEP_S_AT_64 * 1024 * 1024 / (64 * 64)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.fixture(scope="module")
def simulating(qwen_standin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerProcess]:
    log = tmp_path_factory.mktemp("qwen_simulate") / "server.log"
    process = server_process(qwen_standin, log, "--simulate-step-s", str(STEP_S_AT_1024)).start()
    yield process
    process.stop()


def measured_edit(
    server: ModelServerProcess, request: qwen_edit_pb2.EditRequest
) -> tuple[qwen_edit_pb2.EditResponse, float, float]:
    """The request's response, wall seconds and the server's CPU seconds, once the prompt encoding is cached
    (a first, unmeasured call)."""
    stub = qwen_edit_pb2_grpc.QwenEditServiceStub(server.channel())
    stub.Edit(request, timeout=60)
    assert server.process is not None
    cpu_before = cpu_seconds(server.process.pid)
    started = time.monotonic()
    response = stub.Edit(request, timeout=60)
    return response, time.monotonic() - started, cpu_seconds(server.process.pid) - cpu_before


def test_each_step_takes_the_simulated_time_without_using_the_cpu(simulating: ModelServerProcess) -> None:
    request = edit_request(image=encode(photo(64, 64)), num_inference_steps=4, true_cfg_scale=1.0)
    response, wall, cpu = measured_edit(simulating, request)
    assert response.denoising_steps == 4
    assert wall >= 4 * STEP_S_AT_64
    assert response.seconds_per_step >= STEP_S_AT_64
    assert cpu < 0.5 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s"


def test_the_stand_in_transformer_does_not_run_while_simulating(simulating: ModelServerProcess) -> None:
    """The step's time is the sleep: a GPU fleet spends no host CPU on the transformer. Before, the stand-in
    ran it as well, per seed and per CFG branch (168 passes for a global request of 7 seeds at 12 steps),
    about 1 s of CPU a request, which on two cores, not the simulated GPU time, bounded the fleet benchmark."""
    request = edit_request(
        seeds=range(1, 8), image=encode(photo(16, 16)), num_inference_steps=12, true_cfg_scale=2.0
    )  # 7 images of 16x16: 12 steps of 7 * 0.2 / 16 = 0.0875 s, about 1 s asleep in all
    response, wall, cpu = measured_edit(simulating, request)
    assert len(response.images) == 7 and response.denoising_steps == 12
    # With true CFG on, a zero velocity made the pipeline's norm rescaling 0/0: NaN latents, black images.
    assert all(decode(i.image).std() > 1.0 for i in response.images), "a simulated image is blank"
    assert wall >= 12 * 7 * STEP_S_AT_64 / 16
    assert cpu < 0.25 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s"
