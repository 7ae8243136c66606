"""An independent face detector, landmarker and recogniser (dlib, offline models from PyPI).

Used to evaluate what the InsightFace pipeline produced without trusting the same networks, and
to give tests real keypoints on real photos. Models come from `face-recognition-models`; `dlib-bin`
provides the `dlib` module without compiling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DlibFace:
    box: tuple[int, int, int, int]  # x1, y1, x2, y2
    landmarks68: np.ndarray  # (68, 2) float32, image coordinates

    @property
    def kps5(self) -> np.ndarray:
        """Five keypoints in SCRFD order: left eye, right eye, nose, left mouth, right mouth."""
        p = self.landmarks68
        return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)


@lru_cache(maxsize=1)
def _models() -> tuple[Any, Any, Any]:
    import dlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition_models as frm

    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(frm.pose_predictor_model_location()),
        dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
    )


def detect_faces(rgb: np.ndarray, upsample: int = 1) -> list[DlibFace]:
    """Faces found by dlib's HOG detector, largest first."""
    detector, predictor, _ = _models()
    faces = []
    for rect in detector(rgb, upsample):
        shape = predictor(rgb, rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        faces.append(DlibFace((rect.left(), rect.top(), rect.right(), rect.bottom()), points))
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def face_descriptor(rgb: np.ndarray, face: DlibFace) -> np.ndarray:
    """dlib's 128-d identity descriptor; the same person is usually within L2 0.6."""
    import dlib

    _, predictor, recogniser = _models()
    x1, y1, x2, y2 = face.box
    shape = predictor(rgb, dlib.rectangle(x1, y1, x2, y2))
    return np.asarray(recogniser.compute_face_descriptor(rgb, shape), dtype=np.float32)
