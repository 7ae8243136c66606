"""`make models`: verified downloads, clear failures offline or on a checksum mismatch."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path

import pytest

from stack.process import free_port
from tools.models.fetch import FetchError, fetch
from tools.models.manifest import Download


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _facefusion_files(tmp_path: Path) -> dict[str, Download]:
    """FaceFusion's two files as it publishes them: a size and a CRC32, no SHA-256."""
    files = {}
    for name in ("bisenet_resnet_34.onnx", "xseg_1.onnx"):
        path = tmp_path / name
        path.write_bytes(f"facefusion {name}".encode())
        crc32 = f"{zlib.crc32(path.read_bytes()):08x}"
        files[f"facefusion/{name}"] = Download(path.as_uri(), None, path.stat().st_size, crc32=crc32)
    return files


@pytest.fixture
def release(tmp_path: Path) -> tuple[Download, Download, dict[str, str]]:
    files = {name: f"weights of {name}".encode() for name in ("det_10g.onnx", "2d106det.onnx", "w600k_r50.onnx")}
    archive = tmp_path / "buffalo_l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"buffalo_l/{name}", data)
    swapper = tmp_path / "inswapper_128.onnx"
    swapper.write_bytes(b"swapper weights")
    buffalo = Download(archive.as_uri(), _sha(archive.read_bytes()), archive.stat().st_size, tuple(files))
    inswapper = Download(swapper.as_uri(), _sha(swapper.read_bytes()), swapper.stat().st_size)
    expected = {f"buffalo_l/{n}": _sha(d) for n, d in files.items()} | {"inswapper_128.onnx": _sha(b"swapper weights")}
    return buffalo, inswapper, expected


def test_fetch_downloads_verifies_and_lays_out(
    release: tuple[Download, Download, dict[str, str]], tmp_path: Path
) -> None:
    buffalo, inswapper, expected = release
    out = tmp_path / "real"
    facefusion = _facefusion_files(tmp_path)
    paths = fetch(out, buffalo, inswapper, expected, facefusion)
    assert sorted(str(p.relative_to(out)) for p in paths) == sorted([*expected, *facefusion])
    assert (out / "buffalo_l" / "w600k_r50.onnx").read_bytes() == b"weights of w600k_r50.onnx"
    assert (out / "facefusion" / "xseg_1.onnx").read_bytes() == b"facefusion xseg_1.onnx"
    # Present and verified files are not fetched again, even if the source is gone.
    unreachable = Download(f"http://127.0.0.1:{free_port()}/gone.zip", "0" * 64, 1, buffalo.archive_members)
    gone = {k: Download(unreachable.url, None, d.size, crc32=d.crc32) for k, d in facefusion.items()}
    fetch(out, unreachable, Download(unreachable.url, "0" * 64, 1), expected, gone)


def test_a_crc32_mismatch_is_an_error(release: tuple[Download, Download, dict[str, str]], tmp_path: Path) -> None:
    buffalo, inswapper, expected = release
    facefusion = _facefusion_files(tmp_path)
    first = "facefusion/bisenet_resnet_34.onnx"
    facefusion[first] = Download(facefusion[first].url, None, facefusion[first].size, crc32="00000000")
    with pytest.raises(FetchError, match="expected 33 bytes with CRC32 00000000"):
        fetch(tmp_path / "real", buffalo, inswapper, expected, facefusion)
    assert not (tmp_path / "real" / first).exists(), "a bad download must not be left behind"


def test_a_checksum_mismatch_is_an_error(release: tuple[Download, Download, dict[str, str]], tmp_path: Path) -> None:
    buffalo, inswapper, expected = release
    tampered = Download(inswapper.url, "f" * 64, inswapper.size)
    with pytest.raises(FetchError, match="expected 15 bytes with SHA-256 ffff"):
        fetch(tmp_path / "real", buffalo, tampered, expected, _facefusion_files(tmp_path))
    assert not (tmp_path / "real" / "inswapper_128.onnx").exists(), "a bad download must not be left behind"


def test_offline_fails_with_a_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/buffalo_l.zip"
    with pytest.raises(FetchError, match="This needs internet access"):
        fetch(tmp_path / "real", Download(url, "0" * 64, 1, ("det_10g.onnx",)), Download(url, "0" * 64, 1))
