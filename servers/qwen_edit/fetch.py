"""Fetch the real Qwen-Image-Edit checkpoint (diffusers layout, about 58 GB) into a local directory.

Needs internet (the model hub); the server itself only ever loads from the directory, offline.

    python -m servers.qwen_edit.fetch --out models/real/qwen_image_edit [--revision COMMIT]

The commit actually fetched is written to REVISION beside the weights; pass it as --revision to
reproduce a deployment exactly. Licence: Apache-2.0 (Qwen-Image-Edit's model card).
"""

from __future__ import annotations

import argparse
from pathlib import Path

MODEL_REPO = "Qwen/Qwen-Image-Edit"
REVISION_FILE = "REVISION"


def fetch(out: Path, revision: str = "main") -> Path:
    from huggingface_hub import HfApi, snapshot_download

    commit = HfApi().model_info(MODEL_REPO, revision=revision).sha or revision
    out.mkdir(parents=True, exist_ok=True)
    snapshot_download(MODEL_REPO, revision=commit, local_dir=out)
    (out / REVISION_FILE).write_text(f"{MODEL_REPO}@{commit}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("models/real/qwen_image_edit"))
    parser.add_argument("--revision", default="main")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.out, args.revision))
    except Exception as error:  # no network here, or the hub refused: say so plainly
        raise SystemExit(f"could not fetch {MODEL_REPO}@{args.revision} (needs internet): {error}") from error
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
