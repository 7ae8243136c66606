"""The blob stores: one behavioural suite over the local directory and S3 (a real S3 REST server process), the
engine running a whole operation on S3, and the settings that choose the store."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from orchestrator.config import OrchestratorConfig
from orchestrator.operations.blobs import (
    BlobNotFoundError,
    BlobStore,
    BlobStoreError,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
)
from orchestrator.operations.config import OperationsConfig
from orchestrator.operations.status import NotFoundError
from orchestrator.search.memo import candidate_image_key
from servers.common.settings import ConfigError, load_settings
from tests.operations.conftest import config_for, running_engine
from tests.operations.fake_runner import FakeRunner
from tests.operations.test_engine import finished, request

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    endpoint_url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """An S3-compatible service: moto's standalone server (`python -m moto.server`, moto 5.2.5, `moto/server.py`),
    a werkzeug HTTP server process on 127.0.0.1 whose S3 REST API (buckets, PutObject, GetObject, HeadObject,
    ListObjectsV2 with continuation tokens, DeleteObjects, S3's XML errors) is implemented in
    `moto/s3/responses.py` over `moto/s3/models.py`. The stores talk to it over HTTP exactly as to MinIO or AWS.
    """
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output, stderr=subprocess.STDOUT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )  # fmt: skip
    endpoint_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(endpoint_url, process, log)
        yield MotoServer(endpoint_url, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_answering(endpoint_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll moto's own health endpoint (`moto/moto_api`) until it answers, as the other fixtures wait on health."""
    deadline = time.monotonic() + 60.0
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto's server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto's server did not answer within 60 s: {log.read_text()[-2000:]}")
        time.sleep(0.05)


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials for this test's clients (moto checks no signature), and no AWS files of the machine's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Bucket:
    """A new bucket on the S3 server, and a client of its own to look inside it (not the store's)."""

    name: str
    endpoint_url: str
    client: S3Client

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def bucket(s3_server: MotoServer, s3_credentials: None) -> Bucket:
    client = boto3.session.Session().client("s3", endpoint_url=s3_server.endpoint_url)
    name = f"blobs-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, s3_server.endpoint_url, client)


@dataclass
class StoreUnderTest:
    store: BlobStore
    # Every key the backend itself holds, read without the store (the directory, or the bucket's listing).
    stored: Callable[[], list[str]]
    # The number of keys in each DeleteObjects call the store made (S3 only).
    delete_batches: list[int] = field(default_factory=list)


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def under_test(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    if request.param == "local":
        root = tmp_path / "blobs"
        return StoreUnderTest(
            LocalBlobStore(root), lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        )
    bucket: Bucket = request.getfixturevalue("bucket")
    prefix = "tenant/operations" if request.param == "s3-prefixed" else ""
    store = S3BlobStore(bucket.name, prefix, endpoint_url=bucket.endpoint_url)
    batches: list[int] = []

    def record_batch(params: dict[str, Any], **_: object) -> None:
        batches.append(len(params["Delete"]["Objects"]))

    store.client.meta.events.register("provide-client-params.s3.DeleteObjects", record_batch)

    def stored() -> list[str]:
        keys = bucket.keys()
        assert all(key.startswith(prefix) for key in keys), f"objects outside the key prefix {prefix!r}: {keys}"
        return [key.removeprefix(f"{prefix}/") for key in keys]

    return StoreUnderTest(store, stored, batches)


def test_a_blob_comes_back_as_it_was_put(under_test: StoreUnderTest) -> None:
    store = under_test.store
    data = bytes(range(256)) * 1000
    assert store.put("r1/1/response.pb", data) == "r1/1/response.pb"
    assert store.get("r1/1/response.pb") == data
    assert store.put("r1/empty", b"") == "r1/empty" and store.get("r1/empty") == b""
    assert under_test.stored() == ["r1/1/response.pb", "r1/empty"]


def test_a_second_put_replaces_the_blob(under_test: StoreUnderTest) -> None:
    under_test.store.put("r1/memo/g0", b"first")
    under_test.store.put("r1/memo/g0", b"second")
    assert under_test.store.get("r1/memo/g0") == b"second"
    assert under_test.stored() == ["r1/memo/g0"]


def test_a_missing_blob_is_blob_not_found(under_test: StoreUnderTest) -> None:
    under_test.store.put("r1/present", b"x")
    for missing in ("r1/absent", "r2/present", "r1", "r1/present/deeper"):
        with pytest.raises(BlobNotFoundError):
            under_test.store.get(missing)


@pytest.mark.parametrize("key", ["", "/r1/x", "r1//x", "r1/", "../r1", "r1/./x", "r1/../x", "r 1", "r1/é", "r1?x"])
def test_a_key_that_is_not_a_relative_path_is_refused_by_every_method(under_test: StoreUnderTest, key: str) -> None:
    store = under_test.store
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.delete_prefix(key),
        lambda: store.exists(key),
    ):
        with pytest.raises(ValueError, match="blob key"):
            call()
    assert under_test.stored() == []


def test_delete_prefix_deletes_that_prefix_and_no_sibling(under_test: StoreUnderTest) -> None:
    store = under_test.store
    for key in ("abc/request-1.pb", "abc/1/candidates/g0.png", "abc/1/memo/g0", "abcd/request-1.pb", "ab/x", "abc.d"):
        store.put(key, key.encode())
    store.delete_prefix("abc")
    assert under_test.stored() == ["ab/x", "abc.d", "abcd/request-1.pb"]
    assert not store.exists("abc") and store.exists("abcd")
    store.delete_prefix("never-written")
    assert under_test.stored() == ["ab/x", "abc.d", "abcd/request-1.pb"]


def test_delete_prefix_deletes_more_than_a_thousand_blobs(under_test: StoreUnderTest) -> None:
    store = under_test.store
    count = 1001
    keys = [f"big/1/memo/{index:04d}" for index in range(count)]
    # From several threads at once through one store, as the engine's to_thread calls do.
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(lambda key: store.put(key, b"m"), keys)) == keys
    store.put("bigger/1/memo/0000", b"kept")
    assert len(under_test.stored()) == count + 1
    store.delete_prefix("big")
    assert under_test.stored() == ["bigger/1/memo/0000"]
    if isinstance(store, S3BlobStore):
        # S3 refuses a DeleteObjects of more than 1000 keys (moto does not check): the store splits them.
        assert sum(under_test.delete_batches) == count and max(under_test.delete_batches) <= 1000


def test_exists_says_whether_anything_is_under_a_prefix_or_at_a_key(under_test: StoreUnderTest) -> None:
    store = under_test.store
    assert not store.exists("r1")
    store.put("r1/1/candidates/g0.png", b"png")
    assert store.exists("r1") and store.exists("r1/1") and store.exists("r1/1/candidates/g0.png")
    assert not store.exists("r") and not store.exists("r1/2") and not store.exists("r1/1/candidates/g0")


def test_s3_objects_live_under_the_key_prefix_in_the_bucket(bucket: Bucket) -> None:
    store = S3BlobStore(bucket.name, "inpaint/operations", endpoint_url=bucket.endpoint_url)
    store.put("r1/request-1.pb", b"request")
    assert bucket.keys() == ["inpaint/operations/r1/request-1.pb"]
    assert bucket.client.get_object(Bucket=bucket.name, Key="inpaint/operations/r1/request-1.pb")["Body"].read() == (
        b"request"
    )


def _briefly_unavailable(failures: int, seen: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    """Answers S3's 503 (ServiceUnavailable) to the first `failures` requests, then 200: an overloaded store."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            seen.append(self.path)
            self.send_response(503 if len(seen) <= failures else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.mark.parametrize(("failures", "reachable"), [(2, True), (10, False)])
def test_s3_retries_a_transient_error_three_times_in_all(s3_credentials: None, failures: int, reachable: bool) -> None:
    """botocore's standard retry mode: 3 attempts in all (its legacy mode makes 5)."""
    seen: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _briefly_unavailable(failures, seen))
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        store = S3BlobStore("blobs", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")
        if reachable:
            store.check_reachable()
        else:
            with pytest.raises(BlobStoreError, match="503"):
                store.check_reachable()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/blobs"] * 3
    timeouts: Any = store.client.meta.config
    assert (timeouts.connect_timeout, timeouts.read_timeout) == (5.0, 30.0)


def test_the_settings_choose_the_store(bucket: Bucket, tmp_path: Path) -> None:
    local = open_blob_store(OperationsConfig(blob_root=tmp_path / "here"), port=0)
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "here"
    s3 = open_blob_store(
        OperationsConfig(
            blob_root=tmp_path / "unused",
            blob_url=f"s3://{bucket.name}/some/prefix/",
            s3_endpoint_url=bucket.endpoint_url,
            s3_region="eu-west-1",
        ),
        port=0,
    )
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.key_prefix) == (bucket.name, "some/prefix/")
    assert s3.client.meta.region_name == "eu-west-1"
    s3.put("r1/x", b"x")
    assert bucket.keys() == ["some/prefix/r1/x"] and not (tmp_path / "unused").exists()


def test_an_unreachable_bucket_stops_the_start_naming_the_settings(bucket: Bucket) -> None:
    missing = OperationsConfig(blob_url=f"s3://{bucket.name}-missing/p", s3_endpoint_url=bucket.endpoint_url)
    with pytest.raises(BlobStoreError, match=r"operations\.blob_url .*-missing/p.*s3_endpoint_url"):
        open_blob_store(missing, port=0)
    nobody = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(BlobStoreError, match=rf"s3_endpoint_url '{nobody}'"):
        open_blob_store(OperationsConfig(blob_url=f"s3://{bucket.name}", s3_endpoint_url=nobody), port=0)


def test_an_operation_runs_on_s3_and_retention_deletes_its_blobs(bucket: Bucket, tmp_path: Path) -> None:
    config = config_for(
        f"sqlite:///{tmp_path / 'operations.sqlite'}",
        tmp_path,
        blob_url=f"s3://{bucket.name}/operations",
        s3_endpoint_url=bucket.endpoint_url,
        retention_s=1.5,
    )

    async def scenario() -> None:
        async with running_engine(config, FakeRunner(tmp_path / "log")) as engine:
            operation, _ = await engine.submit(request("r1"))
            _, done = await finished(engine, operation.name)
            assert done.response.image.data == b"init"
            candidates = ("g0", "g1", "g2")
            assert bucket.keys() == sorted(
                [
                    "operations/r1/request-1.pb",
                    "operations/r1/1/response.pb",
                    *(f"operations/r1/1/candidates/{c}.png" for c in candidates),
                    *(f"operations/r1/1/memo/{candidate_image_key(c)}" for c in candidates),
                ]
            )
            assert await engine.candidate_image(operation.name, "g1") == b"png of g1"
            assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").iterdir())
            await asyncio.sleep(2.6)  # retention is wall-clock time (SQLite records whole seconds): let it pass
            assert await engine.sweep() == 1
            with pytest.raises(NotFoundError):
                await engine.get(operation.name)
            assert bucket.keys() == []

    asyncio.run(asyncio.wait_for(scenario(), timeout=120))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"INPAINT_OPERATIONS__BLOB_URL": "gs://bucket/p"}, "'gs://bucket/p': not an s3:// URL"),
        ({"INPAINT_OPERATIONS__BLOB_URL": "/var/blobs"}, "'/var/blobs': not an s3:// URL"),
        ({"INPAINT_OPERATIONS__BLOB_URL": "s3://"}, "bucket '' is not a bucket name"),
        ({"INPAINT_OPERATIONS__BLOB_URL": "s3://my bucket"}, "bucket 'my bucket' is not a bucket name"),
        ({"INPAINT_OPERATIONS__BLOB_URL": "s3://b/a//c"}, "key prefix 'a//c'"),
        ({"INPAINT_OPERATIONS__BLOB_URL": "s3://b/../c"}, "key prefix '../c'"),
        ({"INPAINT_OPERATIONS__S3_ENDPOINT_URL": "http://minio:9000"}, "apply only to an s3:// blob_url"),
        (
            {"INPAINT_OPERATIONS__BLOB_URL": "s3://b", "INPAINT_OPERATIONS__S3_ENDPOINT_URL": "minio:9000"},
            "s3_endpoint_url must be an http:// or https:// URL",
        ),
    ],
)
def test_a_bad_blob_setting_is_refused_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(OrchestratorConfig, [], env)
    assert named in str(caught.value)
    if "INPAINT_OPERATIONS__S3_ENDPOINT_URL" not in env:
        assert "blob_url must be empty (the local directory blob_root), s3://bucket or s3://bucket/key/prefix" in (
            str(caught.value)
        )


def test_the_blob_settings_come_from_flags_and_environment() -> None:
    config = load_settings(
        OrchestratorConfig,
        ["--operations.blob-url", "s3://inpaint/ops", "--operations.s3-endpoint-url", "http://minio:9000"],
        {"INPAINT_OPERATIONS__S3_REGION": "us-east-1"},
    )
    assert config.operations.s3_location() == ("inpaint", "ops")
    assert (config.operations.s3_endpoint_url, config.operations.s3_region) == ("http://minio:9000", "us-east-1")
    assert OrchestratorConfig().operations.s3_location() is None


def test_the_service_does_not_start_on_a_bad_blob_url() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.service", "--port=0", "--metrics-port=0"],
        cwd=REPO, env={"INPAINT_OPERATIONS__BLOB_URL": "ftp://blobs/x", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "blob_url must be empty (the local directory blob_root), s3://bucket" in done.stderr
    assert "'ftp://blobs/x': not an s3:// URL" in done.stderr


def test_moto_is_the_version_the_fixture_describes() -> None:
    assert version("moto") == "5.2.5", "update the s3_server fixture's docstring to the new version"


def test_the_service_does_not_start_when_the_object_store_does_not_answer(tmp_path: Path) -> None:
    """Before, an unreachable bucket stopped the service with a traceback; now with one line naming the settings."""
    closed = _free_port()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.service", "--port=0", "--metrics-port=0",
         f"--operations.state-dir={tmp_path}", "--operations.blob-url=s3://absent/ops",
         f"--operations.s3-endpoint-url=http://127.0.0.1:{closed}", "--operations.s3-region=us-east-1"],
        cwd=REPO, env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "\nblob store error: operations.blob_url" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "blob_url" in done.stderr
