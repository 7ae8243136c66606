"""Where the real weights come from, and the checksums they must match.

InsightFace's files: the SHA-256 checksums are those published by several independent projects (for
example the "Models Hashsum" section of Gourieff/ComfyUI-ReActor's README); they agree with each other.
The weights are released by InsightFace for non-commercial research only: read their licence before
any other use.

FaceFusion's face parser and occluder come from FaceFusion's own asset releases, the files its
`facefusion/face_masker.py` downloads. FaceFusion publishes a CRC32 per file (a `.hash` file beside
each), not a SHA-256. The CRC32 values and sizes below were NOT confirmed against FaceFusion's own
`.hash` files (no internet here): they are as a third-party inventory of FaceFusion's models lists
them. A file is accepted when its size and CRC32 match; record its SHA-256 here once confirmed.
Licences, per that inventory: bisenet_resnet_34 MIT; xseg_1 GPL-3.0 (DeepFaceLab's XSeg).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str | None  # None where no SHA-256 is published: `crc32` is checked instead
    size: int
    archive_members: tuple[str, ...] = ()  # files to extract when the download is a zip
    crc32: str | None = None  # 8 hex digits, as FaceFusion's .hash files hold it


BUFFALO_L = Download(
    url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
    sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
    size=288_621_354,
    archive_members=("det_10g.onnx", "2d106det.onnx", "w600k_r50.onnx"),
)

INSWAPPER = Download(
    url="https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/main/inswapper_128.onnx",
    sha256="e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
    size=554_253_681,
)

FACE_PARSER_FILE = Download(
    url="https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/bisenet_resnet_34.onnx",
    sha256=None,
    size=93_632_546,
    crc32="35d17a50",
)

FACE_OCCLUDER_FILE = Download(
    url="https://github.com/facefusion/facefusion-assets/releases/download/models-3.1.0/xseg_1.onnx",
    sha256=None,
    size=70_324_286,
    crc32="f207afe3",
)

# Where each of FaceFusion's files goes (relative to the weights folder), and its download.
FACEFUSION_FILES: dict[str, Download] = {
    "facefusion/bisenet_resnet_34.onnx": FACE_PARSER_FILE,
    "facefusion/xseg_1.onnx": FACE_OCCLUDER_FILE,
}

# Size and CRC32 of the files that have no published SHA-256 (see the module's docstring).
FILE_CRC32: dict[str, tuple[int, str]] = {
    relative: (download.size, download.crc32)
    for relative, download in FACEFUSION_FILES.items()
    if download.crc32 is not None
}

# SHA-256 of each model file as the preparation step expects it (relative to the weights folder).
FILE_SHA256: dict[str, str] = {
    "buffalo_l/det_10g.onnx": "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
    "buffalo_l/2d106det.onnx": "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
    "buffalo_l/w600k_r50.onnx": "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    "inswapper_128.onnx": "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
}
