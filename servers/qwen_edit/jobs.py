"""What the adapter is asked to do and what it returns: plain data, no torch, no gRPC; and the size rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from servers.common.errors import InvalidArgument

DEFAULT_STEPS = 12
DEFAULT_TRUE_CFG_SCALE = 2.0


@dataclass(frozen=True)
class SizeRule:
    """Allowed output sides: multiples of `multiple` (the VAE's scale factor * 2, the latent packing) in
    [`low`, `high`] rounded inwards to multiples."""

    multiple: int
    low: int
    high: int

    @property
    def smallest(self) -> int:
        return max(self.multiple, -(-self.low // self.multiple) * self.multiple)

    @property
    def largest(self) -> int:
        return self.high // self.multiple * self.multiple

    def nearest(self, value: float) -> int:
        """The allowed side nearest `value` (ties go up)."""
        snapped = int(value / self.multiple + 0.5) * self.multiple
        return min(max(snapped, self.smallest), self.largest)

    def check(self, field_name: str, value: int) -> int:
        """`value` when allowed, else InvalidArgument naming the field and the nearest allowed value."""
        if value % self.multiple or not self.smallest <= value <= self.largest:
            raise InvalidArgument(
                field_name,
                f"{value} is not an allowed size (multiples of {self.multiple} in [{self.smallest}, "
                f"{self.largest}]); nearest allowed: {self.nearest(value)}",
            )
        return value

    def default_size(self, width: int, height: int) -> tuple[int, int]:
        """The size an unsized request gets: the image's own, scaled down to fit, each side snapped."""
        scale = min(1.0, self.largest / max(width, height))
        return self.nearest(width * scale), self.nearest(height * scale)


@dataclass(frozen=True)
class NoiseNeighbourhood:
    """Start every output near `parent_seed`'s initial noise: w * noise(parent) + sqrt(1 - w^2) * noise(seed)."""

    parent_seed: int
    parent_weight: float


@dataclass(frozen=True)
class EditJob:
    """One edit of one image, once per seed. Sizes are in pixels; None means the image's own size, snapped."""

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


@dataclass(frozen=True)
class LoraUsed:
    """The few-step (or other) LoRA fused into the transformer at start-up."""

    name: str
    path: Path
    scale: float


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
    # (width, height) of the condition image the pipeline's VAE saw.
    condition_size: tuple[int, int] = (0, 0)
