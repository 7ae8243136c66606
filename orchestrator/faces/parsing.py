"""Face regions from FaceFusion's face parser and occluder, served by Triton, mapped back onto the image.

    regions = face_regions(analyzer, image, face, parser, occluder, deadline)  # None: Triton serves no parser

The parser (BiSeNet, CelebAMask-HQ's 19 classes) sees a loose 512 crop around the face (the face about
half its width, as in its training photos, hair included); the occluder (XSeg) sees the swapper's own
aligned crop at 256, as FaceFusion gives it. Both answers are warped back to the image: the class of
every pixel (-1 outside the crop) and the probability that the face is visible there (1 outside).
Preprocessing follows FaceFusion's `facefusion/face_masker.py` (3.x): the parser takes RGB,
(pixel/255 - ImageNet mean) / ImageNet std, NCHW; the occluder BGR pixel/255, NHWC.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from insightface.utils import face_align

from orchestrator.faces.analysis import Face, FaceAnalyzer, align_crop
from orchestrator.search.deadline import Deadline
from servers.triton.contracts import (
    FACE_OCCLUDER,
    FACE_PARSER,
    OCCLUDER_INPUT_NAME,
    OCCLUDER_OUTPUT_NAME,
    PARSER_CLASSES,
    PARSER_INPUT_NAME,
    PARSER_LABELS_NAME,
)

PARSER_SIZE = 512
OCCLUDER_SIZE = 256
# The crop's side in face-box sides: CelebAMask-HQ's faces fill about half the photo, hair included.
PARSER_CONTEXT = 2.0
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
SKIN = PARSER_CLASSES.index("skin")
# What stays the init photo's anywhere in the mask: the target's hair, hat and glasses are not the face.
KEPT_CLASSES = tuple(PARSER_CLASSES.index(c) for c in ("glasses", "hair", "hat"))
# Beyond the landmark hull only the face itself is replaced (forehead skin, the brows' ends...), not the
# background, ears, neck or clothes a drawn mask may cover.
FACE_CLASSES = tuple(
    PARSER_CLASSES.index(c)
    for c in ("skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose", "mouth", "upper_lip", "lower_lip")
)


@dataclass(frozen=True)
class FaceRegions:
    labels: np.ndarray  # int16 (H, W): the parser's class per pixel, -1 outside its crop
    visible: np.ndarray | None  # float32 (H, W): the occluder's visibility, 1 outside its crop; None: no occluder
    parser: str
    occluder: str | None

    @property
    def skin(self) -> np.ndarray:
        skin: np.ndarray = self.labels == SKIN
        return skin

    def kept(self, hull: np.ndarray, visible_threshold: float = 0.5) -> np.ndarray:
        """Where the init photo stays (bool H x W): hair, hat, glasses and whatever covers the face, and
        beyond the landmark `hull` everything that is not the face."""
        kept: np.ndarray = np.isin(self.labels, KEPT_CLASSES) | (~hull & ~np.isin(self.labels, FACE_CLASSES))
        if self.visible is not None:
            kept |= self.visible < visible_threshold
        return kept


def _warp_back(values: np.ndarray, matrix: np.ndarray, hw: tuple[int, int], flags: int, outside: float) -> np.ndarray:
    inverse = cv2.invertAffineTransform(matrix)
    warped: np.ndarray = cv2.warpAffine(values, inverse, (hw[1], hw[0]), flags=flags, borderValue=outside)
    return warped


def parser_crop(image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """The loose 512 crop the parser sees and its 2x3 image->crop matrix."""
    x1, y1, x2, y2 = face.bbox
    scale = PARSER_SIZE / (max(x2 - x1, y2 - y1) * PARSER_CONTEXT)
    crop, matrix = face_align.transform(image, ((x1 + x2) / 2, (y1 + y2) / 2), PARSER_SIZE, scale, 0)
    return crop, matrix


def parse_face(
    analyzer: FaceAnalyzer, image: np.ndarray, face: Face, name: str, deadline: Deadline | None
) -> np.ndarray:
    """The parser's class of every pixel of the image (-1 outside its crop), int16 (H, W)."""
    crop, matrix = parser_crop(image, face)
    pixels = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    # The served parser gives each pixel's class (its logits' argmax is folded into the model).
    labels = analyzer.models.infer(
        name, {PARSER_INPUT_NAME: pixels.transpose(2, 0, 1)[None]}, [PARSER_LABELS_NAME], deadline
    )[PARSER_LABELS_NAME][0]
    back = _warp_back(labels, matrix, image.shape[:2], cv2.INTER_NEAREST, -1.0)
    return back.astype(np.int16)


def occluder_visibility(
    analyzer: FaceAnalyzer, image: np.ndarray, face: Face, name: str, deadline: Deadline | None
) -> np.ndarray:
    """The occluder's probability that the face is visible, per image pixel (1 outside its crop), float32."""
    crop, matrix = align_crop(image, face.kps, OCCLUDER_SIZE)
    pixels = crop[..., ::-1].astype(np.float32) / 255.0  # FaceFusion's frames are OpenCV's BGR
    out = analyzer.models.infer(name, {OCCLUDER_INPUT_NAME: pixels[None]}, [OCCLUDER_OUTPUT_NAME], deadline)
    visible = np.clip(out[OCCLUDER_OUTPUT_NAME][0, ..., 0], 0.0, 1.0).astype(np.float32)
    return _warp_back(visible, matrix, image.shape[:2], cv2.INTER_LINEAR, 1.0)


def face_regions(
    analyzer: FaceAnalyzer,
    image: np.ndarray,
    face: Face,
    parser: str = FACE_PARSER.triton_name,
    occluder: str = FACE_OCCLUDER.triton_name,
    deadline: Deadline | None = None,
) -> FaceRegions | None:
    """The face's regions, or None when Triton serves no face parser (the caller falls back). Without the
    occluder the parser's regions stand alone."""
    if not analyzer.models.serves(parser):
        return None
    served_occluder = occluder if analyzer.models.serves(occluder) else None
    return FaceRegions(
        labels=parse_face(analyzer, image, face, parser, deadline),
        visible=occluder_visibility(analyzer, image, face, occluder, deadline) if served_occluder else None,
        parser=parser,
        occluder=served_occluder,
    )
