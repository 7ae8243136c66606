"""Settings of the operations layer: the database, the blob store, the queue, replicas and retention."""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# The bucket names botocore's client accepts (`botocore/handlers.py`, VALID_BUCKET); a store may be stricter.
_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_BLOB_URL_FORMS = "empty (the local directory blob_root), s3://bucket or s3://bucket/key/prefix"


@dataclass(frozen=True)
class OperationsConfig:
    """Where operations live and how replicas share them.

    Attributes:
        database_url: the system database, `sqlite:///path` or `postgresql://user@host:port/db`. Empty:
            a SQLite file under `state_dir` (one machine needs nothing more).
        state_dir: the default SQLite file and blob store live here (per port, so that two local stacks
            never share operations by accident). Empty: `runs/orchestrator-<port>`.
        blob_root: the image blob store when `blob_url` is empty (a local directory; every replica must see
            the same one). Empty: `<state_dir>/blobs`.
        blob_url: where images, requests, results and memos live. Empty: the local directory `blob_root`.
            `s3://bucket` or `s3://bucket/key/prefix`: objects in that S3 bucket (under that prefix), which
            must exist: the service checks it answers at start and stops if not. Credentials come the
            standard boto3 way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity such as IRSA, an
            instance role), never from a setting.
        s3_endpoint_url: the S3 API's endpoint for an `s3://` blob_url. Empty: AWS's own. Set it for any
            S3-compatible store (MinIO, Ceph RGW, Cloudflare R2, GCS's XML API), e.g. `http://minio:9000`.
        s3_region: the bucket's region for an `s3://` blob_url. Empty: boto3's usual resolution
            (AWS_REGION, AWS_DEFAULT_REGION, the AWS config file).
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
    blob_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
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
        self._check_blob_settings()

    def _check_blob_settings(self) -> None:
        if self.blob_url:
            self.s3_location()
        elif self.s3_endpoint_url or self.s3_region:
            raise ValueError(
                "s3_endpoint_url and s3_region apply only to an s3:// blob_url, which is empty "
                "(blobs would go to the local directory blob_root)"
            )
        if self.s3_endpoint_url:
            endpoint = urlsplit(self.s3_endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
                raise ValueError(f"s3_endpoint_url must be an http:// or https:// URL, got {self.s3_endpoint_url!r}")

    def s3_location(self) -> tuple[str, str] | None:
        """(bucket, key prefix) of an `s3://` blob_url; None for the local directory. ValueError naming
        blob_url and its accepted forms for anything else."""
        if not self.blob_url:
            return None
        # Imported here: blobs.py loads boto3, which reading the settings alone should not pay for.
        from orchestrator.operations.blobs import check_key

        scheme, separator, rest = self.blob_url.partition("://")
        bucket, _, key_prefix = rest.partition("/")
        key_prefix = key_prefix.strip("/")
        problem = ""
        if scheme != "s3" or not separator:
            problem = "not an s3:// URL"
        elif not _BUCKET.fullmatch(bucket):
            problem = f"bucket {bucket!r} is not a bucket name (letters, digits, '.', '-', '_')"
        elif key_prefix:
            try:
                check_key(key_prefix)
            except ValueError:
                problem = f"key prefix {key_prefix!r} is not a relative path of letters, digits, '.', '-' and '_'"
        if problem:
            raise ValueError(f"blob_url must be {_BLOB_URL_FORMS}; {self.blob_url!r}: {problem}")
        return bucket, key_prefix

    def resolved_state_dir(self, port: int) -> Path:
        return self.state_dir or Path("runs") / f"orchestrator-{port}"

    def resolved_database_url(self, port: int) -> str:
        return self.database_url or f"sqlite:///{self.resolved_state_dir(port) / 'operations.sqlite'}"

    def resolved_blob_root(self, port: int) -> Path:
        return self.blob_root or self.resolved_state_dir(port) / "blobs"

    def resolved_executor_id(self) -> str:
        return self.executor_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
