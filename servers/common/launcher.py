"""Start a model server process (`python -m servers.<name>`) on 127.0.0.1, wait on its gRPC health check,
stop it with SIGTERM. For tests, benchmarks and local runs; the server runs in its own environment
while the caller stays in the main one. Imports no model library.

    with ModelServerProcess(ServerProcessConfig("servers.qwen_edit", python=QWEN_PYTHON, args=["--model-dir", d])) as p:
        stub = QwenEditServiceStub(p.channel())
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from stack.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Large messages both ways (4K PNGs), and quick reconnects while the process is still binding its port.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def health_check(
    channel: grpc.Channel,
) -> grpc.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]:
    # Typed by hand: the typeshed stub of HealthStub lists no methods.
    return channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


def health_watch(
    channel: grpc.Channel,
) -> grpc.UnaryStreamMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]:
    return channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


class ServerStartError(RuntimeError):
    """The server exited or did not become SERVING in time; the message holds the log's tail."""


@dataclass
class ServerProcessConfig:
    module: str
    python: Path
    args: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    log_file: Path | None = None
    ready_timeout_s: float = 180.0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class ModelServerProcess:
    def __init__(self, config: ServerProcessConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._channel: grpc.Channel | None = None

    @property
    def target(self) -> str:
        return self.config.target

    def command(self) -> list[str]:
        c = self.config
        return [
            str(c.python),
            "-m",
            c.module,
            "--host",
            c.host,
            "--port",
            str(c.port),
            "--metrics-port",
            str(c.metrics_port),
            *c.args,
        ]

    def start(self, *, wait: bool = True) -> Self:
        c = self.config
        if not Path(c.python).exists():
            raise ServerStartError(f"{c.python} not found: run `make setup`")
        out: int | IO[bytes] = subprocess.DEVNULL
        if c.log_file is not None:
            c.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = out = c.log_file.open("wb")
        env = {**os.environ, **c.env}
        env.pop("PYTHONPATH", None)  # the server's venv has the project installed
        self.process = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        if wait:
            self.wait_for_status(SERVING, c.ready_timeout_s)
        return self

    def channel(self) -> grpc.Channel:
        """A channel owned by this object (closed by stop())."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        return self._channel

    def health(self, service: str = "", timeout_s: float = 2.0) -> int | None:
        """The current status, or None while the server does not answer (not bound yet, or gone)."""
        try:
            response = health_check(self.channel())(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return None
        return int(response.status)

    def wait_for_status(self, status: int, timeout_s: float | None = None) -> list[int]:
        """Poll the health check until it answers `status`; return the distinct statuses seen on the way."""
        deadline = time.monotonic() + (timeout_s or self.config.ready_timeout_s)
        seen: list[int] = []
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerStartError(
                    f"{self.config.module} exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            current = self.health()
            if current is not None and (not seen or seen[-1] != current):
                seen.append(current)
            if current == status:
                return seen
            time.sleep(0.05)
        raise ServerStartError(
            f"{self.config.module} did not report status {status} in time (saw {seen}):\n{self.log_tail()}"
        )

    def watch_health(self, service: str = "") -> tuple[list[int], threading.Thread]:
        """Stream health changes into a list from a background thread (ends when the server goes away)."""
        statuses: list[int] = []

        def follow() -> None:
            try:
                for response in health_watch(self.channel())(health_pb2.HealthCheckRequest(service=service)):
                    statuses.append(int(response.status))
            except grpc.RpcError:
                pass

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        return statuses, thread

    def metrics(self) -> dict[str, float]:
        """Prometheus samples by name with labels, e.g. {'qwen_edit_in_flight': 1.0, ...}."""
        url = f"http://{self.config.host}:{self.config.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait for the drain; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(timeout_s=30.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        log = self.config.log_file
        if log is None or not log.exists():
            return "(no log file)"
        return log.read_text(errors="replace")[-chars:]

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
