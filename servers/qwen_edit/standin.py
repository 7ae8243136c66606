"""Build a tiny random-weight Qwen-Image-Edit pipeline offline and save it like the real checkpoint.

    python -m servers.qwen_edit.standin --out models/standins/qwen_edit [--pipeline edit|edit-plus]

The folder has the real checkpoint's layout (model_index.json, transformer/, vae/, text_encoder/,
tokenizer/, processor/, scheduler/), written with `save_pretrained`, so the server loads it through its
real loading path. Sizes follow diffusers' own tests (tests/pipelines/qwenimage/); the tokenizer is a
byte-level Qwen2Tokenizer (the 256 byte symbols, no merges, Qwen's special tokens) built here, because
nothing can be downloaded. `--pipeline edit-plus` saves the same tiny modules as a
`QwenImageEditPlusPipeline` (Qwen-Image-Edit-2509/-2511 share Qwen-Image-Edit's module classes and differ in
weights and in the pipeline's prompt and image handling). Outputs of a stand-in are noise; `STANDIN.json`
marks the folder as one and the server reports it in every response.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

STANDIN_MARKER = "STANDIN.json"
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# The real checkpoint's processor sees the condition image at up to 1024x1024; the stand-in keeps the
# vision tower's input tiny (4 to 16 merged patches) so that CPU tests stay fast.
STANDIN_MIN_PIXELS = 28 * 28 * 4
STANDIN_MAX_PIXELS = 28 * 28 * 16
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order (what byte-level BPE uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def build_tokenizer() -> Any:
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


PIPELINES = ("edit", "edit-plus")


def build_pipeline(seed: int = 0, pipeline: str = "edit") -> Any:
    """The tiny QwenImageEditPipeline (or QwenImageEditPlusPipeline), random weights drawn from `seed`."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )

    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline: must be one of {PIPELINES}, got {pipeline!r}")
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from servers.qwen_edit.processor import ImageOnlyQwen2VLProcessor

    tokenizer = build_tokenizer()
    hidden = 16
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=hidden,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    torch.manual_seed(seed)
    z_dim = 4
    vae = AutoencoderKLQwenImage(
        base_dim=z_dim * 6,
        z_dim=z_dim,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    # The real checkpoint's scheduler settings (dynamic shifting from the image's sequence length).
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=8192,
        max_shift=0.9,
        num_train_timesteps=1000,
        shift=1.0,
        shift_terminal=0.02,
        time_shift_type="exponential",
        use_dynamic_shifting=True,
    )
    torch.manual_seed(seed)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": hidden,
            "intermediate_size": hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "vocab_size": len(tokenizer),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": hidden,
            "intermediate_size": hidden,
            "num_heads": 2,
            "out_hidden_size": hidden,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=STANDIN_MIN_PIXELS, max_pixels=STANDIN_MAX_PIXELS)
    processor = ImageOnlyQwen2VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    pipeline_class = QwenImageEditPlusPipeline if pipeline == "edit-plus" else QwenImageEditPipeline
    return pipeline_class(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=processor,
        transformer=transformer,
    )


def generate(out: Path, seed: int = 0, pipeline_kind: str = "edit") -> Path:
    """Write the stand-in to `out` (replacing one made before) and return `out`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pipeline = build_pipeline(seed, pipeline_kind)
    out.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(out, safe_serialization=True)
    # Record the processor as the real checkpoint does; the server loads it with the image-only subclass.
    index_path = out / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    processor_config_path = out / "processor" / "processor_config.json"
    processor_config = json.loads(processor_config_path.read_text())
    processor_config["processor_class"] = "Qwen2VLProcessor"
    processor_config_path.write_text(json.dumps(processor_config, indent=2) + "\n")
    marker = {
        "stand_in": True,
        "generator": "servers.qwen_edit.standin",
        "seed": seed,
        "pipeline": pipeline_kind,
        "note": "random weights: outputs are noise",
    }
    (out / STANDIN_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("models/standins/qwen_edit"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", choices=PIPELINES, default="edit")
    args = parser.parse_args(argv)
    print(generate(args.out, args.seed, args.pipeline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
