"""The orchestrator's configuration: one typed object, defaults written once.

Loaded by `servers.common.config.load_config` from (in order) these defaults, a TOML/JSON file
(`--config` or `INPAINT_CONFIG`), the environment (`INPAINT_<FIELD>`), then flags (`--field-name`).
The Gemini key is not a field: it comes from `GEMINI_API_KEY`, `--gemini-key-file`, or the CLI's
`--gemini_api_key`, and is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from orchestrator.faces.analysis import DetectionConfig
from orchestrator.faces.stage import FaceStageConfig
from orchestrator.faces.triton_client import TritonConfig
from orchestrator.imaging.blend import BlendConfig
from orchestrator.imaging.masks import MaskRefinementConfig
from orchestrator.refine.qwen_generator import DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT, QwenEditSettings
from orchestrator.scoring.gemini import DEFAULT_MODELS, GeminiConfig
from orchestrator.search import SearchConfig
from orchestrator.search.signals import CONSISTENCY, IDENTITY, REALISM
from servers.common.config import ServerConfig

ENV_PREFIX = "INPAINT_"


@dataclass
class OrchestratorConfig(ServerConfig):
    """Every setting of the orchestrator (service and CLI)."""

    port: int = 50050
    metrics_port: int = 9460
    max_concurrent: int = 2  # requests searched at once; the model servers queue their own work
    max_queue: int = 16
    # Model servers.
    triton_url: str = "127.0.0.1:8001"
    triton_timeout_s: float = 30.0
    triton_wait_s: float = 600.0  # how long the service waits for Triton's models at start-up
    probe_wait_s: float = 120.0  # how long it waits for the other model servers to answer a warm-up
    triton_repository: Path | None = None  # a local model repository, read to report stand-ins
    qwen_edit_target: str = "127.0.0.1:50051"
    qwen_edit_timeout_s: float = 600.0
    moondream_target: str = "127.0.0.1:50052"
    moondream_timeout_s: float = 120.0
    # Gemini (realism).
    gemini_models: str = ",".join(DEFAULT_MODELS)
    gemini_base_url: str | None = None
    gemini_api_version: str | None = None
    gemini_key_file: Path | None = None
    gemini_timeout_s: float = 30.0
    gemini_max_concurrency: int = 4
    # Search (DESIGN sections 1 and 6).
    k_global: int = 8
    m_global: int = 3
    k_local: int = 4
    weight_consistency: float = 1.0
    weight_realism: float = 4.0
    weight_identity: float = 1.5
    local_mode: str = "noise_neighbourhood"
    noise_cosine: float = 0.95
    renoise_strength: float = 0.45
    # Refinement.
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    num_inference_steps: int = 12
    true_cfg_scale: float = 2.0
    working_size: int = 512
    crop_margin: float = 0.35
    # Face stage, masks and blending.
    detection_size: int = 640
    detection_threshold: float = 0.5
    mask_refinement: bool = True
    exclude_hair: bool = True
    feather_px: float = 25.0
    erosion_px: int = 3
    max_image_pixels: int = 40_000_000
    # Requests.
    task_store: Path = Path("tasks")
    result_cache_size: int = 32  # finished results kept for request_id replays (without candidate images)
    worker_threads: int = 32  # threads for blocking work (Triton and Moondream calls, image work)
    default_deadline_s: float = 1800.0  # when the caller sets none

    def search_config(self) -> SearchConfig:
        return SearchConfig(
            k_global=self.k_global,
            m_global=self.m_global,
            k_local=self.k_local,
            weights={
                CONSISTENCY: self.weight_consistency,
                REALISM: self.weight_realism,
                IDENTITY: self.weight_identity,
            },
            local_mode=self.local_mode,  # type: ignore[arg-type]  # validated by SearchConfig
            noise_cosine=self.noise_cosine,
            renoise_strength=self.renoise_strength,
        )

    def face_stage_config(self) -> FaceStageConfig:
        return FaceStageConfig(
            detection=DetectionConfig(input_size=self.detection_size, score_threshold=self.detection_threshold),
            mask=MaskRefinementConfig(enabled=self.mask_refinement, exclude_hair=self.exclude_hair),
            blend=BlendConfig(erosion_px=self.erosion_px, feather_px=self.feather_px),
        )

    def triton_config(self) -> TritonConfig:
        return TritonConfig(url=self.triton_url, timeout_s=self.triton_timeout_s)

    def qwen_settings(self) -> QwenEditSettings:
        return QwenEditSettings(
            target=self.qwen_edit_target,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            num_inference_steps=self.num_inference_steps,
            true_cfg_scale=self.true_cfg_scale,
            working_size=self.working_size,
            crop_margin=self.crop_margin,
            timeout_s=self.qwen_edit_timeout_s,
        )

    def gemini_config(self) -> GeminiConfig:
        return GeminiConfig(
            models=tuple(m.strip() for m in self.gemini_models.split(",") if m.strip()),
            base_url=self.gemini_base_url,
            api_version=self.gemini_api_version,
            request_timeout_s=self.gemini_timeout_s,
            max_concurrency=self.gemini_max_concurrency,
            key_file=self.gemini_key_file,
        )


@dataclass(frozen=True)
class RequestSettings:
    """One request's overrides (the public API's SearchSettings); None keeps the configured value."""

    k_global: int | None = None
    m_global: int | None = None
    k_local: int | None = None
    weight_consistency: float | None = None
    weight_realism: float | None = None
    weight_identity: float | None = None
    num_inference_steps: int | None = None
    true_cfg_scale: float | None = None
    feather_px: float | None = None
    erosion_px: int | None = None
    seed: int = 0

    def apply(self, config: OrchestratorConfig) -> OrchestratorConfig:
        """The configuration with every override that is set (each field shares its name with the config's)."""
        overrides = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seed"}
        return replace(config, **{name: value for name, value in overrides.items() if value is not None})
