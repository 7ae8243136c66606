"""Fetch a real Qwen-Image-Edit checkpoint (diffusers layout, about 58 GB) into a local directory, at the
commit recorded here, never at a moving branch.

Needs internet (the model hub); the server itself only ever loads from the directory, offline.

    python -m servers.qwen_edit.fetch --out models/real/qwen_image_edit [--checkpoint edit|edit-2509|edit-2511]

`PINNED` records one commit per checkpoint, once; `--revision` may name another full 40-hex commit (to try a
newer one before recording it), but never a branch or tag, which could move under a deployment. The
commit fetched is written to REVISION beside the weights. Licence: Apache-2.0 (the model cards).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

REVISION_FILE = "REVISION"
_COMMIT = re.compile(r"[0-9a-f]{40}")
# checkpoint -> (hub repository, the commit to fetch). A None commit has not been recorded yet: look it up
# once on the model's "Files and versions" page (or `HfApi().model_info(repo).sha`) and write it here.
PINNED: dict[str, tuple[str, str | None]] = {
    "edit": ("Qwen/Qwen-Image-Edit", None),
    "edit-2509": ("Qwen/Qwen-Image-Edit-2509", None),
    "edit-2511": ("Qwen/Qwen-Image-Edit-2511", None),
}


class UnpinnedError(ValueError):
    """The revision to fetch is not a recorded (or explicitly given) full commit."""


def pinned_revision(checkpoint: str, revision: str | None = None) -> tuple[str, str]:
    """(repository, commit) to fetch; UnpinnedError when no full commit is known or `revision` is not one."""
    if checkpoint not in PINNED:
        raise UnpinnedError(f"checkpoint: must be one of {sorted(PINNED)}, got {checkpoint!r}")
    repo, recorded = PINNED[checkpoint]
    commit = revision if revision is not None else recorded
    if commit is None:
        raise UnpinnedError(
            f"checkpoint: no commit recorded for {repo} in servers/qwen_edit/fetch.py PINNED; record one "
            "(or pass --revision with a full 40-hex commit)"
        )
    if not _COMMIT.fullmatch(commit):
        raise UnpinnedError(f"revision: must be a full 40-hex commit, not a branch or tag; got {commit!r}")
    return repo, commit


def fetch(out: Path, checkpoint: str = "edit", revision: str | None = None) -> Path:
    from huggingface_hub import snapshot_download

    repo, commit = pinned_revision(checkpoint, revision)
    out.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo, revision=commit, local_dir=out)
    (out / REVISION_FILE).write_text(f"{repo}@{commit}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("models/real/qwen_image_edit"))
    parser.add_argument("--checkpoint", choices=sorted(PINNED), default="edit")
    parser.add_argument("--revision", default=None, help="a full 40-hex commit (default: the recorded one)")
    args = parser.parse_args(argv)
    try:
        print(fetch(args.out, args.checkpoint, args.revision))
    except UnpinnedError as error:
        raise SystemExit(f"not fetching: {error}") from error
    except Exception as error:  # no network here, or the hub refused: say so plainly
        raise SystemExit(f"could not fetch {args.checkpoint} (needs internet): {error}") from error
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
