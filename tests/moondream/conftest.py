"""Fixtures of the Moondream server tests: the tiny stand-in (generated once, offline) and real server processes.

The server runs in its own environment (`.venv-moondream`, built by `make setup`); the tests talk to it
over gRPC from the main environment, as the orchestrator does.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inpaint.v1 import image_pb2, moondream_pb2_grpc
from PIL import Image

from orchestrator import sample_photos
from stack.moondream import DEFAULT_PYTHON, MoondreamProcessConfig, MoondreamServerProcess
from stack.process import REPO_ROOT

STANDIN_DIR = REPO_ROOT / "models" / "standins" / "moondream"
FINGERPRINT_FILE = "GENERATOR_SHA256"


def _generator_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("standin.py", "processing.py"):
        digest.update((REPO_ROOT / "servers" / "moondream" / name).read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def moondream_standin() -> Path:
    """The tiny random-weight VLM in models/standins/moondream (gitignored), regenerated when its generator changed."""
    fingerprint = _generator_fingerprint()
    marker = STANDIN_DIR / FINGERPRINT_FILE
    if not (marker.is_file() and marker.read_text() == fingerprint):
        if not DEFAULT_PYTHON.exists():
            pytest.fail(f"{DEFAULT_PYTHON} not found: run `make setup` to build .venv-moondream")
        subprocess.run(
            [str(DEFAULT_PYTHON), "-m", "servers.moondream.standin", "--out", str(STANDIN_DIR)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        marker.write_text(fingerprint)
    return STANDIN_DIR


def start_server(model_dir: Path, log_dir: Path, *extra_args: str, wait: bool = True) -> MoondreamServerProcess:
    config = MoondreamProcessConfig(
        model_dir=model_dir, extra_args=list(extra_args), log_file=log_dir / "moondream.log"
    )
    return MoondreamServerProcess(config).start(wait=wait)


@pytest.fixture(scope="session")
def moondream_server(
    moondream_standin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MoondreamServerProcess]:
    """One server for the session: answer probabilities always count (the stand-in's digits carry little
    probability), and a short queue so that RESOURCE_EXHAUSTED is reachable."""
    server = start_server(
        moondream_standin, tmp_path_factory.mktemp("moondream"), "--min-answer-mass", "0", "--max-queue", "2"
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moondream_stub(moondream_server: MoondreamServerProcess) -> moondream_pb2_grpc.MoondreamServiceStub:
    # The server's own channel, closed by its stop().
    return moondream_pb2_grpc.MoondreamServiceStub(moondream_server.channel())


def log_lines_during(
    server: MoondreamServerProcess, call: Callable[[], object], timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """The server's JSON log lines about `call`: those written from its start until its closing `rpc`
    line (which a refused call may write just after the caller already has its status)."""
    path = server.moondream_config.log_file
    assert path is not None
    start = path.stat().st_size
    call()
    deadline = time.monotonic() + timeout_s
    while True:
        with path.open("rb") as log:
            log.seek(start)
            text = log.read().decode()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        if any(line["event"] == "rpc" for line in lines):
            return lines
        assert time.monotonic() < deadline, "the server never logged the end of the call"
        time.sleep(0.01)


def png(image: np.ndarray) -> image_pb2.Image:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return image_pb2.Image(data=buffer.getvalue(), mime_type="image/png")


@pytest.fixture(scope="session")
def face_photo() -> np.ndarray:
    return sample_photos.astronaut()[:256, 96:352]


@pytest.fixture
def fresh_photo(request: pytest.FixtureRequest) -> np.ndarray:
    """A photo no other test sent (so its encoding cannot be cached yet): noise seeded by the test's name."""
    seed = int.from_bytes(hashlib.sha256(request.node.nodeid.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
