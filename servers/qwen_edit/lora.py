"""Fuse a LoRA (for example a Lightning 4/8-step distillation) into the Qwen-Image transformer at start-up.

diffusers' `QwenImageLoraLoaderMixin.load_lora_weights` needs peft, which this server's environment does
not carry; its `lora_state_dict` does not, and it reads the file and converts the community formats
(kohya `lora_unet_`, `diffusion_model.`, alphas) to diffusers' keys (`transformer.<module>.lora_A.weight`,
`...lora_B.weight`; diffusers 0.42.1, src/diffusers/loaders/lora_pipeline.py). The low-rank update is then
merged into each Linear weight, W += scale * (alpha / rank) * B @ A, which is what `fuse_lora` does and
costs nothing per step afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servers.common.errors import FailedPrecondition


def lora_file(lora_dir: Path, weight_name: str | None) -> Path:
    """The weights file of a LoRA directory; FailedPrecondition naming `lora_dir` when there is none."""
    if not lora_dir.is_dir():
        raise FailedPrecondition(f"lora_dir: {lora_dir} is not a directory (set lora_dir to a local LoRA folder)")
    if weight_name is not None:
        path = lora_dir / weight_name
        if not path.is_file():
            raise FailedPrecondition(f"lora_weight_name: {path} does not exist")
        return path
    files = sorted(lora_dir.glob("*.safetensors"))
    if len(files) != 1:
        raise FailedPrecondition(
            f"lora_dir: {lora_dir} holds {len(files)} .safetensors files; expected one (or set lora_weight_name)"
        )
    return files[0]


def fuse_lora(pipeline_class: Any, transformer: Any, path: Path, scale: float) -> int:
    """Merge the LoRA at `path` into `transformer`'s Linear weights in place; the number of layers changed."""
    import torch

    state = pipeline_class.lora_state_dict(str(path.parent), weight_name=path.name, local_files_only=True)
    modules = dict(transformer.named_modules())
    fused = 0
    for key in [k for k in state if k.endswith(".lora_A.weight")]:
        name = key.removesuffix(".lora_A.weight").removeprefix("transformer.")
        if name not in modules:
            raise FailedPrecondition(f"lora_dir: {path} changes {name}, which the transformer does not have")
        layer = modules[name]
        down = state[key].to(torch.float32)
        up = state[key.replace(".lora_A.", ".lora_B.")].to(torch.float32)
        alpha = state.get(key.replace(".lora_A.weight", ".alpha"))
        factor = scale * (float(alpha) / down.shape[0] if alpha is not None else 1.0)
        with torch.no_grad():
            delta = (up @ down) * factor
            layer.weight += delta.to(device=layer.weight.device, dtype=layer.weight.dtype)
        fused += 1
    if fused == 0:
        raise FailedPrecondition(f"lora_dir: {path} has no transformer LoRA weights (lora_A/lora_B)")
    return fused
