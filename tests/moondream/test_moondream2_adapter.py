"""The moondream2 adapter's loading path through the real server, on a fake moondream2 snapshot
(see fake_moondream2.py: the real code and weights cannot be downloaded here)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc
from PIL import Image

from servers.moondream.model import STANDIN_MARKER
from stack.moondream import (
    DEFAULT_PYTHON,
    MoondreamProcessConfig,
    MoondreamServerProcess,
    MoondreamStartError,
)
from stack.process import REPO_ROOT
from tests.moondream.conftest import png

PINNED = "2025-06-21"


def offline_env(modules_cache: Path) -> dict[str, str]:
    return {"HF_MODULES_CACHE": str(modules_cache), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


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
        env=offline_env(modules_cache),
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


def test_scores_read_the_distribution_query_answers_from(
    fake_snapshot: Path, modules_cache: Path, tmp_path: Path, fresh_photo: np.ndarray
) -> None:
    """At the pinned revision `query` prefills prefix + question + suffix + suffix before the answer's
    first token; the digit probabilities must come from that same position, not one token earlier."""
    image = tmp_path / "photo.png"
    Image.fromarray(fresh_photo).save(image)
    question = "How real is this face? Answer with one integer from 0 to 10."
    probe = subprocess.run(
        [
            *(str(DEFAULT_PYTHON), "-m", "tests.moondream.moondream2_probe"),
            *("--model-dir", str(fake_snapshot), "--image", str(image), "--question", question),
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
        env=offline_env(modules_cache),
    )
    seen = json.loads(probe.stdout)
    query = seen["query"]
    # The fake mirrors upstream: the one-token query suffix ends the prompt twice.
    assert query["prompt"][-1] == query["prompt"][-2]
    first_token = min(seen["score"], key=lambda call: len(call["prompt"]))
    assert first_token["prompt"] == query["prompt"]
    assert first_token["logits"] == pytest.approx(query["logits"], abs=1e-6)
    # Longer answers ("10" in a byte-level vocabulary) continue from the same prompt.
    assert all(call["prompt"][: len(query["prompt"])] == query["prompt"] for call in seen["score"])


def test_a_score_does_not_depend_on_the_rest_of_the_call(server: Any, fresh_photo: np.ndarray) -> None:
    """The KV caches the image is loaded into are shared by every query: nothing may leak between them."""
    _, stub = server
    wanted = moondream_pb2.ScoreQuery(image=png(fresh_photo), question="How real is this face?")
    others = [
        moondream_pb2.ScoreQuery(image=png(255 - fresh_photo), question="Same person? " * 8),
        moondream_pb2.ScoreQuery(image=png(fresh_photo[::2, ::3]), question="Lighting?"),
    ]

    def score(queries: list[Any], index: int) -> float:
        results = stub.Score(moondream_pb2.ScoreRequest(queries=queries), timeout=30).results
        assert results[index].method == moondream_pb2.SCORE_METHOD_DIGIT_LOGITS
        return float(results[index].score)

    inside_cold = score([others[0], wanted, others[1]], 1)  # the image is encoded inside the batch
    alone = score([wanted], 0)  # and now comes from the cache
    assert score([*others, wanted], 2) == alone
    assert score([wanted, *others], 0) == alone
    assert inside_cold == alone


def test_an_image_under_one_patch_is_invalid_argument(server: Any) -> None:
    """moondream2's encoder would upsample it; there is nothing in it to judge (the fake's patch is 8 pixels)."""
    _, stub = server
    tiny = png(np.full((7, 40, 3), 128, dtype=np.uint8))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Query(moondream_pb2.QueryRequest(image=tiny, question="Who?"), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(
        "image: is 40x7 pixels; the vision encoder needs at least 8 pixels"
    )
    smallest = png(np.full((8, 8, 3), 128, dtype=np.uint8))
    answered = stub.Query(moondream_pb2.QueryRequest(image=smallest, question="Who?", max_new_tokens=2), timeout=30)
    # moondream2 encoded it and answered (a bare response message is truthy whatever it holds).
    assert answered.model.adapter == "moondream2" and answered.image_encoded


def test_a_snapshot_at_another_revision_does_not_load(fake_snapshot: Path, modules_cache: Path, tmp_path: Path) -> None:
    other = tmp_path / "moondream2"
    shutil.copytree(fake_snapshot, other)
    (other / "REVISION").write_text("2024-08-26\n")
    with pytest.raises(
        MoondreamStartError, match="fetched at revision '2024-08-26', but this server pins '2025-06-21'"
    ):
        moondream2_server(other, tmp_path, modules_cache).start()


def test_fleet_simulation_is_refused_for_a_real_model(fake_snapshot: Path, modules_cache: Path, tmp_path: Path) -> None:
    """Slowing a real model on purpose is a misconfiguration: the server stops at start-up, naming the setting."""
    real = tmp_path / "moondream2"
    shutil.copytree(fake_snapshot, real)
    (real / STANDIN_MARKER).unlink()  # as the real snapshot: no stand-in mark
    with pytest.raises(MoondreamStartError, match="simulate_answer_s: only for stand-ins"):
        moondream2_server(real, tmp_path, modules_cache, "--simulate-answer-s=0.5").start()


def test_a_snapshot_without_its_tokenizer_does_not_load(
    fake_snapshot: Path, modules_cache: Path, tmp_path: Path
) -> None:
    other = tmp_path / "moondream2"
    shutil.copytree(fake_snapshot, other)
    (other / "tokenizer.json").unlink()
    with pytest.raises(MoondreamStartError, match="would download it from the hub"):
        moondream2_server(other, tmp_path, modules_cache).start()
