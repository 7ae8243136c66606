"""The Moondream server's configuration: defaults written once here, then a file, `MOONDREAM_*` env, flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servers.common.config import ServerConfig
from servers.moondream.scoring import DEFAULT_SCORE_INSTRUCTION

ENV_PREFIX = "MOONDREAM_"
ADAPTERS = ("moondream2", "transformers-vlm")
# moondream2's remote code at the revision this server was written against (see moondream2.py).
PINNED_MOONDREAM2_REVISION = "2025-06-21"


@dataclass
class MoondreamServerConfig(ServerConfig):
    """Moondream server: identity and consistency questions about one image at a time."""

    port: int = 50052
    metrics_port: int = 9462
    # Questions are short; many callers may queue behind one model.
    max_queue: int = 32
    # "moondream2" (remote code, pinned revision) or "transformers-vlm" (any AutoModelForImageTextToText).
    adapter: str = "moondream2"
    model_dir: Path = Path("models/real/moondream2")
    revision: str = PINNED_MOONDREAM2_REVISION
    # moondream2 only: the tokenizer.json its code would download; model_dir/tokenizer.json by default.
    tokenizer_path: Path | None = None
    device: str = "cpu"
    dtype: str = "float32"
    # 0: torch's default number of CPU threads.
    torch_threads: int = 0
    # Images whose encodings are kept (least recently used goes first); 0 disables the cache.
    image_cache_size: int = 64
    default_max_new_tokens: int = 64
    max_new_tokens_limit: int = 1024
    max_question_chars: int = 4000
    max_queries_per_call: int = 32
    # Scoring: tokens generated when the score is parsed from text, the instruction appended to every
    # rating question, and the least share of next-token probability the answers 0..10 must cover
    # for their expected value to count (below it the model meant to say something else).
    score_max_new_tokens: int = 8
    score_instruction: str = DEFAULT_SCORE_INSTRUCTION
    min_answer_mass: float = 0.2
