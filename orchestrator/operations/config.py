"""Settings of the operations layer: the database, the blob store, the queue, replicas and retention."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OperationsConfig:
    """Where operations live and how replicas share them.

    Attributes:
        database_url: the system database, `sqlite:///path` or `postgresql://user@host:port/db`. Empty:
            a SQLite file under `state_dir` (one machine needs nothing more).
        state_dir: the default SQLite file and blob store live here (per port, so that two local stacks
            never share operations by accident). Empty: `runs/orchestrator-<port>`.
        blob_root: the image blob store (a local directory; every replica must see the same one). Empty:
            `<state_dir>/blobs`.
        executor_id: this replica's name in the database. Empty: the host name (the pod's name in
            Kubernetes) and a random suffix, new at every start: a dead replica's work is recovered through
            its missing heartbeat, never through its name coming back.
        worker_concurrency: tasks one replica runs at once (the queue's per-replica limit).
        max_queued: tasks waiting across replicas beyond which a submission is RESOURCE_EXHAUSTED.
        heartbeat_s: how often a replica records that it is alive.
        dead_after_s: a replica silent this long is dead; another replica takes its tasks over.
        poll_s: how often watchers and the queue look for news.
        retention_s: finished operations older than this are deleted with their images.
        sweep_s: how often a replica deletes expired operations.
    """

    database_url: str = ""
    state_dir: Path | None = None
    blob_root: Path | None = None
    executor_id: str = ""
    worker_concurrency: int = 2
    max_queued: int = 256
    heartbeat_s: float = 2.0
    dead_after_s: float = 15.0
    poll_s: float = 0.1
    retention_s: float = 7 * 24 * 3600.0
    sweep_s: float = 300.0

    def __post_init__(self) -> None:
        if self.worker_concurrency < 1:
            raise ValueError(f"worker_concurrency must be at least 1, got {self.worker_concurrency}")
        if self.max_queued < 0:
            raise ValueError(f"max_queued must be at least 0, got {self.max_queued}")
        for name in ("heartbeat_s", "dead_after_s", "poll_s", "retention_s", "sweep_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dead_after_s <= 2 * self.heartbeat_s:
            raise ValueError(
                f"dead_after_s must exceed twice heartbeat_s ({self.heartbeat_s}), got {self.dead_after_s}"
            )
        if not (not self.database_url or self.database_url.startswith(("sqlite:///", "postgresql://"))):
            raise ValueError(f"database_url must start with sqlite:/// or postgresql://, got {self.database_url!r}")

    def resolved_state_dir(self, port: int) -> Path:
        return self.state_dir or Path("runs") / f"orchestrator-{port}"

    def resolved_database_url(self, port: int) -> str:
        return self.database_url or f"sqlite:///{self.resolved_state_dir(port) / 'operations.sqlite'}"

    def resolved_blob_root(self, port: int) -> Path:
        return self.blob_root or self.resolved_state_dir(port) / "blobs"

    def resolved_executor_id(self) -> str:
        return self.executor_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
