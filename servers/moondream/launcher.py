"""Start a Moondream server process on 127.0.0.1, wait on its gRPC health check, stop it with SIGTERM.

Used by the tests and the benchmark, which run in the main environment while the server runs in its
own (`.venv-moondream`). Imports no model library.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servers.triton.launcher import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = Path(os.environ.get("INPAINT_MOONDREAM_PYTHON", REPO_ROOT / ".venv-moondream" / "bin" / "python"))
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Reconnect quickly while the process is still binding its port.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class MoondreamStartError(RuntimeError):
    """The server exited or did not become SERVING in time; the message holds the log's tail."""


@dataclass
class MoondreamProcessConfig:
    """One server process: which model, which ports, which extra flags (`--max-queue 2`, ...)."""

    model_dir: Path
    adapter: str = "transformers-vlm"
    python: Path = DEFAULT_PYTHON
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None
    ready_timeout_s: float = 120.0
    # Added to the inherited environment of the process.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class MoondreamServerProcess:
    def __init__(self, config: MoondreamProcessConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None

    @property
    def target(self) -> str:
        return self.config.target

    def start(self, *, wait: bool = True) -> MoondreamServerProcess:
        config = self.config
        if not config.python.exists():
            raise MoondreamStartError(f"{config.python} not found: run `make setup` (builds .venv-moondream)")
        command = [
            str(config.python), "-m", "servers.moondream",
            "--adapter", config.adapter,
            "--model-dir", str(config.model_dir),
            "--host", config.host,
            "--port", str(config.port),
            "--metrics-port", str(config.metrics_port),
            *config.extra_args,
        ]  # fmt: skip
        log = open(config.log_file, "ab") if config.log_file else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
        try:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **config.env}
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        self.channel = grpc.insecure_channel(config.target, options=CHANNEL_OPTIONS)
        if wait:
            self.wait_for_status(SERVING)
        return self

    def wait_for_status(self, status: int, timeout_s: float | None = None) -> list[int]:
        """Watch the overall health until it reports `status`; return every status seen on the way.

        The watch is renewed every couple of seconds so that a process that died is noticed at once.
        """
        assert self.channel is not None and self.process is not None, "start() first"
        stub = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + (self.config.ready_timeout_s if timeout_s is None else timeout_s)
        seen: list[int] = []
        while (remaining := deadline - time.monotonic()) > 0:
            if self.process.poll() is not None:
                raise MoondreamStartError(
                    f"the server exited with {self.process.returncode} (health seen: {seen})\n{self.log_tail()}"
                )
            # The health stubs' types lack the streaming Watch, which exists at run time.
            stream: Any = stub.Watch(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=""), timeout=min(2.0, remaining), wait_for_ready=True
            )
            try:
                for response in stream:
                    if not seen or seen[-1] != response.status:
                        seen.append(response.status)
                    if response.status == status:
                        return seen
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                    raise
            finally:
                stream.cancel()
        raise MoondreamStartError(f"health never reported {status} (saw {seen})\n{self.log_tail()}")

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus samples as {'name{label="value",...}': value}."""
        url = f"http://{self.config.host}:{self.config.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (the graceful drain) and wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(timeout_s=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        if self.config.log_file is None or not self.config.log_file.exists():
            return "(no log file)"
        return self.config.log_file.read_text(errors="replace")[-chars:]

    def __enter__(self) -> MoondreamServerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
