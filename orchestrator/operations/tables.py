"""The operations layer's own tables, beside DBOS's in the same database: progress events and heartbeats.

DBOS records workflows, steps, queues and results; these two things it does not: each task's progress
events (what a watcher that reconnects is shown again, from any replica), and which replicas are alive
(open-source DBOS leaves that to its hosted Conductor; here each replica writes a heartbeat and the others
take over the tasks of one that stops).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()

PROGRESS = sa.Table(
    "inpaint_progress",
    METADATA,
    sa.Column("workflow_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("event", sa.Text, nullable=False),
)

EXECUTORS = sa.Table(
    "inpaint_executors",
    METADATA,
    sa.Column("executor_id", sa.String(200), primary_key=True),
    sa.Column("heartbeat_s", sa.Float, nullable=False),
)


def engine_for(database_url: str) -> sa.Engine:
    """SQLAlchemy engine on DBOS's system database (psycopg 3 for PostgreSQL, as DBOS uses)."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    if url.startswith("sqlite"):
        # Several threads of one replica, and several replicas, write the same file: wait, do not fail.
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url, pool_pre_ping=True)


@dataclass
class Tables:
    engine: sa.Engine

    def create(self) -> None:
        METADATA.create_all(self.engine, checkfirst=True)

    def append_progress(self, workflow_id: str, event: dict[str, Any], retry_s: float = 60.0) -> None:
        """Append one event; the sequence number is the next free one for this workflow.

        A database that restarts (a PostgreSQL failover) must not fail the task: retried for `retry_s`.
        """
        until = time.monotonic() + retry_s
        delay = 0.05
        while True:
            try:
                self._append_progress(workflow_id, event)
                return
            except sa.exc.OperationalError:
                if time.monotonic() + delay > until:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _append_progress(self, workflow_id: str, event: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            last = connection.execute(
                sa.select(sa.func.max(PROGRESS.c.seq)).where(PROGRESS.c.workflow_id == workflow_id)
            ).scalar()
            connection.execute(
                PROGRESS.insert().values(
                    workflow_id=workflow_id, seq=(last or 0) + 1, event=json.dumps(event, sort_keys=True)
                )
            )

    def progress_after(self, workflow_id: str, seq: int) -> list[tuple[int, dict[str, Any]]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(PROGRESS.c.seq, PROGRESS.c.event)
                .where(PROGRESS.c.workflow_id == workflow_id, PROGRESS.c.seq > seq)
                .order_by(PROGRESS.c.seq)
            ).all()
        return [(row.seq, json.loads(row.event)) for row in rows]

    def last_progress(self, workflow_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(PROGRESS.c.event)
                .where(PROGRESS.c.workflow_id == workflow_id)
                .order_by(PROGRESS.c.seq.desc())
                .limit(1)
            ).first()
        return None if row is None else dict(json.loads(row.event))

    def delete_progress(self, workflow_ids: list[str]) -> None:
        with self.engine.begin() as connection:
            connection.execute(PROGRESS.delete().where(PROGRESS.c.workflow_id.in_(workflow_ids)))

    def heartbeat(self, executor_id: str, at: float | None = None) -> None:
        now = time.time() if at is None else at
        with self.engine.begin() as connection:
            updated = connection.execute(
                EXECUTORS.update().where(EXECUTORS.c.executor_id == executor_id).values(heartbeat_s=now)
            ).rowcount
            if not updated:
                connection.execute(EXECUTORS.insert().values(executor_id=executor_id, heartbeat_s=now))

    def live_executors(self, dead_after_s: float) -> int:
        """Replicas that wrote a heartbeat within `dead_after_s`."""
        cutoff = time.time() - dead_after_s
        with self.engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(EXECUTORS).where(EXECUTORS.c.heartbeat_s >= cutoff)
            ).scalar_one()
        return int(count)

    def claim_dead(self, dead_after_s: float) -> list[str]:
        """Replicas silent for `dead_after_s`, each claimed by exactly one caller (its row deleted)."""
        cutoff = time.time() - dead_after_s
        with self.engine.connect() as connection:
            silent = (
                connection.execute(sa.select(EXECUTORS.c.executor_id).where(EXECUTORS.c.heartbeat_s < cutoff))
                .scalars()
                .all()
            )
        claimed = []
        for executor_id in silent:
            with self.engine.begin() as connection:
                # Only one replica's delete matches: that one recovers the dead replica's tasks.
                gone = connection.execute(
                    EXECUTORS.delete().where(EXECUTORS.c.executor_id == executor_id, EXECUTORS.c.heartbeat_s < cutoff)
                ).rowcount
            if gone:
                claimed.append(executor_id)
        return claimed

    def forget(self, executor_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(EXECUTORS.delete().where(EXECUTORS.c.executor_id == executor_id))
