"""Settings of the Qwen-Image-Edit server (flags, QWEN_EDIT_* environment variables, or a TOML/JSON file).

Loaded and validated by `servers.common.settings.load_settings`: a bad value stops the server at start-up
naming the setting.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from servers.common.images import DEFAULT_MAX_PIXELS
from servers.common.settings import Port, ServerSettings, load_settings

Positive = Annotated[int, Field(ge=1)]


class QwenEditConfig(ServerSettings):
    """Qwen-Image-Edit gRPC server."""

    model_config = SettingsConfigDict(env_prefix="QWEN_EDIT_")

    port: Port = 50051
    metrics_port: Port = 9461
    # One pipeline on one device: its modules, scheduler state and embedding cache are not thread-safe.
    max_concurrent: Annotated[int, Field(ge=1, le=1)] = 1
    # An edit can run for minutes (many seeds, large crops): a connection past its age keeps its calls
    # this long before they are cut.
    max_connection_age_grace_s: Annotated[float, Field(ge=0)] = 900.0
    # A local diffusers checkpoint (the real Qwen-Image-Edit, or a stand-in from servers.qwen_edit.standin).
    model_dir: Path = Path("models/real/qwen_image_edit")
    # "cuda", "cuda:1", "cpu"; unset: CUDA when available.
    device: str | None = None
    # Seeds per batched pipeline call; a request's seeds run in chunks of this size.
    max_batch: Positive = 8
    max_seeds: Positive = 16
    max_steps: Positive = 50
    # "edit" (QwenImageEditPipeline, Qwen-Image-Edit) or "edit-plus" (QwenImageEditPlusPipeline, -2509/-2511);
    # unset: from model_index.json's `_class_name`.
    pipeline: Literal["edit", "edit-plus"] | None = None
    # Unset: the condition image the VAE sees is the output size (no 1024x1024 upscaling, no resampling when
    # the input already has that size). Set: resized to about this many pixels (diffusers' own 1024*1024 rule).
    condition_pixels: Positive | None = None
    # Allowed output sides: multiples of the model's (16 for Qwen-Image-Edit) within these bounds.
    min_output_side: Positive = 16
    max_output_side: Positive = 2048
    max_input_pixels: Positive = DEFAULT_MAX_PIXELS
    embedding_cache_size: Annotated[int, Field(ge=0)] = 8
    # CPU threads torch may use (unset: torch's default, one per core). Tiny models run faster on one.
    torch_threads: Positive | None = None
    # Run each seed through the transformer and the VAE on its own, so a seed gives the same image in any
    # batch (bit-exact on CPU; batched matmuls and convolutions round differently with the batch size).
    # False batches the seeds in one forward pass: faster on a GPU, reproducible only to rounding.
    batch_invariant: bool = True
    # A LoRA (e.g. Lightning 4/8-step) fused into the transformer at start-up: a local directory holding one
    # .safetensors file (or `lora_weight_name`), in diffusers' or a format diffusers converts. Unset: none.
    lora_dir: Path | None = None
    lora_weight_name: str | None = None
    lora_scale: float = 1.0
    # Fleet simulation, stand-ins only: every denoising step sleeps this many seconds per image at
    # 1024x1024, scaled by the image's pixels / (1024*1024), in place of the stand-in's transformer. Unset: off.
    simulate_step_s: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _sides_in_order(self) -> QwenEditConfig:
        if self.max_output_side < self.min_output_side:
            raise ValueError(f"max_output_side: must be at least min_output_side ({self.min_output_side})")
        return self


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> QwenEditConfig:
    return load_settings(QwenEditConfig, sys.argv[1:] if argv is None else argv, env)
