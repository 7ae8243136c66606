"""The moondream2 adapter: the model's own remote code, loaded from a local directory at a pinned revision.

transformers has no native Moondream; moondream2 ships its modelling code with its weights
(`trust_remote_code`). Three things keep that code offline and reproducible here:

- the directory must carry the revision it was fetched at (`REVISION`, written by
  `servers.moondream.fetch`), and it must match the pinned one, because the code changed its API
  between revisions;
- the code builds its tokenizer with `tokenizers.Tokenizer.from_pretrained(<hub id>)`, a hub download
  at load time; while the model loads, that name resolves to a shim that reads the local
  `tokenizer.json` instead;
- its remote code breaks under transformers 5, so this server has its own environment with
  transformers 4.x (`.venv-moondream`, `requirements/moondream.lock`).

Image encodings (`encode_image`: the vision encoder plus the prefill of the image into the text
model's cache) are kept per image key, so several questions about one image encode it once.

Scoring reads the first answer tokens' probabilities through the model's own prefill (its private
`_prefill_prompt`, present in the 2025 revisions), after exactly the prompt `query` builds
(`query_prompt_tokens`); where that is missing the server parses text. This adapter is exercised
against the real weights only where they can be downloaded: on this project's machines the tests run
it on a fake snapshot that mirrors the pinned revision's code (`tests/moondream/fake_moondream2.py`).
"""

# torch, transformers and tokenizers live in .venv-moondream only; `make lint` runs in .venv.
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import tokenizers
import torch
from tokenizers import Tokenizer as RealTokenizer
from transformers import AutoModelForCausalLM

from servers.common.cancellation import CancelToken
from servers.moondream.config import PINNED_REVISION
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
from servers.moondream.scoring import exact_answer_probabilities

ADAPTER_NAME = "moondream2"
REVISION_FILE = "REVISION"
TOKENIZER_FILE = "tokenizer.json"
_TOKENIZER_NAME = "Tokenizer"
# The vision encoder's patch side at the pinned revision (`VisionConfig.enc_patch_size`), where the
# loaded code does not say.
DEFAULT_PATCH_SIZE = 14


class _LocalTokenizer:
    """Stands in for `tokenizers.Tokenizer` while the remote code loads: `from_pretrained` reads a local file."""

    path: Path

    @classmethod
    def from_pretrained(cls, identifier: str, *args: Any, **kwargs: Any) -> RealTokenizer:
        return RealTokenizer.from_file(str(cls.path))

    @staticmethod
    def from_file(path: str) -> RealTokenizer:
        return RealTokenizer.from_file(path)

    @staticmethod
    def from_str(text: str) -> RealTokenizer:
        return RealTokenizer.from_str(text)


@contextlib.contextmanager
def local_tokenizer(tokenizer_path: Path) -> Iterator[None]:
    """Within the block, `Tokenizer.from_pretrained` (in `tokenizers` and in already imported remote code)
    returns the tokenizer at `tokenizer_path` instead of downloading one."""
    shim = type("LocalTokenizer", (_LocalTokenizer,), {"path": tokenizer_path})
    # Remote code does `from tokenizers import Tokenizer` when it is imported, during the load below;
    # modules imported by an earlier load already hold the real class and are patched too.
    holders: list[Any] = [tokenizers] + [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("transformers_modules.") and getattr(module, _TOKENIZER_NAME, None) is RealTokenizer
    ]
    for holder in holders:
        setattr(holder, _TOKENIZER_NAME, shim)
    try:
        yield
    finally:
        for holder in holders:
            setattr(holder, _TOKENIZER_NAME, RealTokenizer)


def check_revision(model_dir: Path, pinned: str) -> str:
    """The directory's recorded revision; ModelLoadError unless it is the pinned one."""
    marker = model_dir / REVISION_FILE
    if not marker.is_file():
        raise ModelLoadError(
            f"{model_dir}: no {REVISION_FILE} file; fetch the weights with "
            f"`python -m servers.moondream.fetch --out {model_dir}` (revision {pinned})"
        )
    recorded = marker.read_text().strip()
    if recorded != pinned:
        raise ModelLoadError(f"{model_dir}: fetched at revision {recorded!r}, but this server pins {pinned!r}")
    return recorded


def query_prompt_tokens(inner: Any, question: str) -> list[int]:
    """The tokens moondream2's `query(image, question)` prefills after the image, reasoning off, at the
    pinned revision: the query prefix, the question, the query suffix, and then the query suffix a
    second time (`prompt_tokens[0] += templates["query"]["suffix"]` in `moondream/torch/moondream.py`,
    vikhyat/moondream 78e9101). The answer's first token is predicted after all of them, so a
    distribution read one token earlier is not the one the model answers from.

    `inner` is the loaded `HfMoondream.model` (its `tokenizer` and `config.tokenizer.templates`).
    """
    template = inner.config.tokenizer.templates["query"]
    prompt = [*template["prefix"], *inner.tokenizer.encode(question).ids, *template["suffix"]]
    return [*prompt, *template["suffix"]]


class Moondream2Model:
    """moondream2 loaded with `trust_remote_code` from local files."""

    def __init__(
        self,
        model_dir: Path,
        *,
        revision: str = PINNED_REVISION,
        tokenizer_path: Path | None = None,
        image_cache_size: int = 64,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        """
        Args:
            model_dir: the moondream2 snapshot (config.json, *.py remote code, weights, REVISION).
            revision: the pinned revision the snapshot must have been fetched at.
            tokenizer_path: the tokenizer.json the remote code would download; `model_dir/tokenizer.json` by default.
            image_cache_size: how many images' encodings to keep (least recently used goes first); 0 disables.
            device: torch device, "cpu" or "cuda".
            dtype: torch dtype name of the weights.
        """
        self._revision = check_revision(model_dir, revision)
        tokenizer_path = tokenizer_path or model_dir / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise ModelLoadError(f"{tokenizer_path}: missing; moondream2's code would download it from the hub")
        with local_tokenizer(tokenizer_path):
            self._model = (
                AutoModelForCausalLM.from_pretrained(
                    str(model_dir),
                    trust_remote_code=True,
                    local_files_only=True,
                    dtype=getattr(torch, dtype),
                )
                .to(torch.device(device))
                .eval()
            )
        self._lock = threading.Lock()
        self._cache: EncodingCache[Any] = EncodingCache(image_cache_size)
        inner = getattr(self._model, "model", None)
        self._inner = inner
        self._has_logits = inner is not None and all(
            hasattr(inner, name) for name in ("_prefill_prompt", "load_encoded_image", "tokenizer", "config")
        )
        self._info = ModelInfo(
            name="moondream2",
            adapter=ADAPTER_NAME,
            revision=self._revision,
            standin=(model_dir / STANDIN_MARKER).is_file(),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def supports_answer_probabilities(self) -> bool:
        return self._has_logits

    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    def image_problem(self, image: PreparedImage) -> str | None:
        """Only a side under one patch: moondream2's encoder resizes and tiles any other image into its crops
        (`overlap_crop_image`)."""
        vision = getattr(getattr(self._inner, "config", None), "vision", None)
        patch_size = getattr(vision, "enc_patch_size", DEFAULT_PATCH_SIZE)
        return smaller_than_a_patch(image, patch_size)

    def _encoded(self, image: PreparedImage) -> tuple[Any, bool]:
        cached = self._cache.get(image.key)
        if cached is not None:
            return cached, False
        encoded = self._model.encode_image(image.image)
        self._cache.put(image.key, encoded)
        return encoded, True

    def answer(
        self, image: PreparedImage, question: str, *, max_new_tokens: int, token: CancelToken | None = None
    ) -> Answer:
        with self._lock, torch.inference_mode():
            encoded, fresh = self._encoded(image)
            settings = {"max_tokens": max_new_tokens, "temperature": 0.0}
            # Streamed so that a passed deadline stops the answer between tokens.
            chunks = []
            for chunk in self._model.query(encoded, question, stream=True, settings=settings)["answer"]:
                chunks.append(chunk)
                if token is not None:
                    token.check()
        return Answer(text="".join(chunks).strip(), image_encoded=fresh)

    def answer_probabilities(
        self, image: PreparedImage, question: str, candidates: Sequence[str], token: CancelToken | None = None
    ) -> AnswerProbabilities:
        if not self._has_logits or self._inner is None:
            raise NotImplementedError("this moondream2 revision exposes no prefill logits")
        inner = self._inner
        tokenizer = inner.tokenizer
        prompt = query_prompt_tokens(inner, question)
        # `_generate_answer` forbids this token after the answer's first one; the same holds here.
        answer_id: int | None = getattr(inner.config.tokenizer, "answer_id", None)
        # The answer may start with or without a space; both spellings count for the same number.
        spellings = [tuple(tokenizer.encode(text).ids) for text in candidates]
        spaced = [tuple(tokenizer.encode(" " + text).ids) for text in candidates]

        with self._lock, torch.inference_mode():
            encoded, fresh = self._encoded(image)
            self._model._setup_caches()

            def next_token_probabilities(prefix: tuple[int, ...]) -> Sequence[float]:
                if token is not None:
                    token.check()
                inner.load_encoded_image(encoded)
                tokens = torch.tensor([prompt + list(prefix)], device=inner.device)
                logits = inner._prefill_prompt(tokens, encoded.pos, 0.0, 1.0)[0]
                row = logits.float().reshape(-1, logits.shape[-1])[-1].clone()
                if prefix and answer_id is not None:
                    row[answer_id] = float("-inf")
                probabilities: Sequence[float] = torch.softmax(row, dim=-1).cpu().numpy()
                return probabilities

            both = exact_answer_probabilities(next_token_probabilities, spellings + spaced)
        n = len(candidates)
        return AnswerProbabilities(
            probabilities=tuple(a + b for a, b in zip(both[:n], both[n:], strict=True)), image_encoded=fresh
        )
