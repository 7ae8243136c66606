"""Real face photos that ship inside pip packages, for the demo and the tests.

- `astronaut`: scikit-image's portrait of Eileen Collins (one face, hair over the forehead).
- `group`: insightface's `t1.jpg` (six people).
- `tom_hanks`: insightface's aligned portrait crop.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from orchestrator.imaging.encode import encode_png

__all__ = ["astronaut", "astronaut_face_mask", "encode_png", "group", "tom_hanks"]


def _insightface_image(name: str) -> Path:
    return Path(str(resources.files("insightface") / "data" / "images" / name))


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(bgr[..., ::-1])


def astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())  # type: ignore[no-untyped-call]


def group() -> np.ndarray:
    return _read_rgb(_insightface_image("t1.jpg"))


def tom_hanks() -> np.ndarray:
    return _read_rgb(_insightface_image("Tom_Hanks_54745.png"))


def astronaut_face_mask() -> np.ndarray:
    """A generous ellipse over the astronaut's head, hair included, as a user might draw it."""
    mask = np.zeros((512, 512), np.uint8)
    cv2.ellipse(mask, (220, 110), (70, 90), 0, 0, 360, 1, -1)
    return mask.astype(bool)
