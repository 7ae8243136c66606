"""The interface every vision-language adapter implements, and the types at its boundary.

Adapters know nothing of gRPC: they take a decoded image and a question and return text, or the
probabilities of given answers where they can read logits. The servicer maps requests onto them.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from PIL import Image, UnidentifiedImageError

from servers.common.cancellation import CancelToken
from servers.moondream.errors import InvalidImageError

MAX_IMAGE_PIXELS = 8192 * 8192
# A model directory holding this file has random weights: whatever it answers is noise, and responses say so.
STANDIN_MARKER = "STANDIN"


@dataclass(frozen=True)
class ModelInfo:
    """What served a response; `standin` means random weights and noise for answers."""

    name: str
    adapter: str
    revision: str = ""
    standin: bool = False


@dataclass(frozen=True)
class PreparedImage:
    """A decoded RGB image and the hash its encodings are cached under (of the pixels, not the file)."""

    image: Image.Image
    key: str

    @classmethod
    def from_pil(cls, image: Image.Image) -> PreparedImage:
        rgb = image.convert("RGB")
        digest = hashlib.sha256(rgb.tobytes())
        digest.update(f"{rgb.width}x{rgb.height}".encode())
        return cls(image=rgb, key=digest.hexdigest())

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str = "", *, field: str = "image") -> PreparedImage:
        """Decode an encoded image (PNG, JPEG, WebP); `field` names it in errors."""
        if not data:
            raise InvalidImageError(field, "is empty: expected encoded PNG, JPEG or WebP bytes")
        if mime_type and mime_type not in ("image/png", "image/jpeg", "image/webp"):
            raise InvalidImageError(
                field, f"has unsupported mime_type {mime_type!r} (image/png, image/jpeg, image/webp)"
            )
        try:
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_IMAGE_PIXELS:
                    raise InvalidImageError(field, f"is too large ({opened.width}x{opened.height} pixels)")
                opened.load()
                return cls.from_pil(opened)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise InvalidImageError(field, f"could not be decoded: {error}") from error


@dataclass(frozen=True)
class Answer:
    text: str
    # True when this call ran the vision encoder, False when the encoding came from the cache.
    image_encoded: bool


@dataclass(frozen=True)
class AnswerProbabilities:
    """Probability that the answer is exactly each candidate, in the candidates' order (not normalised)."""

    probabilities: tuple[float, ...]
    image_encoded: bool


@dataclass(frozen=True)
class CacheStats:
    encodings: int
    hits: int
    size: int


class VisionLanguageModel(Protocol):
    """One loaded model. Calls may come from several threads; adapters serialise their own model use."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def supports_answer_probabilities(self) -> bool: ...

    def answer(
        self, image: PreparedImage, question: str, *, max_new_tokens: int, token: CancelToken | None = None
    ) -> Answer:
        """Greedy answer to `question` about `image`; stops with DeadlineExceeded/Cancelled when `token` says so."""
        ...

    def answer_probabilities(
        self, image: PreparedImage, question: str, candidates: Sequence[str], token: CancelToken | None = None
    ) -> AnswerProbabilities:
        """Probability that the answer is exactly each candidate string; only where
        `supports_answer_probabilities`."""
        ...

    def image_problem(self, image: PreparedImage) -> str | None:
        """Why the vision encoder cannot take `image` (a side under one patch, a shape the image processor
        refuses), or None. Cheap: no model call; the servicer asks before queueing the work."""
        ...

    def cache_stats(self) -> CacheStats: ...


def smaller_than_a_patch(image: PreparedImage, patch_size: int) -> str | None:
    """The problem with an image narrower or lower than one patch of the vision encoder, or None.

    Such an image carries less than one patch of content: the encoders would upsample it (moondream2)
    or misread it (transformers' image processors guess the channel axis from the shape), and nothing
    in it can be judged.
    """
    width, height = image.image.size
    if min(width, height) < patch_size:
        return (
            f"is {width}x{height} pixels; the vision encoder needs at least {patch_size} pixels on each side "
            "(one patch)"
        )
    return None


V = TypeVar("V")


class EncodingCache(Generic[V]):
    """A bounded LRU of image encodings by image key, counting how often the encoder really ran.

    `encodings` counts misses that were filled; `hits` counts encodings served from the cache.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()
        self.encodings = 0
        self.hits = 0

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return value

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self.encodings += 1
            if self.capacity == 0:
                return
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(encodings=self.encodings, hits=self.hits, size=len(self._entries))
