"""A LoRA fused at start-up changes the outputs and is named in every response; a missing one stops the start."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from inpaint.v1 import qwen_edit_pb2_grpc

from stack.process import REPO_ROOT, ModelServerProcess, ServerStartError
from tests.qwen_edit.conftest import QWEN_PYTHON, decode, edit_request, server_process

SCALE = 0.8
# A rank-2 LoRA in diffusers' format (`transformer.<module>.lora_A/B.weight`) for the stand-in transformer's
# attention projections (inner dimension 3 heads * 16), written with safetensors in .venv-qwen.
WRITE_LORA = """
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
state = {}
for block in (0, 1):
    for proj in ("to_q", "to_k", "to_v", "add_q_proj"):
        key = f"transformer.transformer_blocks.{block}.attn.{proj}"
        state[key + ".lora_A.weight"] = torch.randn(2, 48, generator=g)
        state[key + ".lora_B.weight"] = torch.randn(48, 2, generator=g)
save_file(state, sys.argv[1])
"""


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loras") / "tiny-lightning"
    folder.mkdir()
    subprocess.run([str(QWEN_PYTHON), "-c", WRITE_LORA, str(folder / "lora.safetensors")], cwd=REPO_ROOT, check=True)
    return folder


@pytest.fixture(scope="module")
def lora_server(
    qwen_standin: Path, lora_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelServerProcess]:
    log = tmp_path_factory.mktemp("qwen_lora") / "server.log"
    process = server_process(qwen_standin, log, "--lora-dir", str(lora_dir), "--lora-scale", str(SCALE)).start()
    yield process
    process.stop()


def test_the_lora_changes_the_output_and_the_response_names_it(
    lora_server: ModelServerProcess, lora_dir: Path, stub: qwen_edit_pb2_grpc.QwenEditServiceStub
) -> None:
    with_lora = qwen_edit_pb2_grpc.QwenEditServiceStub(lora_server.channel()).Edit(edit_request(seeds=[4]), timeout=60)
    without = stub.Edit(edit_request(seeds=[4]), timeout=60)

    assert with_lora.HasField("lora") and not without.HasField("lora")
    assert with_lora.lora.name == "tiny-lightning"
    assert with_lora.lora.path == str(lora_dir / "lora.safetensors")
    assert with_lora.lora.scale == pytest.approx(SCALE)
    difference = np.abs(decode(with_lora.images[0].image) - decode(without.images[0].image))
    assert difference.mean() > 1.0


def test_a_missing_lora_directory_stops_the_start_with_a_clear_error(qwen_standin: Path, tmp_path: Path) -> None:
    process = server_process(qwen_standin, tmp_path / "server.log", "--lora-dir", str(tmp_path / "no_such_lora"))
    with pytest.raises(ServerStartError, match=r"lora_dir: .*no_such_lora is not a directory"):
        process.start()
    process.stop()
    assert process.process is not None and process.process.returncode != 0
