"""Replicas as real processes on one PostgreSQL store: one is killed with SIGKILL mid-task, another finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.operations.conftest import PostgresServer
from tests.operations.fake_runner import generated

REPO = Path(__file__).resolve().parents[2]


class Replicas:
    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.log = tmp_path / "generated.log"
        self.gates = tmp_path / "gates"
        self.gates.mkdir()
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *extra: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.operations.replica", "--database-url", self.database_url,
             "--blob-root", str(self.tmp_path / "blobs"), "--log", str(self.log), "--gates", str(self.gates), *extra],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the replica is up (or has died)
        assert line.startswith("ready"), line
        return process

    def status(self, workflow_id: str) -> str:
        engine = sa.create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as connection:
            found = connection.execute(
                sa.text("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = :id"), {"id": workflow_id}
            ).scalar()
        engine.dispose()
        return str(found)

    def wait_for(self, condition: object, timeout_s: float = 60.0) -> None:
        until = time.monotonic() + timeout_s
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < until, "timed out"
            time.sleep(0.05)

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def replicas(postgres: PostgresServer, tmp_path: Path) -> Iterator[Replicas]:
    group = Replicas(postgres.new_database(), tmp_path)
    try:
        yield group
    finally:
        group.close()


def test_a_killed_replicas_task_is_finished_by_another_without_generating_again(replicas: Replicas) -> None:
    first = replicas.start("--submit", "crash-1")
    for candidate in ("g0", "g1"):
        (replicas.gates / candidate).touch()
    replicas.wait_for(lambda: len(generated(replicas.log)) == 2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert replicas.status("crash-1") == "PENDING"
    replicas.start()  # a new replica, with a new name, as a replacement pod would be
    (replicas.gates / "g2").touch()
    replicas.wait_for(lambda: replicas.status("crash-1") == "SUCCESS")
    # The two candidates made before the kill came back from their checkpoints: each was generated once.
    assert generated(replicas.log) == ["crash-1 g0", "crash-1 g1", "crash-1 g2"]


def test_sigterm_hands_back_a_task_that_another_replica_finishes(replicas: Replicas) -> None:
    first = replicas.start("--submit", "drain-1", "--grace-s", "0.2")
    (replicas.gates / "g0").touch()
    replicas.wait_for(lambda: len(generated(replicas.log)) == 1)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    started = time.monotonic()
    replicas.start()
    for candidate in ("g1", "g2"):
        (replicas.gates / candidate).touch()
    replicas.wait_for(lambda: replicas.status("drain-1") == "SUCCESS")
    assert generated(replicas.log) == ["drain-1 g0", "drain-1 g1", "drain-1 g2"]
    # Handed back at once, not after the dead-replica timeout of a silent one.
    assert time.monotonic() - started < 30


def test_a_postgresql_restart_mid_task_loses_nothing(replicas: Replicas, postgres: PostgresServer) -> None:
    replicas.start("--submit", "pg-restart")
    (replicas.gates / "g0").touch()
    replicas.wait_for(lambda: len(generated(replicas.log)) == 1)
    postgres.restart()
    for candidate in ("g1", "g2"):
        (replicas.gates / candidate).touch()
    replicas.wait_for(lambda: replicas.status("pg-restart") == "SUCCESS")
    assert generated(replicas.log) == ["pg-restart g0", "pg-restart g1", "pg-restart g2"]
