"""Settings: one home for each default, validation at start-up, per-request bounds from one table, and
work split to fit the model servers' limits."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest
from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc

from orchestrator import sample_photos
from orchestrator.config import OVERRIDES, OVERRIDES_BY_NAME, OrchestratorConfig, RequestSettings
from orchestrator.errors import InvalidInputError
from orchestrator.imaging.blend import BlendConfig
from orchestrator.imaging.encode import png_message
from orchestrator.refine.qwen_client import SERVER_MAX_SEEDS, QwenEditClient, QwenEditClientConfig
from orchestrator.refine.qwen_generator import QwenEditGenerator, RefinementConfig, TaskGeometry
from orchestrator.scoring.gemini import GeminiConfig
from orchestrator.search import Deadline, GenerationMode, GenerationRequest, SearchConfig, Stage, StageRequest
from servers.common.settings import ConfigError, load_settings
from servers.qwen_edit.config import QwenEditConfig

REPO = Path(__file__).resolve().parents[2]


def test_each_part_keeps_its_own_defaults() -> None:
    """The orchestrator nests its parts' settings: no second copy of a default that could disagree
    (Gemini's concurrency was 4 in the orchestrator's flat config and 8 in GeminiConfig)."""
    config = OrchestratorConfig()
    for nested, own in (
        (config.gemini, GeminiConfig()),
        (config.search, SearchConfig()),
        (config.refinement, RefinementConfig()),
        (config.blend, BlendConfig()),
        (config.qwen_edit, QwenEditClientConfig()),
    ):
        assert isinstance(nested, type(own)) and dataclasses.asdict(nested) == dataclasses.asdict(own)


def test_limits_of_the_qwen_edit_server_are_the_servers() -> None:
    server = QwenEditConfig()
    assert OVERRIDES_BY_NAME["num_inference_steps"].high == server.max_steps
    assert server.max_seeds == SERVER_MAX_SEEDS


def test_nested_settings_come_from_file_env_and_flags_in_that_order(tmp_path: Path) -> None:
    settings_file = tmp_path / "orchestrator.toml"
    settings_file.write_text("port = 1\n[search]\nk_global = 5\nk_local = 2\n")
    env = {"INPAINT_SEARCH__K_GLOBAL": "6", "INPAINT_BLEND__FEATHER_PX": "9"}
    config = load_settings(OrchestratorConfig, ["--config", str(settings_file), "--search.k-global", "7"], env)
    assert (config.port, config.search.k_global, config.search.k_local, config.blend.feather_px) == (1, 7, 2, 9.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"INPAINT_SEARCH__K_GLOBAL": "0"}, "search (from env INPAINT_SEARCH__K_GLOBAL): k_global: must be at least 1"),
        ({"INPAINT_PORT": "http"}, "port (from env INPAINT_PORT)"),
        ({"INPAINT_REFINEMENT__MAX_EDIT_SIZE": "256"}, "max_edit_size: must be at least min_edit_size"),
        ({"INPAINT_OPERATIONS__WORKER_CONCURRENCY": "0"}, "worker_concurrency must be at least 1"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(OrchestratorConfig, [], env)
    assert named in str(caught.value)


def test_the_service_does_not_start_on_a_bad_setting() -> None:
    """Before: health SERVING, then every request INVALID_ARGUMENT, blaming the client."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.service", "--port=0", "--metrics-port=0"],
        cwd=REPO, env={"INPAINT_SEARCH__K_GLOBAL": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "search" in done.stderr and "k_global: must be at least 1" in done.stderr


def test_request_overrides_are_bounded_and_named() -> None:
    with pytest.raises(InvalidInputError, match=r"settings\.k_global: must be within 1\.\.32, got 40"):
        RequestSettings.checked({"k_global": 40})
    with pytest.raises(InvalidInputError, match=r"settings\.m_global"):
        RequestSettings.checked({"m_global": 6}).apply(load_settings(OrchestratorConfig, ["--search.k-global=4"], {}))
    applied = RequestSettings.checked({"k_global": 20, "weight_realism": 2.0, "feather_px": 7}).apply(
        OrchestratorConfig()
    )
    assert applied.search.k_global == 20 and applied.search.weights["realism"] == 2.0
    assert applied.blend.feather_px == 7.0 and OrchestratorConfig().search.k_global == 8


def test_the_cli_applies_the_apis_bounds_before_starting_anything(tmp_path: Path) -> None:
    """Before: the in-process CLI built settings without the bounds (and mapped the flags a second time)."""
    for name, array in (
        ("init", sample_photos.astronaut()),
        ("mask", sample_photos.astronaut_face_mask()),
        ("character", sample_photos.tom_hanks()),
    ):
        (tmp_path / f"{name}.png").write_bytes(sample_photos.encode_png(array))
    done = subprocess.run(
        [sys.executable, "-m", "cli.run", "--init", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
         "--character", str(tmp_path / "character.png"), "--k_global", "100"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "settings.k_global: must be within 1..32, got 100" in done.stderr
    assert "starting the model servers" not in done.stderr
    flags = {action.dest for action in __import__("cli.run").run.parser()._actions}
    assert {o.name for o in OVERRIDES} <= flags


class LimitedQwenEdit(qwen_edit_pb2_grpc.QwenEditServiceServicer):
    """A Qwen-Edit server that, like the real one, refuses more than 16 seeds per request."""

    def __init__(self) -> None:
        self.seed_counts: list[int] = []

    async def Edit(self, request: qwen_edit_pb2.EditRequest, context: Any) -> qwen_edit_pb2.EditResponse:
        self.seed_counts.append(len(request.seeds))
        if len(request.seeds) > QwenEditConfig().max_seeds:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "seeds: at most 16 per request")
        crop = np.full((request.height, request.width, 3), 90, np.uint8)
        images = [qwen_edit_pb2.EditedImage(image=png_message(crop), seed=seed) for seed in request.seeds]
        return qwen_edit_pb2.EditResponse(images=images, stand_in=True, model="fake", denoising_steps=1)


async def _generate_twenty(server: LimitedQwenEdit) -> list[str]:
    grpc_server = grpc.aio.server()
    qwen_edit_pb2_grpc.add_QwenEditServiceServicer_to_server(server, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    client = QwenEditClient(QwenEditClientConfig(target=f"127.0.0.1:{port}"))
    try:
        init = np.zeros((256, 256, 3), np.uint8)
        mask = np.zeros((256, 256), bool)
        mask[96:160, 96:160] = True
        settings = RefinementConfig(min_edit_size=64, max_edit_size=64)
        geometry = TaskGeometry.around(init, init, mask, settings, BlendConfig())
        generator = QwenEditGenerator(client, settings, geometry)
        requests = tuple(
            GenerationRequest[np.ndarray](f"g{i}", Stage.GLOBAL, GenerationMode.REFINE, seed=1000 + i)
            for i in range(1, 21)
        )
        stage = StageRequest(Stage.GLOBAL, requests, Deadline.after(60), "twenty")
        stream: AsyncIterator[Any] = generator(stage)
        return [image.candidate_id async for image in stream]
    finally:
        await client.aclose()
        await grpc_server.stop(None)


def test_a_stage_larger_than_the_servers_seed_limit_is_split() -> None:
    """Before: k_global=20 sent 20 seeds in one request, the server refused, and the caller silently got
    the raw swap marked degraded."""
    server = LimitedQwenEdit()
    produced = asyncio.run(_generate_twenty(server))
    assert sorted(produced) == sorted(f"g{i}" for i in range(1, 21))
    assert sorted(server.seed_counts) == [4, 16]


def test_an_image_message_is_what_the_fake_returns() -> None:
    """The fake answers with real PNGs of the requested size (so the split test checks real decoding)."""
    message = png_message(np.full((8, 8, 3), 1, np.uint8))
    assert isinstance(message, image_pb2.Image) and message.data.startswith(b"\x89PNG")
