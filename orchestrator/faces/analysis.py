"""Face detection, landmarks, identity embedding and swap, on the models served by Triton.

Arrays are RGB uint8 (H, W, 3). Alignment and decoding are insightface's own: SCRFD's class runs on
a Triton-backed session, crops use `insightface.utils.face_align` (ArcFace template, +8 px in x for
the 128 crop).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from insightface.model_zoo.scrfd import SCRFD
from insightface.utils import face_align

from orchestrator.faces.pixel_boost import merge_tiles, split_tiles, tiles_per_side
from orchestrator.faces.triton_client import TritonModels
from orchestrator.search.deadline import Deadline
from servers.triton.contracts import (
    ARCFACE_INPUT_NAME,
    ARCFACE_OUTPUT_NAME,
    LANDMARK_INPUT_NAME,
    LANDMARK_OUTPUT_NAME,
    SWAPPER_OUTPUT_NAME,
    SWAPPER_SOURCE_NAME,
    SWAPPER_TARGET_NAME,
)

# insightface 2.1's face_align calls scikit-image's deprecated SimilarityTransform.estimate; the
# warning is theirs to fix and would otherwise print on every request.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

LANDMARK_INPUT = 192
ARCFACE_INPUT = 112
SWAPPER_INPUT = 128


@dataclass
class Face:
    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    kps: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner
    landmarks: np.ndarray | None = None  # (106, 2)
    embedding: np.ndarray | None = None  # (512,), not normalised

    @property
    def area(self) -> float:
        return float(max(self.bbox[2] - self.bbox[0], 0) * max(self.bbox[3] - self.bbox[1], 0))


@dataclass(frozen=True)
class DetectionConfig:
    input_size: int = 640
    score_threshold: float = 0.5
    nms_threshold: float = 0.4
    # The search finds the face of every candidate inside the crop around the mask, letterboxed to this side:
    # the face fills much of that crop, so a quarter of the whole photo's pixels finds it as well.
    crop_input_size: int = 320

    def __post_init__(self) -> None:
        if self.crop_input_size < 32 or self.crop_input_size % 32:
            raise ValueError(
                "detection.crop_input_size must be a multiple of 32 (SCRFD's largest stride), "
                f"got {self.crop_input_size}"
            )


@dataclass(frozen=True)
class SwapOutput:
    image: np.ndarray  # the init image with the swapped crop pasted back inside `support`
    support: np.ndarray  # bool (H, W): where the pasted crop has valid pixels


def _blob(images: list[np.ndarray], mean: float, std: float) -> np.ndarray:
    """RGB uint8 crops -> float32 NCHW, (x - mean) / std."""
    stack = np.stack(images).astype(np.float32)
    return np.ascontiguousarray(((stack - mean) / std).transpose(0, 3, 1, 2))


class FaceAnalyzer:
    """The face operations of the pipeline, each one or a few Triton inferences."""

    def __init__(self, models: TritonModels, detection: DetectionConfig = DetectionConfig()) -> None:
        self.models = models
        names = models.config.models
        self.detector = SCRFD(session=models.session(names.detector))
        # The served detector takes pixels: its session undoes the class's own normalisation (see TritonSession).
        self.detector.session.pixels = self._pixels = (self.detector.input_mean, self.detector.input_std)
        size = (detection.input_size, detection.input_size)
        self.detector.prepare(
            0, input_size=size, det_thresh=detection.score_threshold, nms_thresh=detection.nms_threshold
        )

    def for_request(self, request_id: str) -> FaceAnalyzer:
        """This analyzer as one request uses it: every Triton call carries the request id."""
        scoped = copy.copy(self)
        scoped.models = self.models.for_request(request_id)
        return scoped

    def detect(self, image: np.ndarray, deadline: Deadline | None = None, input_size: int | None = None) -> list[Face]:
        """Faces in the image, best score first; letterboxed to `input_size` (default: the configured one)."""
        bgr = np.ascontiguousarray(image[..., ::-1])  # insightface's detector expects OpenCV's BGR
        detector = self.detector
        if deadline is not None:
            # insightface's SCRFD calls its session itself: give this call a session bound to the deadline.
            detector = copy.copy(self.detector)
            detector.session = self.models.session(self.detector.session.model, deadline, self._pixels)
        boxes, kpss = detector.detect(bgr, input_size=(input_size, input_size) if input_size else None)
        if kpss is None:
            return []
        return [
            Face(bbox=b[:4].astype(np.float32), score=float(b[4]), kps=k.astype(np.float32))
            for b, k in zip(boxes, kpss)
        ]

    def detect_in(
        self, image: np.ndarray, region: tuple[slice, slice], input_size: int, deadline: Deadline | None = None
    ) -> list[Face]:
        """Faces inside `region` (rows, columns) of the image, detected at `input_size`, in the image's coordinates."""
        rows, cols = region
        offset = np.array([cols.start or 0, rows.start or 0], np.float32)
        faces = self.detect(image[rows, cols], deadline, input_size)
        for face in faces:
            face.bbox = face.bbox + np.tile(offset, 2)
            face.kps = face.kps + offset
        return faces

    def add_landmarks(self, image: np.ndarray, faces: list[Face], deadline: Deadline | None = None) -> None:
        """Fill each face's 106 landmarks, all faces in one batched request."""
        if not faces:
            return
        crops, inverses = [], []
        for face in faces:
            x1, y1, x2, y2 = face.bbox
            center = ((x1 + x2) / 2, (y1 + y2) / 2)
            scale = LANDMARK_INPUT / (max(x2 - x1, y2 - y1) * 1.5)
            crop, matrix = face_align.transform(image, center, LANDMARK_INPUT, scale, 0)
            crops.append(crop)
            inverses.append(cv2.invertAffineTransform(matrix))
        names = self.models.config.models
        pred = self.models.infer(
            names.landmarks, {LANDMARK_INPUT_NAME: _blob(crops, 127.5, 128.0)}, [LANDMARK_OUTPUT_NAME], deadline
        )[LANDMARK_OUTPUT_NAME]
        for face, row, inverse in zip(faces, pred, inverses):
            points = (row.reshape(-1, 2) + 1.0) * (LANDMARK_INPUT // 2)
            face.landmarks = face_align.trans_points(points, inverse).astype(np.float32)

    def add_embeddings(self, image: np.ndarray, faces: list[Face], deadline: Deadline | None = None) -> None:
        """Fill each face's ArcFace embedding from its aligned 112 crop, in one batched request."""
        self.add_embeddings_of([(image, f) for f in faces], deadline)

    def add_embeddings_of(self, pairs: list[tuple[np.ndarray, Face]], deadline: Deadline | None = None) -> None:
        """Fill the embedding of faces from several images (each face with its image), in one batched request."""
        if not pairs:
            return
        faces = [face for _, face in pairs]
        crops = [face_align.norm_crop(image, f.kps, ARCFACE_INPUT) for image, f in pairs]
        names = self.models.config.models
        out = self.models.infer(
            names.recognition, {ARCFACE_INPUT_NAME: _blob(crops, 127.5, 127.5)}, [ARCFACE_OUTPUT_NAME], deadline
        )[ARCFACE_OUTPUT_NAME]
        for face, embedding in zip(faces, out):
            face.embedding = embedding.astype(np.float32)

    def swap(
        self,
        image: np.ndarray,
        target: Face,
        source_embedding: np.ndarray,
        deadline: Deadline | None = None,
        size: int = SWAPPER_INPUT,
    ) -> SwapOutput:
        """Put the identity `source_embedding` on `target` and paste the crop back.

        `size` above 128 is pixel boost: the aligned crop of that size goes to inswapper as its
        (size/128)^2 sub-pixel tiles, all in one batched request, and is reassembled before pasting.
        """
        crop, matrix = align_crop(image, target.kps, size)
        pasted, support = paste_back(image, self.swap_crop(crop, source_embedding, deadline), matrix)
        return SwapOutput(image=pasted, support=support)

    def swap_crop(self, crop: np.ndarray, source_embedding: np.ndarray, deadline: Deadline | None = None) -> np.ndarray:
        """Swap an aligned crop of 128*k px: its k*k sub-pixel tiles in one batched request, reassembled."""
        k = tiles_per_side(crop.shape[0])
        tiles = split_tiles(crop, k)
        names = self.models.config.models
        source = np.repeat(source_embedding.reshape(1, -1).astype(np.float32), len(tiles), axis=0)
        out = self.models.infer(
            names.swapper,
            {SWAPPER_TARGET_NAME: _blob(list(tiles), 0.0, 255.0), SWAPPER_SOURCE_NAME: source},
            [SWAPPER_OUTPUT_NAME],
            deadline,
        )[SWAPPER_OUTPUT_NAME]
        swapped_tiles = np.clip(np.rint(out.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
        return merge_tiles(swapped_tiles, k)


def align_crop(image: np.ndarray, kps: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ArcFace-template crop of the face and its 2x3 image->crop matrix."""
    crop, matrix = face_align.norm_crop2(image, kps, size)
    return crop, matrix


def paste_back(
    image: np.ndarray, crop: np.ndarray, matrix: np.ndarray, border_px: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the crop back into the image; returns the pasted image and where it is valid.

    The crop's outer `border_px` pixels are left out of the support: bilinear resampling mixes the
    warp's zero border into them.
    """
    height, width = image.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    warped = cv2.warpAffine(crop, inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    valid = np.zeros(crop.shape[:2], dtype=np.uint8)
    valid[border_px:-border_px, border_px:-border_px] = 255
    support = cv2.warpAffine(valid, inverse, (width, height), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    pasted = image.copy()
    pasted[support] = warped[support]
    return pasted, support
