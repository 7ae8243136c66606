"""What the adapter is asked to do and what it returns: plain data, no torch, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

DEFAULT_STEPS = 12
DEFAULT_TRUE_CFG_SCALE = 2.0


@dataclass(frozen=True)
class NoiseNeighbourhood:
    """Start every output near `parent_seed`'s initial noise: w * noise(parent) + sqrt(1 - w^2) * noise(seed)."""

    parent_seed: int
    parent_weight: float


@dataclass(frozen=True)
class EditJob:
    """One edit of one image, once per seed. Sizes are in pixels; None means the condition image's working size."""

    image: Image.Image
    prompt: str
    seeds: tuple[int, ...]
    negative_prompt: str = ""
    mask: Image.Image | None = None
    num_inference_steps: int = DEFAULT_STEPS
    true_cfg_scale: float = DEFAULT_TRUE_CFG_SCALE
    width: int | None = None
    height: int | None = None
    strength: float | None = None
    neighbourhood: NoiseNeighbourhood | None = None

    @property
    def uses_inpaint_pipeline(self) -> bool:
        return self.mask is not None or self.strength is not None


@dataclass(frozen=True)
class EditedOutput:
    image: Image.Image
    seed: int
    batch_seconds: float
    batch_size: int
    noise_cosine_to_parent: float


@dataclass(frozen=True)
class EditResult:
    outputs: list[EditedOutput]
    pipeline: str
    prompt_encoding_seconds: float
    total_seconds: float
    denoising_steps: int
    # Wall time of one denoising step of a whole batch, averaged over the steps of every batch.
    seconds_per_step: float
    step_seconds: list[float] = field(default_factory=list)
