"""A generic transformers vision-language adapter: chat template, processor, greedy `generate`, logits.

Works with any `AutoModelForImageTextToText` whose processor takes `images=` and `text=` and whose
chat template accepts `{"type": "image"}` content (Qwen2-VL, Qwen2.5-VL, LLaVA, Gemma 3, ...). The
tests and benchmarks run it on the tiny offline stand-in from `servers.moondream.standin`.

Image encodings are cached per image key: the vision tower's output is what costs, and the model's
`get_image_features` is the one place every such model computes it, so the adapter wraps that method
on the loaded instance. A second question about the same image then skips the vision tower.
"""

# torch, transformers and tokenizers live in .venv-moondream only; `make lint` runs in .venv.
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, StoppingCriteria, StoppingCriteriaList

from servers.common.cancellation import CancelToken
from servers.moondream.errors import ModelLoadError
from servers.moondream.model import (
    STANDIN_MARKER,
    Answer,
    AnswerProbabilities,
    CacheStats,
    EncodingCache,
    ModelInfo,
    PreparedImage,
    smaller_than_a_patch,
)
from servers.moondream.processing import load_processor
from servers.moondream.scoring import exact_answer_probabilities

ADAPTER_NAME = "transformers-vlm"
# Prepared images are always RGB, height x width x 3. Left to guess, transformers' image processors take
# an image 1 or 3 pixels high for channels-first and read its pixels in the wrong order.
_IMAGE_FORMAT = {"input_data_format": "channels_last"}


class _StopOnToken(StoppingCriteria):  # type: ignore[misc]
    """Ends `generate` between tokens once the caller's deadline passed or the call was cancelled."""

    def __init__(self, token: CancelToken) -> None:
        self._token = token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        stop = self._token.stopped
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class TransformersVisionLanguageModel:
    """One transformers vision-language model loaded from a local directory (never a hub download)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        image_cache_size: int = 64,
        device: str = "cpu",
        dtype: str = "float32",
        name: str | None = None,
    ) -> None:
        """
        Args:
            model_dir: a directory written by `save_pretrained` (model, processor, tokenizer, chat template).
            image_cache_size: how many images' encodings to keep (least recently used goes first); 0 disables.
            device: torch device, "cpu" or "cuda".
            dtype: torch dtype name of the weights, e.g. "float32" or "bfloat16".
            name: the name responses report; the directory's name by default.
        """
        if not (model_dir / "config.json").is_file():
            raise ModelLoadError(f"{model_dir}: no config.json; expected a model saved with save_pretrained")
        self._model_dir = model_dir
        self._device = torch.device(device)
        self._processor = load_processor(model_dir)
        self._model = (
            AutoModelForImageTextToText.from_pretrained(
                str(model_dir), local_files_only=True, dtype=getattr(torch, dtype)
            )
            .to(self._device)
            .eval()
        )
        self._tokenizer = self._processor.tokenizer
        self._lock = threading.Lock()
        self._cache: EncodingCache[Any] = EncodingCache(image_cache_size)
        # Set under the lock for the call in progress: which image the vision tower would encode, and
        # whether it really ran.
        self._current_key: str | None = None
        self._encoded_now = False
        self._install_encoding_cache()
        self._info = ModelInfo(
            name=name or model_dir.name,
            adapter=ADAPTER_NAME,
            revision="",
            standin=(model_dir / STANDIN_MARKER).is_file(),
        )

    def _install_encoding_cache(self) -> None:
        owner = getattr(self._model, "model", self._model)
        if not hasattr(owner, "get_image_features"):
            owner = self._model
        original = getattr(owner, "get_image_features", None)
        if original is None:
            raise ModelLoadError(f"{self._model_dir}: the model has no get_image_features; not a supported VLM")

        def cached_image_features(*args: Any, **kwargs: Any) -> Any:
            key = self._current_key
            if key is not None:
                hit = self._cache.get(key)
                if hit is not None:
                    return hit
            features = original(*args, **kwargs)
            self._encoded_now = True
            if key is not None:
                self._cache.put(key, features)
            return features

        owner.get_image_features = cached_image_features

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def supports_answer_probabilities(self) -> bool:
        return True

    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    def image_problem(self, image: PreparedImage) -> str | None:
        """A side under one patch, or whatever the model's own image processor refuses (Qwen2-VL's: an
        aspect ratio over 200); the processor runs here exactly as `_inputs` runs it."""
        patch_size = getattr(self._processor.image_processor, "patch_size", None)
        if isinstance(patch_size, int):
            problem = smaller_than_a_patch(image, patch_size)
            if problem is not None:
                return problem
        try:
            self._processor.image_processor(images=[image.image], return_tensors="pt", **_IMAGE_FORMAT)
        except ValueError as error:
            return f"cannot be encoded: {error}"
        return None

    def _inputs(self, image: PreparedImage, question: str) -> dict[str, torch.Tensor]:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        prompt = self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self._processor(images=[image.image], text=[prompt], return_tensors="pt", **_IMAGE_FORMAT)
        return {name: value.to(self._device) for name, value in inputs.items()}

    def _run(self, image: PreparedImage, call: Callable[[], Any]) -> tuple[Any, bool]:
        with self._lock:
            self._current_key, self._encoded_now = image.key, False
            try:
                with torch.inference_mode():
                    result = call()
                return result, self._encoded_now
            finally:
                self._current_key = None

    def answer(
        self, image: PreparedImage, question: str, *, max_new_tokens: int, token: CancelToken | None = None
    ) -> Answer:
        inputs = self._inputs(image, question)
        stopping = StoppingCriteriaList([_StopOnToken(token)]) if token is not None else None
        generated, encoded = self._run(
            image,
            lambda: self._model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stopping_criteria=stopping,
            ),
        )
        if token is not None:
            token.check()  # a stop in the middle of the answer is not an answer
        new_tokens = generated[0, inputs["input_ids"].shape[1] :]
        text: str = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Answer(text=text.strip(), image_encoded=encoded)

    def answer_probabilities(
        self, image: PreparedImage, question: str, candidates: Sequence[str], token: CancelToken | None = None
    ) -> AnswerProbabilities:
        inputs = self._inputs(image, question)
        candidate_ids = [tuple(self._tokenizer.encode(text, add_special_tokens=False)) for text in candidates]

        def next_token_probabilities(prefix: tuple[int, ...]) -> Sequence[float]:
            if token is not None:
                token.check()
            extended = dict(inputs)
            if prefix:
                extra = torch.tensor([prefix], dtype=inputs["input_ids"].dtype, device=self._device)
                extended["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
                extended["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(extra)], dim=1)
            logits = self._model(**extended).logits[0, -1]
            probabilities: Sequence[float] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            return probabilities

        probabilities, encoded = self._run(
            image, lambda: exact_answer_probabilities(next_token_probabilities, candidate_ids)
        )
        return AnswerProbabilities(probabilities=tuple(probabilities), image_encoded=encoded)
