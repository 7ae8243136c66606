"""What the moondream2 adapter's scoring reads, next to what moondream2's own `query` answers from.

Runs in `.venv-moondream` (torch lives there; the tests run in `.venv`) on a snapshot such as the fake
of `fake_moondream2.py`. It loads the server's adapter, records every `_prefill_prompt` call the model
receives (the tokens and the logits of the next token), then

1. answers the question through `query` (one token): its first prefill predicts the answer's first token;
2. reads the answer probabilities of "0".."10" as `Score` does.

and prints both as JSON: `{"query": {"prompt", "logits"}, "score": [{"prompt", "logits"}, ...]}`.

    .venv-moondream/bin/python -m tests.moondream.moondream2_probe --model-dir DIR --image PNG --question TEXT
"""

# torch lives in .venv-moondream only; `make lint` runs in .venv.
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from PIL import Image


def probe(model_dir: Path, image_path: Path, question: str) -> dict[str, Any]:
    from servers.moondream.model import PreparedImage
    from servers.moondream.moondream2 import Moondream2Model
    from servers.moondream.scoring import ANSWERS

    adapter = Moondream2Model(model_dir)
    inner: Any = adapter._inner
    calls: list[dict[str, Any]] = []
    prefill = inner._prefill_prompt

    def recording_prefill(prompt_tokens: Any, *args: Any, **kwargs: Any) -> Any:
        result = prefill(prompt_tokens, *args, **kwargs)
        logits = result[0].float().reshape(-1, result[0].shape[-1])[-1]
        calls.append({"prompt": prompt_tokens[0].tolist(), "logits": logits.tolist()})
        return result

    inner._prefill_prompt = recording_prefill
    with Image.open(image_path) as opened:
        image = PreparedImage.from_pil(opened)
    adapter.answer(image, question, max_new_tokens=1)
    query_call = calls[0]
    calls.clear()
    adapter.answer_probabilities(image, question, ANSWERS)
    return {"query": query_call, "score": list(calls)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--question", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.model_dir, args.image, args.question)))


if __name__ == "__main__":
    main()
