"""Start the real `tritonserver` (from PyPI nvidia-pytriton) on 127.0.0.1, wait for it, stop it cleanly.

    python -m stack.triton [--repository triton_models] [--config-name cpu|default] [--grpc-port 8001]

serves the model repository in the foreground until SIGINT/SIGTERM (what `make up` runs).

nvidia-pytriton needs numpy<2, so the server lives in its own virtual environment (`.venv-triton`,
made by `make setup`). PyTriton's Python API is not used: the binary runs directly on this
project's model repository. What the binary needs from its environment:

- the python-backend stub built for the environment's Python version, which pytriton ships under
  `python_backend_stubs/<X.Y>/` and which must sit beside `libtriton_python.so`;
- `nvidia_pytriton.libs` and the interpreter's libdir on LD_LIBRARY_PATH, the venv's `bin/` first
  on PATH (the stub runs `python` models with whatever interpreter it finds there);
- a unique shared-memory prefix, so that the regions a server leaves in /dev/shm when killed can be
  found and removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from servers.triton.provenance import ProvenanceError, read_provenance
from stack.process import free_port, live_group_members

REPO_ROOT = Path(__file__).resolve().parents[1]


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready in time; the message holds the log's tail."""


@dataclass
class TritonServerConfig:
    """Everything needed to run one tritonserver process."""

    repository: Path = REPO_ROOT / "triton_models"
    venv: Path = Path(os.environ.get("INPAINT_TRITON_VENV", REPO_ROOT / ".venv-triton"))
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    metrics: bool = False
    # "cpu" selects <model>/configs/cpu.pbtxt (python backend + onnxruntime); None uses config.pbtxt.
    model_config_name: str | None = "cpu"
    log_file: Path | None = None
    ready_timeout_s: float = 120.0
    extra_args: list[str] = field(default_factory=list)

    @classmethod
    def on_free_ports(cls, **overrides: object) -> TritonServerConfig:
        ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
        return cls(**{**ports, **overrides})  # type: ignore[arg-type]

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


def _venv_python_version(venv: Path) -> tuple[str, str]:
    """(X.Y, libdir) of the venv's interpreter."""
    code = (
        "import sys, sysconfig; print(f'{sys.version_info[0]}.{sys.version_info[1]}'); "
        "print(sysconfig.get_config_var('LIBDIR'))"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True)
    version, libdir = out.stdout.split()
    return version, libdir


def _site_packages(venv: Path, version: str) -> Path:
    return venv / "lib" / f"python{version}" / "site-packages"


def prepare_backends(venv: Path) -> Path:
    """Return a backend directory whose python backend has the stub for the venv's Python. Idempotent."""
    if not (venv / "bin" / "python").exists():
        raise TritonStartError(f"no Triton environment at {venv}; run `make setup`")
    version, _ = _venv_python_version(venv)
    dist = _site_packages(venv, version) / "pytriton" / "tritonserver"
    backends = venv / "triton-backends"
    stub_target = backends / "python" / "triton_python_backend_stub"
    if not stub_target.exists():
        shutil.copytree(dist / "backends", backends, dirs_exist_ok=True)
        shutil.copy2(dist / "python_backend_stubs" / version / "triton_python_backend_stub", stub_target)
    return backends


def _with_parent_death_signal(args: list[str]) -> list[str]:
    """Run args so that they get SIGTERM when their parent dies, however it dies (SIGKILL included).

    The server runs in a session of its own (so that stop() can signal it and its stubs together),
    which also means nobody else would stop it if its launcher were killed. util-linux's `setpriv`
    sets the signal in the child before exec (a Python preexec_fn is unsafe in threaded processes).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *args] if setpriv else args


def _wait_until_gone(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while live_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


class TritonServer:
    """One tritonserver process. Use as a context manager, or call start() and stop()."""

    def __init__(self, config: TritonServerConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.shm_prefix = f"inpaint_triton_{os.getpid()}_{config.grpc_port}_"
        self._log_handle: IO[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        c = self.config
        version, libdir = _venv_python_version(c.venv)
        site = _site_packages(c.venv, version)
        binary = site / "pytriton" / "tritonserver" / "bin" / "tritonserver"
        args = [
            str(binary),
            f"--model-repository={c.repository}",
            f"--backend-directory={prepare_backends(c.venv)}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--http-address={c.host}",
            f"--grpc-address={c.host}",
            f"--http-port={c.http_port}",
            f"--grpc-port={c.grpc_port}",
            f"--metrics-port={c.metrics_port}",
            f"--allow-metrics={'true' if c.metrics else 'false'}",
            "--pinned-memory-pool-byte-size=0",
            "--exit-on-error=false",
            "--strict-readiness=true",
            *c.extra_args,
        ]
        if c.model_config_name:
            args.append(f"--model-config-name={c.model_config_name}")
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(site / "nvidia_pytriton.libs"), libdir, env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PATH"] = f"{c.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)  # the stub must import the Triton venv's packages, not ours
        return args, env

    def start(self) -> TritonServer:
        args, env = self.command()
        log = self.config.log_file
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = log.open("wb")
            out: int | IO[bytes] = self._log_handle
        else:
            out = subprocess.DEVNULL
        # A new session, so that stop() can signal the server and every stub it spawned.
        self.process = subprocess.Popen(
            _with_parent_death_signal(args),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.config.http_url}/v2/health/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def failed_models(self) -> dict[str, str] | None:
        """Models whose load failed, with Triton's reason; None while any model is still loading."""
        request = urllib.request.Request(f"{self.config.http_url}/v2/repository/index", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                index = json.loads(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None
        if any(m.get("state") not in ("READY", "UNAVAILABLE") for m in index):
            return None
        return {m["name"]: m.get("reason", "") for m in index if m.get("state") == "UNAVAILABLE"}

    def _log_tail(self, lines: int = 30) -> str:
        log = self.config.log_file
        if log is None or not log.exists():
            return "(no log file configured)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.config.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()  # its stubs, its /dev/shm regions and the log handle must not outlive it
                raise TritonStartError(f"tritonserver exited with code {self.process.returncode}:\n{self._log_tail()}")
            if self.is_ready():
                return
            failed = self.failed_models()
            if failed:
                self.stop()
                reasons = "\n".join(f"  {name}: {reason}" for name, reason in sorted(failed.items()))
                raise TritonStartError(f"tritonserver could not load every model:\n{reasons}")
            time.sleep(0.2)
        self.stop()
        raise TritonStartError(
            f"tritonserver was not ready after {self.config.ready_timeout_s:.0f} s:\n{self._log_tail()}"
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server (it unloads models and exits), SIGKILL the group if it hangs, clean /dev/shm."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            # Stubs left behind by a killed server are in the same process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            _wait_until_gone(self.process.pid, timeout_s=10.0)
        self.remove_shm_regions()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def shm_regions(self) -> list[Path]:
        return sorted(Path("/dev/shm").glob(f"{self.shm_prefix}*"))

    def remove_shm_regions(self) -> None:
        for region in self.shm_regions():
            region.unlink(missing_ok=True)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    defaults = TritonServerConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", type=Path, default=defaults.repository)
    p.add_argument(
        "--config-name", default="cpu", help="'cpu' (python backend + onnxruntime) or 'default' (config.pbtxt)"
    )
    p.add_argument("--http-port", type=int, default=defaults.http_port)
    p.add_argument("--grpc-port", type=int, default=defaults.grpc_port)
    p.add_argument("--metrics-port", type=int, default=defaults.metrics_port)
    p.add_argument("--metrics", action="store_true", help="serve Prometheus metrics")
    p.add_argument("--log-file", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        provenance = read_provenance(args.repository)
    except ProvenanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if provenance is None:
        print(
            f"error: {args.repository} holds no prepared models; run `make standins` or `make models`", file=sys.stderr
        )
        return 1
    standins = [m.name for m in provenance if m.standin]
    if standins:
        print(f"WARNING: serving STAND-IN models with random weights: {', '.join(standins)}", flush=True)
    config = TritonServerConfig(
        repository=args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        metrics=args.metrics,
        model_config_name=None if args.config_name == "default" else args.config_name,
        log_file=args.log_file,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = TritonServer(config)
    try:
        server.start()
    except TritonStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"tritonserver ready: grpc {config.grpc_url}, http {config.http_url}", flush=True)
    try:
        while not stop.wait(1.0):
            if server.process is not None and server.process.poll() is not None:
                print(f"tritonserver exited with code {server.process.returncode}", file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
