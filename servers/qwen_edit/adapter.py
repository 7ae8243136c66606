"""The Qwen-Image-Edit model adapter: loads a local diffusers checkpoint and runs edits. Knows nothing of gRPC.

- Loads only from a local directory (`local_files_only=True`, HF_HUB_OFFLINE=1): never downloads.
- bf16 on CUDA, fp32 on CPU.
- Two pipeline families, chosen by configuration or by model_index.json's `_class_name`:
  "edit" (Qwen-Image-Edit): `QwenImageEditPipeline`, and `QwenImageEditInpaintPipeline` (sharing the same
  modules) when a mask or a strength is given;
  "edit-plus" (Qwen-Image-Edit-2509/-2511): `QwenImageEditPlusPipeline`; diffusers 0.42.1 has no inpainting
  variant of it, so a mask is applied by blending the edit into the input inside the mask here.
- Sizes: the output is generated at the requested width and height (multiples of the VAE's scale factor
  * 2, within configured bounds), and the condition image the VAE sees has that same size unless
  `condition_pixels` says otherwise (the pipelines hard-code about 1024*1024). An input that already has
  the output size is not resampled.
- All seeds of a job run as pipeline calls of at most `max_batch` images; the prompt embeddings are
  computed once per (condition image, prompt) and reused, also across jobs (a small LRU cache).
- The initial noise of each seed is drawn on the CPU from `torch.Generator().manual_seed(seed)`; a noise
  neighbourhood mixes it with a parent's. With `batch_invariant` (the default) each seed also runs through
  the transformer and the VAE on its own, so a seed gives the same image alone or in any batch.
- An optional LoRA is fused into the transformer at load (servers/qwen_edit/lora.py).
- Between denoising steps the job's CancelToken is checked; a cancelled job stops there.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from servers.common.cancellation import CancelToken
from servers.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from servers.qwen_edit.jobs import EditedOutput, EditJob, EditResult, LoraUsed, SizeRule
from servers.qwen_edit.lora import fuse_lora, lora_file
from servers.qwen_edit.standin import STANDIN_MARKER


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


PIPELINE_CLASSES = {"edit": "QwenImageEditPipeline", "edit-plus": "QwenImageEditPlusPipeline"}
# Pixels per image at which `simulate_step_s` applies.
SIMULATION_REFERENCE_PIXELS = 1024 * 1024
# The (width, height) the pipelines' VAE condition image gets during one call (None: diffusers' own rule).
_VAE_CONDITION_SIZE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "qwen_edit_vae_condition_size", default=None
)
_PATCH_LOCK = threading.Lock()
_PATCHED = False


def _install_condition_size_hook() -> None:
    """Let the pipelines size their VAE condition image from `_VAE_CONDITION_SIZE` instead of 1024*1024.

    The pipelines call their module-level `calculate_dimensions(1024 * 1024, ratio)` inside `__call__`
    (diffusers 0.42.1: pipeline_qwenimage_edit.py, _edit_inpaint.py, _edit_plus.py), and the result also sets
    the image latents' positions, so it cannot be changed from outside the call. The replacement returns the
    size set for the current call and defers to the original otherwise; the Plus pipeline's 384*384 image
    for the vision-language encoder (CONDITION_IMAGE_SIZE) keeps the original rule.
    """
    global _PATCHED
    from diffusers.pipelines.qwenimage import (
        pipeline_qwenimage_edit,
        pipeline_qwenimage_edit_inpaint,
        pipeline_qwenimage_edit_plus,
    )

    def hook(original: Callable[..., Any], keep_area: int | None) -> Callable[..., Any]:
        def calculate_dimensions(target_area: float, ratio: float) -> Any:
            size = _VAE_CONDITION_SIZE.get()
            if size is None or target_area == keep_area:
                return original(target_area, ratio)
            result = original(target_area, ratio)
            return (*size, *result[2:])

        return calculate_dimensions

    with _PATCH_LOCK:
        if _PATCHED:
            return
        for module in (pipeline_qwenimage_edit, pipeline_qwenimage_edit_inpaint):
            module.calculate_dimensions = hook(module.calculate_dimensions, None)
        plus = pipeline_qwenimage_edit_plus
        plus.calculate_dimensions = hook(plus.calculate_dimensions, plus.CONDITION_IMAGE_SIZE)
        _PATCHED = True


def _one_row(value: Any, row: int, rows: int) -> Any:
    import torch

    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
        return value[row : row + 1]
    if isinstance(value, list) and len(value) == rows:
        return value[row : row + 1]
    return value


def _run_rows_alone(transformer: Any) -> None:
    """Make `transformer` run a batch one row at a time and concatenate: a row's result then does not depend
    on the batch (CPU GEMMs and convolutions pick blocking by the batch size and round differently)."""
    import torch

    original = transformer.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        hidden = kwargs.get("hidden_states")
        if args or hidden is None or hidden.shape[0] == 1:
            return original(*args, **kwargs)
        rows = hidden.shape[0]
        outputs = [original(**{k: _one_row(v, row, rows) for k, v in kwargs.items()}) for row in range(rows)]
        if kwargs.get("return_dict", True):
            first = outputs[0]
            return type(first)(sample=torch.cat([o.sample for o in outputs], dim=0))
        return (torch.cat([o[0] for o in outputs], dim=0),)

    transformer.forward = forward


def _simulate_transformer(transformer: Any) -> None:
    """Fleet simulation: the transformer predicts a constant velocity and costs no CPU; a step's time is a sleep.

    `_StepClock` sleeps what a real model's step takes on a GPU; running the stand-in's transformer as well
    would add CPU time that a GPU fleet does not spend on the host, and on a few cores it, not the simulated
    GPU time, would bound a benchmark of many replicas. The pipeline around it (prompt encoding, the
    scheduler, the VAE) still runs, so requests, sizes, cancellation and the response are the real ones.
    The output is what diffusers 0.42.1's QwenImageTransformer2DModel.forward returns
    (models/transformers/transformer_qwenimage.py: `proj_out` gives patch_size^2 * out_channels per token of
    `hidden_states`, out_channels defaulting to in_channels; a Transformer2DModelOutput unless return_dict
    is False), so the pipelines take it unchanged. The velocity is ones, not zeros: true CFG rescales the
    combined prediction by the ratio of its norm to the conditional one's, and zeros make that 0/0 (NaN
    latents: every image black).
    """
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    config = transformer.config
    channels = int(config.patch_size) ** 2 * int(config.out_channels or config.in_channels)

    def forward(*args: Any, **kwargs: Any) -> Any:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        sample = hidden.new_ones((*hidden.shape[:2], channels))
        if kwargs.get("return_dict", True):
            return Transformer2DModelOutput(sample=sample)
        return (sample,)

    transformer.forward = forward


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
    """A diffusers `callback_on_step_end`: times each denoising step and stops the call when the token says so.

    `extra_step_s` (fleet simulation) is slept at the end of every step, so it shows in the step times."""

    def __init__(self, token: CancelToken, extra_step_s: float = 0.0) -> None:
        self.token = token
        self.extra_step_s = extra_step_s
        self.step_seconds: list[float] = []
        self._last = time.perf_counter()

    def start(self) -> float:
        self._last = time.perf_counter()
        return self._last

    def on_step_end(self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if self.extra_step_s > 0:
            time.sleep(self.extra_step_s)
        now = time.perf_counter()
        self.step_seconds.append(now - self._last)
        self._last = now
        self.token.check()
        return tensors


def pipeline_kind(model_dir: Path, configured: str | None) -> str:
    """ "edit" or "edit-plus": the configured one, else the one model_index.json's `_class_name` names."""
    if configured is not None:
        if configured not in PIPELINE_CLASSES:
            raise FailedPrecondition(f"pipeline: must be one of {sorted(PIPELINE_CLASSES)}, got {configured!r}")
        return configured
    class_name = json.loads((model_dir / "model_index.json").read_text()).get("_class_name")
    for kind, name in PIPELINE_CLASSES.items():
        if class_name == name:
            return kind
    raise FailedPrecondition(
        f"pipeline: {model_dir}/model_index.json names {class_name!r}, which is neither of "
        f'{sorted(PIPELINE_CLASSES.values())}; set pipeline to "edit" or "edit-plus"'
    )


class QwenEditModel:
    """Load once with `load()`, then call `edit(job, token)` from one thread at a time."""

    def __init__(
        self,
        model_dir: Path,
        device: str | None = None,
        max_batch: int = 8,
        condition_pixels: int | None = None,
        embedding_cache_size: int = 8,
        torch_threads: int | None = None,
        *,
        pipeline: str | None = None,
        min_output_side: int = 16,
        max_output_side: int = 2048,
        batch_invariant: bool = True,
        lora_dir: Path | None = None,
        lora_weight_name: str | None = None,
        lora_scale: float = 1.0,
        simulate_step_s: float | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.requested_device = device
        self.max_batch = max_batch
        self.condition_pixels = condition_pixels
        self.embedding_cache_size = embedding_cache_size
        self.torch_threads = torch_threads
        self.requested_pipeline = pipeline
        self.min_output_side = min_output_side
        self.max_output_side = max_output_side
        self.batch_invariant = batch_invariant
        self.lora_dir = lora_dir
        self.lora_weight_name = lora_weight_name
        self.lora_scale = lora_scale
        self.simulate_step_s = simulate_step_s
        self.stand_in = (self.model_dir / STANDIN_MARKER).exists()
        self.name = self.model_dir.name
        self.kind = "edit"
        self.lora: LoraUsed | None = None
        self._edit: Any = None
        self._inpaint: Any = None
        self._embeddings: OrderedDict[tuple[str, ...], _Embeddings] = OrderedDict()
        self.device = "cpu"

    @property
    def loaded(self) -> bool:
        return self._edit is not None

    @property
    def size_multiple(self) -> int:
        """Output sides are multiples of this (latent packing: 2x the VAE's downsampling)."""
        if self._edit is None:
            raise Unavailable("the model is not loaded")
        return int(self._edit.vae_scale_factor * 2)

    @property
    def size_rule(self) -> SizeRule:
        return SizeRule(self.size_multiple, self.min_output_side, self.max_output_side)

    def load(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        index = self.model_dir / "model_index.json"
        if not index.exists():
            raise FailedPrecondition(
                f"no diffusers checkpoint at {self.model_dir} (model_index.json missing): "
                "run `make models` for the real weights or `python -m servers.qwen_edit.standin` for a stand-in"
            )
        if self.simulate_step_s is not None and not self.stand_in:
            raise FailedPrecondition(
                f"simulate_step_s: only for stand-ins (fleet benchmarks); {self.model_dir} is a real checkpoint"
            )
        kind = pipeline_kind(self.model_dir, self.requested_pipeline)
        lora_path = lora_file(self.lora_dir, self.lora_weight_name) if self.lora_dir is not None else None
        import diffusers
        import torch
        import transformers
        from diffusers import QwenImageEditPipeline, QwenImageEditPlusPipeline

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()

        from servers.qwen_edit.processor import ImageOnlyQwen2VLProcessor

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        device = self.requested_device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        processor = ImageOnlyQwen2VLProcessor.from_pretrained(self.model_dir / "processor", local_files_only=True)
        pipeline_class = QwenImageEditPlusPipeline if kind == "edit-plus" else QwenImageEditPipeline
        edit = pipeline_class.from_pretrained(
            self.model_dir, processor=processor, dtype=dtype, local_files_only=True
        ).to(device)
        edit.set_progress_bar_config(disable=True)
        if lora_path is not None:
            assert self.lora_dir is not None
            fuse_lora(pipeline_class, edit.transformer, lora_path, self.lora_scale)
            self.lora = LoraUsed(name=self.lora_dir.name, path=lora_path, scale=self.lora_scale)
        if self.simulate_step_s is not None:
            _simulate_transformer(edit.transformer)
        elif self.batch_invariant:
            _run_rows_alone(edit.transformer)
        if self.batch_invariant:
            edit.vae.enable_slicing()
        inpaint = None
        if kind == "edit":
            inpaint = _inpaint_pipeline_class()(**edit.components)
            inpaint.set_progress_bar_config(disable=True)
        _install_condition_size_hook()
        self.device = device
        self.dtype = dtype
        self.kind = kind
        self._edit, self._inpaint = edit, inpaint

    # --- sizes and noise -------------------------------------------------------------------------

    def output_size(self, job: EditJob) -> tuple[int, int]:
        """(width, height) of the generated images: the requested ones, which must be allowed; unset: the
        image's own size, snapped to the nearest allowed."""
        rule = self.size_rule
        default_w, default_h = rule.default_size(job.image.width, job.image.height)
        width = rule.check("width", job.width) if job.width else default_w
        height = rule.check("height", job.height) if job.height else default_h
        return width, height

    def condition_size(self, image: Image.Image, output: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the condition image the VAE sees: the output's, unless `condition_pixels` is set."""
        if self.condition_pixels is None:
            return output
        return _fit_area(self.condition_pixels, image.width / image.height)

    def _text_encoder_image(self, condition: Image.Image) -> Any:
        """What the pipeline itself hands its text encoder for `condition` (so cached embeddings match)."""
        if self.kind != "edit-plus":
            return condition
        from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

        width, height = plus.calculate_dimensions(plus.CONDITION_IMAGE_SIZE, condition.width / condition.height)
        return [self._edit.image_processor.resize(condition, height, width)]

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
            text_image = self._text_encoder_image(condition)
            prompt, prompt_mask = self._edit.encode_prompt(job.prompt, image=text_image, device=self.device)
            negative = negative_mask = None
            if use_cfg:
                negative, negative_mask = self._edit.encode_prompt(
                    job.negative_prompt, image=text_image, device=self.device
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

    def _simulated_step_s(self, images: int, width: int, height: int) -> float:
        if self.simulate_step_s is None:
            return 0.0
        return self.simulate_step_s * images * (width * height) / SIMULATION_REFERENCE_PIXELS

    def edit(self, job: EditJob, token: CancelToken | None = None) -> EditResult:
        import torch

        if self._edit is None:
            raise Unavailable("the model is not loaded")
        token = token or CancelToken()
        started = time.perf_counter()
        width, height = self.output_size(job)
        plus = self.kind == "edit-plus"
        inpaint = not plus and (job.mask is not None or job.strength is not None)
        if plus and job.strength is not None:
            raise InvalidArgument(
                "strength", "partial re-noising needs the inpainting pipeline, which the edit-plus model lacks"
            )
        cond_w, cond_h = self.condition_size(job.image, (width, height))
        image = job.image.convert("RGB")
        # Resized here once (diffusers' own resize, a plain copy when the size already matches), so the
        # pipeline's resize is a no-op and the cached embeddings see the very image the VAE sees.
        condition = self._edit.image_processor.resize(image, cond_h, cond_w)
        use_cfg = job.true_cfg_scale > 1.0 and bool(job.negative_prompt)
        embeddings, encoding_seconds = self._embed(job, condition, use_cfg)
        token.check()

        pipeline = self._inpaint if inpaint else self._edit
        step_seconds: list[float] = []
        outputs: list[EditedOutput] = []
        denoising_steps = 0
        mask = job.mask.convert("L") if job.mask is not None else None
        # The inpainting pipeline generates at the condition size (it ignores width and height).
        m = self.size_multiple
        noise_size = (cond_w // m * m, cond_h // m * m) if inpaint else (width, height)

        for start in range(0, len(job.seeds), self.max_batch):
            seeds = job.seeds[start : start + self.max_batch]
            noise, cosines = self._job_noise(job, seeds, *noise_size)
            clock = _StepClock(token, self._simulated_step_s(len(seeds), width, height))

            kwargs: dict[str, Any] = {
                "image": condition,
                "prompt_embeds": embeddings.prompt,
                "prompt_embeds_mask": embeddings.prompt_mask,
                "negative_prompt_embeds": embeddings.negative,
                "negative_prompt_embeds_mask": embeddings.negative_mask,
                "true_cfg_scale": job.true_cfg_scale if use_cfg else 1.0,
                "num_inference_steps": job.num_inference_steps,
                "num_images_per_prompt": len(seeds),
                "width": width,
                "height": height,
                "output_type": "pil",
                "callback_on_step_end": clock.on_step_end,
            }
            if inpaint:
                kwargs |= {
                    "mask_image": mask if mask is not None else Image.new("L", condition.size, 255),
                    "strength": job.strength if job.strength is not None else 1.0,
                    "latents": noise,
                    # The inpainting pipeline *samples* the VAE posterior of the condition image and of the
                    # masked image (the edit pipeline takes its mode): without a generator that draw comes from
                    # torch's global RNG and every call differs. One fixed generator, used once per call for
                    # batch-1 images that are then repeated, makes it the same draw whatever the seeds or batch.
                    "generator": torch.Generator("cpu").manual_seed(0),
                }
            else:
                packed = self._edit._pack_latents(noise, len(seeds), noise.shape[2], noise.shape[3], noise.shape[4])
                kwargs["latents"] = packed
            batch_started = clock.start()
            token_ = _VAE_CONDITION_SIZE.set((cond_w, cond_h))
            try:
                with torch.inference_mode():
                    images = pipeline(**kwargs).images
            finally:
                _VAE_CONDITION_SIZE.reset(token_)
            batch_seconds = time.perf_counter() - batch_started
            denoising_steps = len(clock.step_seconds)
            step_seconds += clock.step_seconds
            for seed, cosine, out in zip(seeds, cosines, images, strict=True):
                if out.size != (width, height):
                    out = out.resize((width, height), Image.Resampling.LANCZOS)
                if plus and mask is not None:
                    out = _blend_inside(out, image, mask)
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
            condition_size=(cond_w, cond_h),
        )


def _blend_inside(edited: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """The edit inside the mask, the input (at the edit's size) outside: the edit-plus pipeline's masking."""
    size = edited.size
    base = original if original.size == size else original.resize(size, Image.Resampling.LANCZOS)
    where = mask if mask.size == size else mask.resize(size, Image.Resampling.NEAREST)
    return Image.composite(edited, base, where)
