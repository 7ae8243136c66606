"""Run inside .venv-qwen by tests/qwen_edit/test_sizes.py: edit one image with the real adapter on a
stand-in, with spies on the pipeline's call and on its VAE's encoder, and print what they saw as JSON.

    python tests/qwen_edit/adapter_probe.py MODEL_DIR IMAGE_PNG WIDTH HEIGHT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from servers.qwen_edit.adapter import QwenEditModel
from servers.qwen_edit.jobs import EditJob


def main(argv: list[str]) -> int:
    model_dir, image_path, width, height = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3])
    model = QwenEditModel(model_dir, torch_threads=1)
    model.load()
    pipeline: Any = model._edit
    seen: dict[str, Any] = {}
    call = type(pipeline).__call__
    encode = pipeline.vae.encode

    def spy_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        image = kwargs["image"]
        seen["pipeline_image_size"] = list(image.size)
        seen["pipeline_image_is_input_pixels"] = bool(
            image.size == source.size and np.array_equal(np.asarray(image), np.asarray(source))
        )
        return call(self, *args, **kwargs)

    def spy_encode(x: Any, *args: Any, **kwargs: Any) -> Any:
        seen.setdefault("vae_encoder_input_shapes", []).append(list(x.shape))
        return encode(x, *args, **kwargs)

    type(pipeline).__call__ = spy_call
    pipeline.vae.encode = spy_encode
    source = Image.open(image_path).convert("RGB")
    result = model.edit(
        EditJob(
            image=source,
            prompt="relight",
            seeds=(1,),
            num_inference_steps=1,
            true_cfg_scale=1.0,
            width=width,
            height=height,
        )
    )
    seen["output_size"] = list(result.outputs[0].image.size)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
