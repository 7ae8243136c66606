"""Load a vision-language model's processor without its video half.

The PyPI torchvision wheel does not import beside the CPU torch 2.13.0 wheel, and without torchvision
the Qwen2-VL family's processors fail to load on their video-processor slot. This server only ever
sends images, so for those families an image-only subclass that drops the slot is loaded instead;
every other model goes through `AutoProcessor` unchanged.
"""

# torch, transformers and tokenizers live in .venv-moondream only; `make lint` runs in .venv.
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoProcessor, Qwen2_5_VLProcessor, Qwen2VLProcessor


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):  # type: ignore[misc]
    """Qwen2-VL's processor with images and text only (no video processor, so no torchvision)."""

    attributes = ["image_processor", "tokenizer"]  # noqa: RUF012 (ProcessorMixin reads a class-level list)

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):  # type: ignore[misc]
    """Qwen2.5-VL's processor with images and text only (no video processor, so no torchvision)."""

    attributes = ["image_processor", "tokenizer"]  # noqa: RUF012

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)


_IMAGE_ONLY: dict[str, Any] = {
    "Qwen2VLProcessor": ImageOnlyQwen2VLProcessor,
    "Qwen2_5_VLProcessor": ImageOnlyQwen2_5_VLProcessor,
}


def declared_processor_class(model_dir: Path) -> str | None:
    """The processor class the model directory names, from whichever config file records it."""
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = model_dir / name
        if path.is_file():
            value = json.loads(path.read_text()).get("processor_class")
            if isinstance(value, str):
                return value
    return None


def load_processor(model_dir: Path) -> Any:
    """The model's processor from local files only; image-only for the Qwen2-VL family."""
    declared = declared_processor_class(model_dir)
    if declared in _IMAGE_ONLY:
        # The slow image processor: the fast one needs torchvision too.
        return _IMAGE_ONLY[declared].from_pretrained(str(model_dir), local_files_only=True, use_fast=False)
    return AutoProcessor.from_pretrained(str(model_dir), local_files_only=True)
