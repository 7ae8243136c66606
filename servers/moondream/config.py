"""The Moondream server's settings: defaults written once here, then a file, `MOONDREAM_*` env, flags.

Loaded and validated by `servers.common.settings.load_settings`: a bad value stops the server at
start-up naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servers.common.settings import Port, ServerSettings
from servers.moondream.scoring import DEFAULT_SCORE_INSTRUCTION

# moondream2's remote code at the revision this server was written against (moondream2.py mirrors it;
# `make` fetches it): written once, here.
PINNED_REVISION = "2025-06-21"
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


class MoondreamServerConfig(ServerSettings):
    """Moondream server: identity and consistency questions about one image at a time."""

    model_config = SettingsConfigDict(env_prefix="MOONDREAM_")

    port: Port = 50052
    metrics_port: Port = 9462
    # Questions are short; many callers may queue behind one model.
    max_queue: Count = 32
    # "moondream2" (remote code, pinned revision) or "transformers-vlm" (any AutoModelForImageTextToText).
    adapter: Literal["moondream2", "transformers-vlm"] = "moondream2"
    model_dir: Path = Path("models/real/moondream2")
    revision: str = PINNED_REVISION
    # moondream2 only: the tokenizer.json its code would download; model_dir/tokenizer.json by default.
    tokenizer_path: Path | None = None
    device: str = "cpu"
    dtype: str = "float32"
    # 0: torch's default number of CPU threads.
    torch_threads: Count = 0
    # Images whose encodings are kept (least recently used goes first); 0 disables the cache.
    image_cache_size: Count = 64
    default_max_new_tokens: Positive = 64
    max_new_tokens_limit: Positive = 1024
    max_question_chars: Positive = 4000
    max_queries_per_call: Positive = 32
    # Scoring: tokens generated when the score is parsed from text, the instruction appended to every
    # rating question, and the least share of next-token probability the answers 0..10 must cover
    # for their expected value to count (below it the model meant to say something else).
    score_max_new_tokens: Positive = 8
    score_instruction: str = DEFAULT_SCORE_INSTRUCTION
    min_answer_mass: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    # Fleet simulation (stand-ins only): every answer takes this long, as a real model on a GPU would,
    # and the stand-in does not run (a sleep, not CPU, so that many replicas fit on two cores); scores are
    # then fixed by the image and the question, and the raw answer says they were simulated. 0: off.
    simulate_answer_s: Annotated[float, Field(ge=0.0)] = 0.0
