"""An image-only Qwen2-VL processor.

`Qwen2VLProcessor` has a video-processor slot whose default implementation needs torchvision; PyPI's
torchvision does not import beside the CPU torch wheel this project pins, and the edit pipeline never
sends video. This subclass has only the image-processor and tokenizer slots, so it loads the `processor/`
folder of a Qwen-Image-Edit checkpoint (real or stand-in) anywhere; with torchvision present it behaves
the same for images.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):  # type: ignore[misc]
    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
    ) -> None:
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        # Skip Qwen2VLProcessor.__init__, which always passes a video processor.
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
