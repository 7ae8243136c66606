"""Readiness follows the one hard dependency: the orchestrator reports NOT_SERVING while Triton's face models
are away (a load balancer stops sending it tasks that could only fail) and SERVING again when they are back.
Real processes: tritonserver on the stand-ins and the orchestrator's service."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from inpaint.v1 import inpaint_pb2

from orchestrator.client import InpaintClient
from stack.process import free_port, health_check
from stack.triton import TritonServer, TritonServerConfig

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(address: str) -> int | None:
    with grpc.insecure_channel(address) as channel:
        try:
            status: int = health_check(channel)(health_pb2.HealthCheckRequest(service=""), timeout=2).status
            return status
        except grpc.RpcError:
            return None


def wait_for(address: str, wanted: int, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if health(address) == wanted:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{address} not {health_pb2.HealthCheckResponse.ServingStatus.Name(wanted)} in {timeout_s} s")


def test_health_follows_triton(standin_repository: Path, tmp_path: Path) -> None:
    triton_config = TritonServerConfig.on_free_ports(repository=standin_repository, log_file=tmp_path / "triton.log")
    port = free_port()
    address = f"127.0.0.1:{port}"
    triton = TritonServer(triton_config).start()
    log = (tmp_path / "orchestrator.log").open("wb")
    service = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.service", f"--port={port}", "--metrics-port=0",
         f"--triton.url={triton_config.grpc_url}", "--triton.timeout-s=2", "--readiness-interval-s=0.3",
         "--qwen-edit.target=127.0.0.1:1", "--moondream.target=127.0.0.1:1", "--probe-wait-s=0"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(address, SERVING, 120)
        triton.stop()
        wait_for(address, NOT_SERVING, 30)
        with InpaintClient(address) as client, pytest.raises(grpc.RpcError) as refused:
            client.inpaint(inpaint_pb2.InpaintRequest(task_id="any"), timeout_s=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "triton" in (refused.value.details() or "")
        triton = TritonServer(dataclasses.replace(triton_config, log_file=tmp_path / "triton-2.log")).start()
        wait_for(address, SERVING, 60)
        assert service.poll() is None, "the service kept running throughout"
    finally:
        service.terminate()
        service.wait(timeout=60)
        triton.stop()
        log.close()
