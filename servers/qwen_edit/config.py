"""Settings of the Qwen-Image-Edit server (flags, QWEN_EDIT_* environment variables, or a TOML/JSON file)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from servers.common.config import ServerConfig, load_config

ENV_PREFIX = "QWEN_EDIT_"


@dataclass
class QwenEditConfig(ServerConfig):
    """Qwen-Image-Edit gRPC server."""

    port: int = 50051
    metrics_port: int = 9461
    # A local diffusers checkpoint (the real Qwen-Image-Edit, or a stand-in from servers.qwen_edit.standin).
    model_dir: Path = Path("models/real/qwen_image_edit")
    # "cuda", "cuda:1", "cpu"; unset: CUDA when available.
    device: str | None = None
    # Seeds per batched pipeline call; a request's seeds run in chunks of this size.
    max_batch: int = 8
    max_seeds: int = 16
    max_steps: int = 50
    # Pixels of the condition image the model sees (the real model is trained at 1024*1024).
    condition_pixels: int = 1024 * 1024
    max_output_side: int = 2048
    max_input_pixels: int = 40_000_000
    embedding_cache_size: int = 8
    # CPU threads torch may use (unset: torch's default, one per core). Tiny models run faster on one.
    torch_threads: int | None = None


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> QwenEditConfig:
    return load_config(QwenEditConfig, sys.argv[1:] if argv is None else argv, env, ENV_PREFIX)
