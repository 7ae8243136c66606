"""Session fixtures shared by every test folder: real photos, stand-in weights, a real tritonserver."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.faces.triton_client import TritonConfig, TritonModels
from servers.triton.contracts import ALL_MODELS
from stack.triton import TritonServer, TritonServerConfig
from tools.models.prepare import prepare_repository
from tools.models.standins import write_standins

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return sample_photos.astronaut()


@pytest.fixture(scope="session")
def group_photo() -> np.ndarray:
    return sample_photos.group()


@pytest.fixture(scope="session")
def tom_hanks() -> np.ndarray:
    return sample_photos.tom_hanks()


@pytest.fixture(scope="session")
def standin_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_standins(tmp_path_factory.mktemp("weights"))["det_10g"].parents[1]


def copy_model_configs(target: Path) -> Path:
    """A model repository with this project's configurations and no model files yet."""
    for contract in ALL_MODELS:
        source = REPO_ROOT / "triton_models" / contract.triton_name
        shutil.copytree(source, target / contract.triton_name, ignore=shutil.ignore_patterns("1"))
    return target


@pytest.fixture(scope="session")
def standin_repository(tmp_path_factory: pytest.TempPathFactory, standin_weights: Path) -> Path:
    repository = copy_model_configs(tmp_path_factory.mktemp("triton_models"))
    prepare_repository(standin_weights, repository)
    return repository


@pytest.fixture(scope="session")
def triton_server(standin_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    log = tmp_path_factory.mktemp("logs") / "tritonserver.log"
    config = TritonServerConfig.on_free_ports(repository=standin_repository, log_file=log)
    with TritonServer(config) as server:
        yield server


def settled_statistics(models: TritonModels, model: str, timeout_s: float = 5.0) -> tuple[int, int]:
    """(inferences, executions) once Triton has recorded every finished request.

    Triton updates its statistics just after it answers, so a read right after a response can
    miss that response.
    """
    deadline = time.monotonic() + timeout_s
    last = models.inference_statistics(model)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        current = models.inference_statistics(model)
        if current == last:
            return current
        last = current
    return last


@pytest.fixture(scope="session")
def triton_models(triton_server: TritonServer) -> Iterator[TritonModels]:
    models = TritonModels(TritonConfig(url=triton_server.config.grpc_url))
    yield models
    models.close()
