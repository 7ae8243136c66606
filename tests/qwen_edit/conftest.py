"""Fixtures of the Qwen-Image-Edit server tests: the tiny stand-in (generated once, offline, into the
gitignored models/standins/qwen_edit) and real server processes on 127.0.0.1.

The server runs in `.venv-qwen` (built by `make setup`); the tests talk to it over gRPC from the main
environment, as the orchestrator does. The condition image follows the output size (the server's default),
and the test images are small, so that a tiny-model call takes milliseconds on a CPU. The stand-in's size
multiple is 8 (its VAE downsamples 4x; the real model's multiple is 16).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from stack.process import REPO_ROOT, ModelServerProcess, ServerProcessConfig

QWEN_PYTHON = Path(os.environ.get("INPAINT_QWEN_PYTHON", REPO_ROOT / ".venv-qwen" / "bin" / "python"))
STANDIN_DIR = REPO_ROOT / "models" / "standins" / "qwen_edit"
STANDIN_PLUS_DIR = REPO_ROOT / "models" / "standins" / "qwen_edit_plus"
GENERATOR_DIGEST_FILE = "GENERATOR_SHA256"
STANDIN_SIZE_MULTIPLE = 8
# Room for the long calls that the deadline, queue and drain tests need (the real default is 50).
MAX_STEPS = 4000
MAX_SEEDS = 12
MAX_BATCH = 4


def _generator_digest() -> str:
    digest = hashlib.sha256()
    for name in ("standin.py", "processor.py"):
        digest.update((REPO_ROOT / "servers" / "qwen_edit" / name).read_bytes())
    return digest.hexdigest()


def _standin(out: Path, pipeline: str) -> Path:
    """The tiny random-weight pipeline in `out`, regenerated only when its generator changed."""
    digest = _generator_digest()
    marker = out / GENERATOR_DIGEST_FILE
    if not (marker.is_file() and marker.read_text() == digest and (out / "model_index.json").is_file()):
        if not QWEN_PYTHON.exists():
            pytest.fail(f"{QWEN_PYTHON} not found: run `make setup` to build .venv-qwen")
        subprocess.run(
            [str(QWEN_PYTHON), "-m", "servers.qwen_edit.standin", "--out", str(out), "--pipeline", pipeline],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        marker.write_text(digest)
    return out


@pytest.fixture(scope="session")
def qwen_standin() -> Path:
    """The tiny QwenImageEditPipeline (Qwen-Image-Edit's layout)."""
    return _standin(STANDIN_DIR, "edit")


@pytest.fixture(scope="session")
def qwen_standin_plus() -> Path:
    """The tiny QwenImageEditPlusPipeline (Qwen-Image-Edit-2509/-2511's layout)."""
    return _standin(STANDIN_PLUS_DIR, "edit-plus")


def server_process(model_dir: Path, log_file: Path, *extra_args: str) -> ModelServerProcess:
    args = [
        "--model-dir",
        str(model_dir),
        "--max-steps",
        str(MAX_STEPS),
        "--max-seeds",
        str(MAX_SEEDS),
        "--max-batch",
        str(MAX_BATCH),
        "--drain-grace-s",
        "60",
        # One thread: faster for a tiny model, and fair to the other tests sharing two cores.
        "--torch-threads",
        "1",
        *extra_args,
    ]
    return ModelServerProcess(
        ServerProcessConfig("servers.qwen_edit", python=QWEN_PYTHON, args=args, log_file=log_file)
    )


@pytest.fixture(scope="session")
def qwen_server(qwen_standin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerProcess]:
    """One server for the session, with a queue of one so that RESOURCE_EXHAUSTED is reachable."""
    process = server_process(qwen_standin, tmp_path_factory.mktemp("qwen_edit") / "server.log", "--max-queue", "1")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def qwen_plus_server(qwen_standin_plus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerProcess]:
    """A server on the edit-plus stand-in (the pipeline detected from model_index.json)."""
    process = server_process(qwen_standin_plus, tmp_path_factory.mktemp("qwen_edit_plus") / "server.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def stub(qwen_server: ModelServerProcess) -> qwen_edit_pb2_grpc.QwenEditServiceStub:
    return qwen_edit_pb2_grpc.QwenEditServiceStub(qwen_server.channel())


def encode(array: np.ndarray, image_format: str = "PNG") -> image_pb2.Image:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    return image_pb2.Image(data=buffer.getvalue(), mime_type=f"image/{image_format.lower()}")


def decode(image: image_pb2.Image) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB")).astype(np.int16)


def photo(height: int = 96, width: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth test photo (gradients and a disc), so that image-space distances mean something."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 3) ** 2).astype(np.float32)
    rng = np.random.default_rng(seed)
    base = np.stack([xx / width, yy / height, disc], axis=-1) * 200 + rng.normal(0, 4, (height, width, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def edit_request(seeds: Sequence[int] = (1,), **fields: Any) -> qwen_edit_pb2.EditRequest:
    fields.setdefault("image", encode(photo()))
    fields.setdefault("prompt", "relight the face to match the scene, photorealistic skin")
    fields.setdefault("negative_prompt", "CGI, painted, plastic skin, artifacts, blur")
    fields.setdefault("num_inference_steps", 4)
    return qwen_edit_pb2.EditRequest(seeds=list(seeds), **fields)


def metric(process: ModelServerProcess, name: str) -> float:
    return process.metrics().get(name, 0.0)


def log_events(process: ModelServerProcess) -> list[dict[str, Any]]:
    log = process.config.log_file
    assert log is not None
    events = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def rpc_error(call: Any) -> grpc.RpcError:
    """Run `call()` and return the gRPC error it raised (fails the test when it succeeds)."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded; an error was expected")
