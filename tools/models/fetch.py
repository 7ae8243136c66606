"""Download the real weights, verify their checksums, lay them out for preparation.

    python -m tools.models.fetch --out models/real

Writes `buffalo_l/{det_10g,2d106det,w600k_r50}.onnx`, `inswapper_128.onnx` and FaceFusion's
`facefusion/{bisenet_resnet_34,xseg_1}.onnx`. Needs internet; where there is none it fails with a
message saying so. Files already present with the right checksum are not downloaded again. InsightFace's
weights are for non-commercial research only; FaceFusion's carry their own licences (see manifest.py).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

from tools.models.manifest import BUFFALO_L, FACEFUSION_FILES, FILE_SHA256, INSWAPPER, Download
from tools.models.prepare import crc32_of, sha256_of

CHUNK = 1 << 20


class FetchError(Exception):
    """A download failed or did not match its checksum."""


def _download(download: Download, target: Path, timeout_s: float = 60.0) -> None:
    """Stream the URL to target, checking size and SHA-256; show progress on stderr."""
    digest = hashlib.sha256()
    crc32 = 0
    received = 0
    try:
        with urllib.request.urlopen(download.url, timeout=timeout_s) as response, target.open("wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                crc32 = zlib.crc32(chunk, crc32)
                received += len(chunk)
                print(
                    f"\r  {download.url.rsplit('/', 1)[-1]}: {received / 1e6:7.1f} / {download.size / 1e6:.1f} MB",
                    end="",
                    file=sys.stderr,
                )
        print(file=sys.stderr)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise FetchError(
            f"could not download {download.url} ({exc}). This needs internet access; on an offline machine "
            "copy buffalo_l/ and inswapper_128.onnx into the weights folder by hand, or use `make standins`."
        ) from exc
    expected = f"SHA-256 {download.sha256}" if download.sha256 else f"CRC32 {download.crc32}"
    got = f"SHA-256 {digest.hexdigest()}" if download.sha256 else f"CRC32 {crc32:08x}"
    if received != download.size or got != expected:
        target.unlink(missing_ok=True)
        raise FetchError(
            f"{download.url}: got {received} bytes with {got}, expected {download.size} bytes with {expected}"
        )


def _present(out: Path, relative: str, expected: dict[str, str]) -> bool:
    path = out / relative
    return path.is_file() and sha256_of(path) == expected[relative]


def _matches(path: Path, download: Download) -> bool:
    """The file is the download's: its size, and its SHA-256 or (where none is published) its CRC32."""
    if not path.is_file() or path.stat().st_size != download.size:
        return False
    return sha256_of(path) == download.sha256 if download.sha256 else crc32_of(path) == download.crc32


def fetch(
    out: Path,
    buffalo: Download = BUFFALO_L,
    inswapper: Download = INSWAPPER,
    expected: dict[str, str] = FILE_SHA256,
    facefusion: Mapping[str, Download] = FACEFUSION_FILES,
) -> list[Path]:
    """Make every real model file present and verified under out; return their paths.

    `facefusion` maps where each of FaceFusion's files goes (relative to out) to its download.
    """
    (out / "buffalo_l").mkdir(parents=True, exist_ok=True)
    members = [f"buffalo_l/{name}" for name in buffalo.archive_members]
    if not all(_present(out, m, expected) for m in members):
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            archive = Path(tmp) / "buffalo_l.zip"
            _download(buffalo, archive)
            with zipfile.ZipFile(archive) as zf:
                names = {Path(n).name: n for n in zf.namelist()}
                for member in buffalo.archive_members:
                    if member not in names:
                        raise FetchError(f"{buffalo.url} has no {member}")
                    (out / "buffalo_l" / member).write_bytes(zf.read(names[member]))
    if not _present(out, "inswapper_128.onnx", expected):
        _download(inswapper, out / "inswapper_128.onnx")
    paths = [out / m for m in [*members, "inswapper_128.onnx"]]
    for path in paths:
        relative = str(path.relative_to(out))
        if sha256_of(path) != expected[relative]:
            raise FetchError(f"{path} does not match its published SHA-256 {expected[relative]}")
    for relative, download in facefusion.items():
        target = out / relative
        if not _matches(target, download):
            target.parent.mkdir(parents=True, exist_ok=True)
            _download(download, target)
        paths.append(target)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("models/real"))
    args = parser.parse_args(argv)
    print("InsightFace's weights are for non-commercial research only; see README.md (Licence).", file=sys.stderr)
    try:
        for path in fetch(args.out):
            print(f"ok {path}")
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
