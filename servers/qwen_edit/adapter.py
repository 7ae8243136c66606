"""The Qwen-Image-Edit model adapter: loads a local diffusers checkpoint and runs edits. Knows nothing of gRPC.

- Loads only from a local directory (`local_files_only=True`, HF_HUB_OFFLINE=1): never downloads.
- bf16 on CUDA, fp32 on CPU.
- `QwenImageEditPipeline` for plain edits; `QwenImageEditInpaintPipeline` (sharing the same modules) when a
  mask or a strength is given.
- The condition image is resized to `condition_pixels` (the pipelines hard-code 1024*1024, which is what
  the real model expects and what makes tiny-model CPU runs slow).
- All seeds of a job run as batched pipeline calls of at most `max_batch` images; the prompt embeddings are
  computed once per (condition image, prompt) and reused, also across jobs (a small LRU cache).
- The initial noise of each seed is drawn on the CPU from `torch.Generator().manual_seed(seed)`, so a seed
  gives the same noise on every device and in every batch; a noise neighbourhood mixes it with a parent's.
- Between denoising steps the job's CancelToken is checked; a cancelled job stops there.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from servers.common.cancellation import CancelToken
from servers.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from servers.qwen_edit.jobs import EditedOutput, EditJob, EditResult
from servers.qwen_edit.standin import STANDIN_MARKER

REAL_CONDITION_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class _Embeddings:
    prompt: Any
    prompt_mask: Any
    negative: Any | None
    negative_mask: Any | None


def _fit_area(target_area: int, ratio: float) -> tuple[int, int]:
    """diffusers' `calculate_dimensions`: width, height near `target_area` with the given ratio, multiples of 32."""
    width = math.sqrt(target_area * ratio)
    height = width / ratio
    return max(32, round(width / 32) * 32), max(32, round(height / 32) * 32)


_PATCH_LOCK = threading.Lock()


def _set_condition_area(area: int) -> None:
    """Make both Qwen-Image-Edit pipelines size the condition image to `area` pixels instead of 1024*1024.

    The pipelines call their module-level `calculate_dimensions(1024 * 1024, ratio)` inside `__call__`, and
    the result also sets the image latents' positions, so it cannot be changed from outside the call. The
    replacement keeps the function's contract (width, height, None) and only substitutes the area; it is
    process-wide, which fits a server that runs one model.
    """
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit, pipeline_qwenimage_edit_inpaint

    def calculate_dimensions(target_area: float, ratio: float) -> tuple[int, int, None]:
        del target_area
        width, height = _fit_area(area, ratio)
        return width, height, None

    with _PATCH_LOCK:
        for module in (pipeline_qwenimage_edit, pipeline_qwenimage_edit_inpaint):
            module.calculate_dimensions = calculate_dimensions


def _inpaint_pipeline_class() -> Any:
    from diffusers import QwenImageEditInpaintPipeline

    class InpaintWithInitialNoise(QwenImageEditInpaintPipeline):  # type: ignore[misc]
        """diffusers 0.42.1's `prepare_latents` returns a bare tensor when `latents` is given, which its caller
        cannot unpack. Here a given `latents` is the initial noise (unpacked, [B, 1, C, H, W]), noised into the
        image latents at the starting timestep exactly as drawn noise would be."""

        def prepare_latents(
            self,
            image: Any,
            timestep: Any,
            batch_size: int,
            num_channels_latents: int,
            height: int,
            width: int,
            dtype: Any,
            device: Any,
            generator: Any,
            latents: Any = None,
        ) -> Any:
            import torch

            if latents is None:
                return super().prepare_latents(
                    image, timestep, batch_size, num_channels_latents, height, width, dtype, device, generator, None
                )
            height = 2 * (int(height) // (self.vae_scale_factor * 2))
            width = 2 * (int(width) // (self.vae_scale_factor * 2))
            if image.dim() == 4:
                image = image.unsqueeze(2)
            image = image.to(device=device, dtype=dtype)
            image_latents = self._encode_vae_image(image=image, generator=generator)
            image_latents = torch.cat([image_latents] * (batch_size // image_latents.shape[0]), dim=0).transpose(1, 2)
            noise = latents.to(device=device, dtype=dtype)
            noised = self.scheduler.scale_noise(image_latents, timestep, noise)
            return (
                self._pack_latents(noised, batch_size, num_channels_latents, height, width),
                self._pack_latents(noise, batch_size, num_channels_latents, height, width),
                self._pack_latents(image_latents, batch_size, num_channels_latents, height, width),
            )

    return InpaintWithInitialNoise


class _StepClock:
    """A diffusers `callback_on_step_end`: times each denoising step and stops the call when the token says so."""

    def __init__(self, token: CancelToken) -> None:
        self.token = token
        self.step_seconds: list[float] = []
        self._last = time.perf_counter()

    def start(self) -> float:
        self._last = time.perf_counter()
        return self._last

    def on_step_end(self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        now = time.perf_counter()
        self.step_seconds.append(now - self._last)
        self._last = now
        self.token.check()
        return tensors


class QwenEditModel:
    """Load once with `load()`, then call `edit(job, token)` from one thread at a time."""

    def __init__(
        self,
        model_dir: Path,
        device: str | None = None,
        max_batch: int = 8,
        condition_pixels: int = REAL_CONDITION_PIXELS,
        embedding_cache_size: int = 8,
        torch_threads: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.requested_device = device
        self.max_batch = max_batch
        self.condition_pixels = condition_pixels
        self.embedding_cache_size = embedding_cache_size
        self.torch_threads = torch_threads
        self.stand_in = (self.model_dir / STANDIN_MARKER).exists()
        self.name = self.model_dir.name
        self._edit: Any = None
        self._inpaint: Any = None
        self._embeddings: OrderedDict[tuple[str, ...], _Embeddings] = OrderedDict()
        self.device = "cpu"

    @property
    def loaded(self) -> bool:
        return self._edit is not None

    @property
    def size_multiple(self) -> int:
        """Output sizes are rounded down to this (latent packing: 2x the VAE's downsampling)."""
        if self._edit is None:
            raise Unavailable("the model is not loaded")
        return int(self._edit.vae_scale_factor * 2)

    def load(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        index = self.model_dir / "model_index.json"
        if not index.exists():
            raise FailedPrecondition(
                f"no diffusers checkpoint at {self.model_dir} (model_index.json missing): "
                "run `make models` for the real weights or `python -m servers.qwen_edit.standin` for a stand-in"
            )
        import diffusers
        import torch
        import transformers
        from diffusers import QwenImageEditPipeline

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()

        from servers.qwen_edit.processor import ImageOnlyQwen2VLProcessor

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        device = self.requested_device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        processor = ImageOnlyQwen2VLProcessor.from_pretrained(self.model_dir / "processor", local_files_only=True)
        edit = QwenImageEditPipeline.from_pretrained(
            self.model_dir, processor=processor, dtype=dtype, local_files_only=True
        ).to(device)
        edit.set_progress_bar_config(disable=True)
        inpaint = _inpaint_pipeline_class()(**edit.components)
        inpaint.set_progress_bar_config(disable=True)
        _set_condition_area(self.condition_pixels)
        self.device = device
        self.dtype = dtype
        self._edit, self._inpaint = edit, inpaint

    # --- sizes and noise -------------------------------------------------------------------------

    def condition_size(self, image: Image.Image) -> tuple[int, int]:
        """(width, height) the condition image is resized to."""
        return _fit_area(self.condition_pixels, image.width / image.height)

    def output_size(self, job: EditJob) -> tuple[int, int]:
        """(width, height) of the generated images."""
        cond_w, cond_h = self.condition_size(job.image)
        m = self.size_multiple
        width = (job.width or cond_w) // m * m
        height = (job.height or cond_h) // m * m
        if width < m:
            raise InvalidArgument("width", f"must be at least {m} pixels")
        if height < m:
            raise InvalidArgument("height", f"must be at least {m} pixels")
        return width, height

    def initial_noise(self, seed: int, width: int, height: int) -> Any:
        """The seed's initial noise, unpacked [1, 1, C, h, w], drawn on the CPU in fp32."""
        import torch

        vae_factor = int(self._edit.vae_scale_factor)
        channels = int(self._edit.transformer.config.in_channels) // 4
        shape = (1, 1, channels, 2 * (height // (vae_factor * 2)), 2 * (width // (vae_factor * 2)))
        return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)

    def _job_noise(self, job: EditJob, seeds: tuple[int, ...], width: int, height: int) -> tuple[Any, list[float]]:
        import torch

        noises = [self.initial_noise(seed, width, height) for seed in seeds]
        cosines = [1.0] * len(seeds)
        if job.neighbourhood is not None:
            w = job.neighbourhood.parent_weight
            parent = self.initial_noise(job.neighbourhood.parent_seed, width, height)
            noises = [w * parent + math.sqrt(1.0 - w * w) * own for own in noises]
            cosines = [
                float(torch.nn.functional.cosine_similarity(n.flatten(), parent.flatten(), dim=0)) for n in noises
            ]
        return torch.cat(noises, dim=0), cosines

    # --- prompt embeddings ------------------------------------------------------------------------

    def _embed(self, job: EditJob, condition: Image.Image, use_cfg: bool) -> tuple[_Embeddings, float]:
        """Embeddings of (condition image, prompt[, negative prompt]), cached; returns them and the seconds spent."""
        import torch

        digest = hashlib.sha256(condition.tobytes()).hexdigest()
        key = (digest, f"{condition.width}x{condition.height}", job.prompt, job.negative_prompt if use_cfg else "")
        cached = self._embeddings.get(key)
        if cached is not None:
            self._embeddings.move_to_end(key)
            return cached, 0.0
        started = time.perf_counter()
        with torch.inference_mode():
            prompt, prompt_mask = self._edit.encode_prompt(job.prompt, image=condition, device=self.device)
            negative = negative_mask = None
            if use_cfg:
                negative, negative_mask = self._edit.encode_prompt(
                    job.negative_prompt, image=condition, device=self.device
                )
        # encode_prompt drops an all-ones mask; an explicit one means the same and keeps the pipeline quiet.
        if prompt_mask is None:
            prompt_mask = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
        if negative is not None and negative_mask is None:
            negative_mask = torch.ones(negative.shape[:2], dtype=torch.long, device=negative.device)
        embeddings = _Embeddings(prompt, prompt_mask, negative, negative_mask)
        self._embeddings[key] = embeddings
        while len(self._embeddings) > self.embedding_cache_size:
            self._embeddings.popitem(last=False)
        return embeddings, time.perf_counter() - started

    # --- the edit ---------------------------------------------------------------------------------

    def edit(self, job: EditJob, token: CancelToken | None = None) -> EditResult:
        import torch

        if self._edit is None:
            raise Unavailable("the model is not loaded")
        token = token or CancelToken()
        started = time.perf_counter()
        width, height = self.output_size(job)
        cond_w, cond_h = self.condition_size(job.image)
        image = job.image.convert("RGB")
        # What the pipeline itself feeds the text encoder (its own resize), so cached embeddings match.
        condition = self._edit.image_processor.resize(image, cond_h, cond_w)
        use_cfg = job.true_cfg_scale > 1.0 and bool(job.negative_prompt)
        embeddings, encoding_seconds = self._embed(job, condition, use_cfg)
        token.check()

        inpaint = job.uses_inpaint_pipeline
        pipeline = self._inpaint if inpaint else self._edit
        gen_w, gen_h = (
            (cond_w // self.size_multiple * self.size_multiple, cond_h // self.size_multiple * self.size_multiple)
            if inpaint
            else (width, height)
        )
        step_seconds: list[float] = []
        outputs: list[EditedOutput] = []
        denoising_steps = 0

        for start in range(0, len(job.seeds), self.max_batch):
            seeds = job.seeds[start : start + self.max_batch]
            noise, cosines = self._job_noise(job, seeds, gen_w, gen_h)
            clock = _StepClock(token)

            kwargs: dict[str, Any] = {
                "image": image,
                "prompt_embeds": embeddings.prompt,
                "prompt_embeds_mask": embeddings.prompt_mask,
                "negative_prompt_embeds": embeddings.negative,
                "negative_prompt_embeds_mask": embeddings.negative_mask,
                "true_cfg_scale": job.true_cfg_scale if use_cfg else 1.0,
                "num_inference_steps": job.num_inference_steps,
                "num_images_per_prompt": len(seeds),
                "output_type": "pil",
                "callback_on_step_end": clock.on_step_end,
            }
            if inpaint:
                mask = job.mask.convert("L") if job.mask is not None else Image.new("L", image.size, 255)
                kwargs |= {
                    "mask_image": mask,
                    "strength": job.strength if job.strength is not None else 1.0,
                    "latents": noise,
                }
            else:
                packed = self._edit._pack_latents(noise, len(seeds), noise.shape[2], noise.shape[3], noise.shape[4])
                kwargs |= {"width": width, "height": height, "latents": packed}
            batch_started = clock.start()
            with torch.inference_mode():
                images = pipeline(**kwargs).images
            batch_seconds = time.perf_counter() - batch_started
            denoising_steps = len(clock.step_seconds)
            step_seconds += clock.step_seconds
            for seed, cosine, out in zip(seeds, cosines, images, strict=True):
                if out.size != (width, height):
                    out = out.resize((width, height), Image.Resampling.LANCZOS)
                outputs.append(EditedOutput(out, seed, batch_seconds, len(seeds), cosine))
            token.check()

        return EditResult(
            outputs=outputs,
            pipeline=type(pipeline).__mro__[1].__name__ if inpaint else type(pipeline).__name__,
            prompt_encoding_seconds=encoding_seconds,
            total_seconds=time.perf_counter() - started,
            denoising_steps=denoising_steps,
            seconds_per_step=sum(step_seconds) / len(step_seconds) if step_seconds else 0.0,
            step_seconds=step_seconds,
        )
