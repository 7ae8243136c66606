"""The operations suite runs on SQLite and on a real PostgreSQL server that this session starts and stops.

PostgreSQL comes from the distribution's packages (`make setup` installs them: mk/postgres.mk); it refuses
to run as root, so under root the server runs as `nobody`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from inpaint.v1 import inpaint_pb2

from orchestrator.operations.config import OperationsConfig
from orchestrator.operations.engine import OperationsEngine, TaskRunner

UNPRIVILEGED = "nobody"


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run `make setup` (mk/postgres.mk)")
    return found


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", UNPRIVILEGED, "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throwaway cluster in a temporary directory, on a free port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.user = "inpaint"

    def start(self) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, UNPRIVILEGED)
        initdb = [_postgres_bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8"]
        subprocess.run(_as_server_user(initdb), check=True, capture_output=True)
        self._ctl("start", "-w", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1")
        return self

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_server_user([_postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), *args]),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def restart(self) -> None:
        self._ctl("restart", "-w", "-m", "fast", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1")

    def stop(self) -> None:
        self._ctl("stop", "-w", "-m", "fast")

    def new_database(self) -> str:
        name = f"ops_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(
            f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's temporary directory: that one is private to root, and the server runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="inpaint-postgres-"))
    server = PostgresServer(root).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'operations.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


def config_for(database_url: str, tmp_path: Path, **overrides: object) -> OperationsConfig:
    values: dict[str, object] = {
        "database_url": database_url,
        "blob_root": tmp_path / "blobs",
        "poll_s": 0.05,
        "heartbeat_s": 0.2,
        "dead_after_s": 1.0,
        **overrides,
    }
    return OperationsConfig(**values)  # type: ignore[arg-type]


def read_task_images(task_id: str) -> tuple[bytes, bytes, bytes]:
    return (f"init of {task_id}".encode(), b"mask", b"character")


def accept_request(request: inpaint_pb2.InpaintRequest) -> None:
    return None


@contextlib.asynccontextmanager
async def running_engine(
    config: OperationsConfig, runner: TaskRunner, report_load: Callable[[int, float], None] | None = None
) -> AsyncIterator[OperationsEngine]:
    engine = OperationsEngine(
        config,
        runner,
        port=0,
        read_task_images=read_task_images,
        check_request=accept_request,
        default_budget_s=60.0,
        report_load=report_load,
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop(grace_s=0.0)
