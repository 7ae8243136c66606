"""Fetch moondream2 at the pinned revision, with the tokenizer its code would otherwise download at load time.

Needs internet (the model hub); everything after this runs offline.

    python -m servers.moondream.fetch --out models/real/moondream2
"""

# torch, transformers and tokenizers live in .venv-moondream only; `make lint` runs in .venv.
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from servers.moondream.config import PINNED_REVISION
from servers.moondream.moondream2 import REVISION_FILE, TOKENIZER_FILE

MODEL_REPO = "vikhyatk/moondream2"
# The hub repository moondream2's code (2025 revisions) builds its tokenizer from.
TOKENIZER_REPO = "moondream/starmie-v1"


def fetch(out: Path, revision: str = PINNED_REVISION) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    out.mkdir(parents=True, exist_ok=True)
    snapshot_download(MODEL_REPO, revision=revision, local_dir=out)
    tokenizer = hf_hub_download(TOKENIZER_REPO, TOKENIZER_FILE)
    shutil.copyfile(tokenizer, out / TOKENIZER_FILE)
    (out / REVISION_FILE).write_text(revision + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--revision", default=PINNED_REVISION)
    args = parser.parse_args(argv)
    try:
        print(fetch(args.out, args.revision))
    except OSError as error:  # no network: say so plainly
        raise SystemExit(f"could not fetch {MODEL_REPO}@{args.revision}: {error}") from error


if __name__ == "__main__":
    main()
