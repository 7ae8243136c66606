"""Where the real InsightFace weights come from, and the checksums they must match.

Checksums are those published by several independent projects (for example the "Models Hashsum"
section of Gourieff/ComfyUI-ReActor's README); they agree with each other. The weights are released
by InsightFace for non-commercial research only: read their licence before any other use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str
    size: int
    archive_members: tuple[str, ...] = ()  # files to extract when the download is a zip


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

# SHA-256 of each model file as the preparation step expects it (relative to the weights folder).
FILE_SHA256 = {
    "buffalo_l/det_10g.onnx": "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
    "buffalo_l/2d106det.onnx": "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
    "buffalo_l/w600k_r50.onnx": "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
    "inswapper_128.onnx": "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
}
