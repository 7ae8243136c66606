"""The blob store: images and results by key, in a local directory (every replica must mount the same one).

Keys are `<request_id>/...`; the database holds keys, never image bytes. Writes are atomic (a temporary
file renamed into place), so a replica killed mid-write leaves no half-written blob under a key.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class BlobNotFoundError(KeyError):
    """No blob under that key (expired, deleted, or never written)."""


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
            raise ValueError(f"blob key {key!r} is not a relative path of letters, digits, '.', '-' and '_'")
        return self.root / key

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None

    def delete_prefix(self, prefix: str) -> None:
        """Every blob under `<prefix>/` (an operation's)."""
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def exists(self, prefix: str) -> bool:
        return self._path(prefix).exists()
