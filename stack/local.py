"""The whole stack as processes on 127.0.0.1: Triton, Qwen-Edit, Moondream and the orchestrator.

    with Stack(run_dir, StackConfig(ports=Ports.free())) as stack: ...
    python -m stack up | down | status      (`make up`, `make down`, `make status`)

`up` starts each service in its own process session, with its log in the run folder, waits on every
health check (Triton's HTTP readiness, the gRPC health service of the others) and writes
`<run-dir>/stack.json` with what it started; `runs/current` points at the newest run. `down` stops
exactly those processes (SIGTERM to each session, SIGKILL after the grace). Real weights are used
where `make models` put them, stand-ins otherwise; the orchestrator's start-up log says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from servers.moondream.model import STANDIN_MARKER as MOONDREAM_STANDIN_MARKER
from servers.qwen_edit.standin import STANDIN_MARKER as QWEN_STANDIN_MARKER
from stack.process import SERVING, health_check, live_group_members

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = REPO_ROOT / "runs"
STANDIN_EDIT_SIZE = 128


class StackError(RuntimeError):
    """A service failed to start or to become healthy; the message holds the log's tail."""


@dataclass(frozen=True)
class Ports:
    triton_http: int = 8000
    triton_grpc: int = 8001
    triton_metrics: int = 8002
    qwen_edit: int = 50051
    qwen_edit_metrics: int = 9461
    moondream: int = 50052
    moondream_metrics: int = 9462
    orchestrator: int = 50050
    orchestrator_metrics: int = 9460
    gateway: int = 8080

    @classmethod
    def free(cls) -> Ports:
        """Distinct free ports: every socket stays bound until all are chosen, so none is picked twice."""
        with contextlib.ExitStack() as held:
            ports = {}
            for name in cls.__dataclass_fields__:
                sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind(("127.0.0.1", 0))
                ports[name] = sock.getsockname()[1]
        return cls(**ports)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: list[str]
    health: str  # "http:<url>" or "grpc:<host:port>"
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Started:
    name: str
    pid: int
    log: str
    health: str
    # The process's start time (clock ticks since boot): a recycled pid has another one.
    start_ticks: int = 0


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat; None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class StackConfig:
    ports: Ports = field(default_factory=Ports)
    device: str = "cpu"
    orchestrator: bool = True
    gateway: bool = False  # the HTTP/JSON gateway and console in front of the orchestrator (`make console`)
    triton_repository: Path = REPO_ROOT / "triton_models"
    qwen_model: Path | None = None  # None: real weights if present, else the stand-in
    moondream_model: Path | None = None
    extra_orchestrator_args: tuple[str, ...] = ()
    extra_qwen_edit_args: tuple[str, ...] = ()  # e.g. ("--simulate-step-s=...",) for tests and benchmarks
    orchestrator_env: tuple[tuple[str, str], ...] = ()  # e.g. (("GEMINI_API_KEY", ...),) for tests
    ready_timeout_s: float = 600.0


def _python(venv: str) -> str:
    return str(REPO_ROOT / venv / "bin" / "python")


def qwen_model_dir(config: StackConfig) -> tuple[Path, bool]:
    """(directory, is_standin); makes the stand-in when no real checkpoint exists."""
    if config.qwen_model is not None:
        return config.qwen_model, (config.qwen_model / QWEN_STANDIN_MARKER).exists()
    real = REPO_ROOT / "models" / "real" / "qwen_image_edit"
    if (real / "model_index.json").is_file():
        return real, False
    standin = REPO_ROOT / "models" / "standins" / "qwen_edit"
    if not (standin / "model_index.json").is_file():
        subprocess.run([_python(".venv-qwen"), "-m", "servers.qwen_edit.standin", "--out", str(standin)], check=True)
    return standin, True


def moondream_model_dir(config: StackConfig) -> tuple[Path, str, bool]:
    """(directory, adapter, is_standin); makes the stand-in when no real moondream2 exists."""
    if config.moondream_model is not None:
        is_standin = (config.moondream_model / MOONDREAM_STANDIN_MARKER).exists()
        return config.moondream_model, "transformers-vlm" if is_standin else "moondream2", is_standin
    real = REPO_ROOT / "models" / "real" / "moondream2"
    if (real / "config.json").is_file():
        return real, "moondream2", False
    standin = REPO_ROOT / "models" / "standins" / "moondream"
    if not (standin / MOONDREAM_STANDIN_MARKER).is_file():
        subprocess.run(
            [_python(".venv-moondream"), "-m", "servers.moondream.standin", "--out", str(standin)], check=True
        )
    return standin, "transformers-vlm", True


def plan(config: StackConfig, run_dir: Path) -> list[ServiceSpec]:
    p = config.ports
    qwen_dir, qwen_standin = qwen_model_dir(config)
    # A random-weight stand-in's output is noise at any size: on stand-ins, condition and edit small
    # images so that a full search takes a minute on a CPU instead of an hour.
    orchestrator_small = (
        [f"--refinement.min-edit-size={STANDIN_EDIT_SIZE}", f"--refinement.max-edit-size={STANDIN_EDIT_SIZE}"]
        if qwen_standin
        else []
    )
    moondream_dir, adapter, _ = moondream_model_dir(config)
    # PyPI's tritonserver has only the python backend, so locally the face models always run through
    # configs/cpu.pbtxt (onnxruntime inside the python backend; they are small). The GPU configuration,
    # platform onnxruntime_onnx, is for NVIDIA's Triton container (deploy/overlays/gpu). `device`
    # moves the Qwen-Edit and Moondream servers.
    triton_config = "cpu"
    specs = [
        ServiceSpec(
            "triton",
            [
                _python(".venv"), "-m", "stack.triton",
                f"--repository={config.triton_repository}", f"--config-name={triton_config}",
                f"--http-port={p.triton_http}", f"--grpc-port={p.triton_grpc}", f"--metrics-port={p.triton_metrics}",
            ],
            f"http:http://127.0.0.1:{p.triton_http}/v2/health/ready",
        ),
        ServiceSpec(
            "qwen_edit",
            [
                _python(".venv-qwen"), "-m", "servers.qwen_edit", f"--model-dir={qwen_dir}",
                f"--port={p.qwen_edit}", f"--metrics-port={p.qwen_edit_metrics}", f"--device={config.device}",
                *config.extra_qwen_edit_args,
            ],
            f"grpc:127.0.0.1:{p.qwen_edit}",
        ),
        ServiceSpec(
            "moondream",
            [
                _python(".venv-moondream"), "-m", "servers.moondream", f"--adapter={adapter}",
                f"--model-dir={moondream_dir}", f"--port={p.moondream}", f"--metrics-port={p.moondream_metrics}",
                f"--device={config.device}",
            ],
            f"grpc:127.0.0.1:{p.moondream}",
        ),
    ]  # fmt: skip
    if config.orchestrator:
        specs.append(
            ServiceSpec(
                "orchestrator",
                [
                    _python(".venv"), "-m", "orchestrator.service",
                    f"--port={p.orchestrator}", f"--metrics-port={p.orchestrator_metrics}",
                    f"--triton.url=127.0.0.1:{p.triton_grpc}", f"--triton.repository={config.triton_repository}",
                    f"--qwen-edit.target=127.0.0.1:{p.qwen_edit}", f"--moondream.target=127.0.0.1:{p.moondream}",
                    f"--operations.state-dir={run_dir / 'operations'}",
                    *orchestrator_small, *config.extra_orchestrator_args,
                ],
                f"grpc:127.0.0.1:{p.orchestrator}",
                env=dict(config.orchestrator_env),
            )
        )  # fmt: skip
    if config.orchestrator and config.gateway:
        specs.append(
            ServiceSpec(
                "gateway",
                [
                    _python(".venv"), "-m", "gateway",
                    f"--port={p.gateway}", f"--orchestrator=127.0.0.1:{p.orchestrator}",
                ],
                f"http:http://127.0.0.1:{p.gateway}/healthz",
            )
        )  # fmt: skip
    return specs


def healthy(check: str) -> bool:
    kind, _, target = check.partition(":")
    if kind == "http":
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(target, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_check(channel)(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError:
            return False
        return bool(answer.status == SERVING)


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop_group(pid: int, grace_s: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while live_group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if live_group_members(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while live_group_members(pid) and time.monotonic() < deadline + 10:
            time.sleep(0.05)


class Stack:
    def __init__(self, run_dir: Path, config: StackConfig = StackConfig()) -> None:
        self.run_dir = run_dir
        self.config = config
        self.started: list[Started] = []

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    def _save(self) -> None:
        self.state_file.write_text(
            json.dumps({"ports": asdict(self.config.ports), "services": [asdict(s) for s in self.started]}, indent=2)
        )

    def up(self, progress: bool = True) -> Stack:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        specs = plan(self.config, self.run_dir)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)
        try:
            for spec in specs:
                log = self.run_dir / f"{spec.name}.log"
                with log.open("ab") as out:
                    process = subprocess.Popen(
                        spec.argv, cwd=REPO_ROOT, env={**env, **spec.env}, stdout=out, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, start_new_session=True,
                    )  # fmt: skip
                ticks = start_ticks(process.pid) or 0
                self.started.append(Started(spec.name, process.pid, str(log), spec.health, ticks))
                self._save()
            self._wait_healthy(progress)
        except BaseException:
            self.down()
            raise
        latest = RUNS / "current"
        if self.run_dir.parent == RUNS:
            latest.unlink(missing_ok=True)
            latest.symlink_to(self.run_dir.name)
        return self

    def _wait_healthy(self, progress: bool) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        pending = list(self.started)
        while pending:
            for service in list(pending):
                if not live_group_members(service.pid):
                    raise StackError(
                        f"{service.name} exited during start-up; {service.log}:\n{_tail(Path(service.log))}"
                    )
                if healthy(service.health):
                    pending.remove(service)
                    if progress:
                        print(f"  {service.name:12s} healthy ({service.health})", flush=True)
                    if progress and service.name == "gateway":
                        print(f"  console: http://127.0.0.1:{self.config.ports.gateway}/console/", flush=True)
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise StackError(f"not healthy after {self.config.ready_timeout_s:.0f} s: {names}")
            if pending:
                time.sleep(0.25)

    def down(self, grace_s: float = 60.0) -> None:
        for service in reversed(self.started):
            if service.start_ticks and start_ticks(service.pid) not in (None, service.start_ticks):
                continue  # that pid now belongs to another process: ours is long gone
            _stop_group(service.pid, grace_s)
        self.started = []
        if self.run_dir.exists():
            self._save()

    @classmethod
    def load(cls, run_dir: Path) -> Stack:
        state = json.loads((run_dir / "stack.json").read_text())
        stack = cls(run_dir, StackConfig(ports=Ports(**state["ports"])))
        stack.started = [Started(**s) for s in state["services"]]
        return stack

    def __enter__(self) -> Stack:
        return self.up(progress=False)

    def __exit__(self, *exc: object) -> None:
        self.down()
