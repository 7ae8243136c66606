"""The blob store: images, requests, results and each attempt's memo by key; the database holds keys only.

Two stores behind one protocol (`BlobStore`), chosen by the settings (`open_blob_store`):

- `LocalBlobStore`: a local directory (every replica must mount the same one). Writes are atomic (a
  temporary file renamed into place), so a replica killed mid-write leaves no half-written blob under a key.
- `S3BlobStore`: objects in an S3 bucket, under an optional key prefix: AWS S3 or any S3-compatible store
  (`operations.s3_endpoint_url`). A PUT is atomic in S3 too: an object appears whole or not at all.
  Credentials come from boto3's usual chain (environment, web identity, instance role), never a setting.

Keys are `<request_id>/...`; both stores accept exactly the keys `check_key` accepts.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

    from orchestrator.operations.config import OperationsConfig

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")

# S3's DeleteObjects takes at most this many keys per call (and a ListObjectsV2 page holds at most as many).
S3_DELETE_BATCH = 1000
# A connection that is not up in this long is not coming; retried by botocore's standard mode.
S3_CONNECT_TIMEOUT_S = 5.0
# Between two reads of one response (not the whole transfer): a blob is at most a few MiB.
S3_READ_TIMEOUT_S = 30.0
# Blob calls run in the event loop's default executor (asyncio.to_thread): one pooled connection per thread
# of the orchestrator's (`worker_threads`, 32 by default) rather than botocore's 10.
S3_MAX_POOL_CONNECTIONS = 32


class BlobNotFoundError(KeyError):
    """No blob under that key (expired, deleted, or never written)."""


class BlobStoreError(RuntimeError):
    """The blob store could not do what was asked (it is unreachable, or refused part of a deletion)."""


def check_key(key: str) -> str:
    """The key itself if it is a relative path of letters, digits, '.', '-' and '_' (no '.' or '..' part)."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"blob key {key!r} is not a relative path of letters, digits, '.', '-' and '_'")
    return key


class BlobStore(Protocol):
    """Blobs by key. Every method may be called from several threads at once."""

    def put(self, key: str, data: bytes) -> str:
        """Store `data` under `key` (replacing what was there); the key."""
        ...

    def get(self, key: str) -> bytes:
        """The blob under `key`; BlobNotFoundError if there is none."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under `<prefix>/` (an operation's), and nothing else."""
        ...

    def exists(self, prefix: str) -> bool:
        """Whether there is a blob under `prefix` or under `<prefix>/`."""
        ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            # A directory is a prefix, not a blob (as in S3, where no object has that key).
            raise BlobNotFoundError(key) from None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def exists(self, prefix: str) -> bool:
        return self._path(prefix).exists()


class S3BlobStore:
    """Blobs as objects `<key_prefix>/<key>` of one bucket, through one boto3 client (clients are thread-safe;
    boto3's resources are not, so none is used).

    Args:
        bucket: the bucket; it must exist (`check_reachable` says so at start).
        key_prefix: where this service's objects live in the bucket ('' for the top), itself a valid key.
        endpoint_url: an S3-compatible store's endpoint ('' for AWS's own).
        region: the bucket's region ('' for boto3's usual resolution: AWS_REGION, the config file, ...).
    """

    def __init__(self, bucket: str, key_prefix: str = "", *, endpoint_url: str = "", region: str = "") -> None:
        self.bucket = bucket
        self.key_prefix = f"{check_key(key_prefix)}/" if key_prefix else ""
        self.endpoint_url = endpoint_url
        config = Config(
            retries={"mode": "standard"},
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=S3_READ_TIMEOUT_S,
            max_pool_connections=S3_MAX_POOL_CONNECTIONS,
        )
        if endpoint_url:
            # botocore (since 1.36) adds CRC checksums to every upload and asks for them on every download by
            # default; several S3-compatible stores refuse those headers. Elsewhere than AWS, checksums go
            # only where the API requires one (DeleteObjects).
            config = config.merge(
                Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
            )
        # A session of our own: boto3's default session is shared process-wide state.
        self.client: S3Client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key_prefix}".removesuffix("/")

    def _object_key(self, key: str) -> str:
        return f"{self.key_prefix}{check_key(key)}"

    def check_reachable(self) -> None:
        """BlobStoreError naming the settings unless the bucket answers (HeadBucket) with these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            endpoint = f"s3_endpoint_url {self.endpoint_url!r}" if self.endpoint_url else "AWS's endpoint"
            raise BlobStoreError(
                f"operations.blob_url {self.url!r}: bucket {self.bucket!r} is not reachable at {endpoint} "
                f"(operations.s3_endpoint_url; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web "
                f"identity or an instance role): {error}"
            ) from error

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)
        return key

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as error:
            # Only a missing key: a missing bucket (NoSuchBucket, also 404) is a broken store, not an expired blob.
            if error.response.get("Error", {}).get("Code") == "NoSuchKey":
                raise BlobNotFoundError(key) from None
            raise
        return response["Body"].read()

    def delete_prefix(self, prefix: str) -> None:
        # Listed whole before deleting: some S3-compatible stores page by offset, and deleting between pages
        # would skip objects there.
        listed = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=f"{self._object_key(prefix)}/",
            PaginationConfig={"PageSize": S3_DELETE_BATCH},
        )
        keys: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"]} for page in listed for item in page.get("Contents", [])
        ]
        for start in range(0, len(keys), S3_DELETE_BATCH):
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + S3_DELETE_BATCH], "Quiet": True}
            )
            # DeleteObjects answers 200 even when some keys were refused: the refusals are in the body.
            if errors := response.get("Errors"):
                shown = ", ".join(f"{e.get('Key')}: {e.get('Code')}" for e in errors[:3])
                raise BlobStoreError(f"{self.url}: {len(errors)} blobs under {prefix!r} not deleted ({shown})")

    def exists(self, prefix: str) -> bool:
        full = self._object_key(prefix)
        if self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{full}/", MaxKeys=1).get("KeyCount", 0):
            return True
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as error:
            # HEAD has no body, so no error code beyond the status.
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True


def open_blob_store(config: OperationsConfig, port: int) -> BlobStore:
    """The store the settings name: S3 for an `s3://` blob_url (checked reachable now), else blob_root."""
    location = config.s3_location()
    if location is None:
        return LocalBlobStore(config.resolved_blob_root(port))
    bucket, key_prefix = location
    store = S3BlobStore(bucket, key_prefix, endpoint_url=config.s3_endpoint_url, region=config.s3_region)
    store.check_reachable()
    return store
