"""The moondream2 adapter's loading path through the real server, on a fake moondream2 snapshot
(see fake_moondream2.py: the real code and weights cannot be downloaded here)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc

from servers.common.launcher import REPO_ROOT
from servers.moondream.launcher import (
    DEFAULT_PYTHON,
    MoondreamProcessConfig,
    MoondreamServerProcess,
    MoondreamStartError,
)
from tests.moondream.conftest import png

PINNED = "2025-06-21"


@pytest.fixture(scope="module")
def modules_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where transformers copies remote code: kept out of the home directory."""
    return tmp_path_factory.mktemp("hf_modules")


@pytest.fixture(scope="module")
def fake_snapshot(tmp_path_factory: pytest.TempPathFactory, modules_cache: Path) -> Path:
    out = tmp_path_factory.mktemp("fake_moondream2") / "moondream2"
    subprocess.run(
        [str(DEFAULT_PYTHON), "-m", "tests.moondream.fake_moondream2", "--out", str(out), "--revision", PINNED],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        env={"HF_MODULES_CACHE": str(modules_cache), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    return out


def moondream2_server(model_dir: Path, log_dir: Path, modules_cache: Path, *args: str) -> MoondreamServerProcess:
    config = MoondreamProcessConfig(
        model_dir=model_dir,
        adapter="moondream2",
        extra_args=["--revision", PINNED, *args],
        log_file=log_dir / "moondream2.log",
        env={"HF_MODULES_CACHE": str(modules_cache)},
    )
    return MoondreamServerProcess(config)


@pytest.fixture(scope="module")
def server(fake_snapshot: Path, modules_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = moondream2_server(fake_snapshot, tmp_path_factory.mktemp("logs"), modules_cache, "--min-answer-mass", "0")
    with process:
        yield process, moondream_pb2_grpc.MoondreamServiceStub(process.channel())


def test_loads_offline_with_the_local_tokenizer_and_caches_encodings(server: Any, fresh_photo: np.ndarray) -> None:
    process, stub = server
    image = png(fresh_photo)
    first = stub.Query(moondream_pb2.QueryRequest(image=image, question="Who is this?", max_new_tokens=6), timeout=30)
    second = stub.Query(moondream_pb2.QueryRequest(image=image, question="Where?", max_new_tokens=6), timeout=30)
    assert (first.model.adapter, first.model.revision, first.model.standin) == ("moondream2", PINNED, True)
    assert first.image_encoded and not second.image_encoded
    assert process.metrics()["moondream_image_encodings"] == 1


def test_scores_from_prefill_logits(server: Any, fresh_photo: np.ndarray) -> None:
    _, stub = server
    request = moondream_pb2.ScoreRequest(queries=[moondream_pb2.ScoreQuery(image=png(fresh_photo), question="Real?")])
    (result,) = stub.Score(request, timeout=30).results
    assert result.method == moondream_pb2.SCORE_METHOD_DIGIT_LOGITS
    assert sum(result.answer_probabilities) == pytest.approx(1.0)
    assert result.score == pytest.approx(float(np.dot(np.arange(11), result.answer_probabilities)))


def test_a_snapshot_at_another_revision_does_not_load(fake_snapshot: Path, modules_cache: Path, tmp_path: Path) -> None:
    other = tmp_path / "moondream2"
    shutil.copytree(fake_snapshot, other)
    (other / "REVISION").write_text("2024-08-26\n")
    with pytest.raises(
        MoondreamStartError, match="fetched at revision '2024-08-26', but this server pins '2025-06-21'"
    ):
        moondream2_server(other, tmp_path, modules_cache).start()


def test_a_snapshot_without_its_tokenizer_does_not_load(
    fake_snapshot: Path, modules_cache: Path, tmp_path: Path
) -> None:
    other = tmp_path / "moondream2"
    shutil.copytree(fake_snapshot, other)
    (other / "tokenizer.json").unlink()
    with pytest.raises(MoondreamStartError, match="would download it from the hub"):
        moondream2_server(other, tmp_path, modules_cache).start()
