"""The project's face path through Triton gives what insightface's own classes give on the original files.

Reference: insightface 2.1's `model_zoo` classes (SCRFD, Landmark, ArcFaceONNX, INSwapper), each on
its UNPREPARED file with onnxruntime, fed OpenCV BGR images as insightface expects. Project: the
orchestrator's FaceAnalyzer on the PREPARED files served by a real tritonserver (inswapper's emap
folded in, the landmark export's input normalisation folded in, RGB in). Same real photos, same faces.

Cases: the stand-ins always; the real weights too when `make models` has put them in models/real
(the case exists only then, it is never a skip). Stand-in outputs are noise, and both paths must
produce the same noise. Tolerances (float32 through two onnxruntime processes, one of them Triton's):
boxes and keypoints 0.05 px, scores 1e-4, landmarks 0.05 px, embeddings cosine > 0.9999 and
5e-4 of their norm elementwise; swapped crops one level apart (insightface truncates 255 * p to
uint8 where the project rounds: 0.5 on average), so pasted pixels at most two levels apart (OpenCV's
fixed-point bilinear warp rounds again) and under 0.75 on average.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from insightface.app.common import Face as InsightFace
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.inswapper import INSwapper
from insightface.model_zoo.landmark import Landmark
from insightface.model_zoo.scrfd import SCRFD
from insightface.utils import face_align

from orchestrator import sample_photos
from orchestrator.faces.analysis import DetectionConfig, Face, FaceAnalyzer, paste_back
from orchestrator.faces.triton_client import TritonConfig, TritonModels
from servers.triton.contracts import ARCFACE_W600K, DET_10G, INSIGHTFACE_MODELS, INSWAPPER_128, LANDMARK_2D106
from stack.triton import TritonServer, TritonServerConfig
from tests.conftest import copy_model_configs
from tools.models.prepare import prepare_repository

pytestmark = pytest.mark.triton

REAL_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "real"
MAX_DETECTIONS = 8
PHOTOS = {"astronaut": sample_photos.astronaut, "group": sample_photos.group, "tom_hanks": sample_photos.tom_hanks}


def _weight_sets() -> list[str]:
    real = all((REAL_WEIGHTS / c.source_path).is_file() for c in INSIGHTFACE_MODELS)
    return ["standins", "real"] if real else ["standins"]


@dataclass
class Reference:
    """insightface's own classes on the unprepared files."""

    detector: SCRFD
    landmarks: Landmark
    recognition: ArcFaceONNX
    swapper: INSwapper

    @classmethod
    def load(cls, weights: Path) -> Reference:
        detection = DetectionConfig()
        detector = SCRFD(model_file=str(weights / DET_10G.source_path))
        detector.prepare(
            -1,
            input_size=(detection.input_size, detection.input_size),
            det_thresh=detection.score_threshold,
            nms_thresh=detection.nms_threshold,
        )
        return cls(
            detector=detector,
            landmarks=Landmark(model_file=str(weights / LANDMARK_2D106.source_path)),
            recognition=ArcFaceONNX(model_file=str(weights / ARCFACE_W600K.source_path)),
            swapper=INSwapper(model_file=str(weights / INSWAPPER_128.source_path)),
        )


@dataclass
class Case:
    reference: Reference
    analyzer: FaceAnalyzer


@pytest.fixture(scope="module", params=_weight_sets())
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    if request.param == "standins":
        weights: Path = request.getfixturevalue("standin_weights")
        models: TritonModels = request.getfixturevalue("triton_models")
        yield Case(Reference.load(weights), FaceAnalyzer(models))
        return
    repository = copy_model_configs(tmp_path_factory.mktemp("real_triton_models"))
    prepare_repository(REAL_WEIGHTS, repository)
    log = tmp_path_factory.mktemp("real_logs") / "tritonserver.log"
    with TritonServer(TritonServerConfig.on_free_ports(repository=repository, log_file=log)) as server:
        real_models = TritonModels(TritonConfig(url=server.config.grpc_url))
        try:
            yield Case(Reference.load(REAL_WEIGHTS), FaceAnalyzer(real_models))
        finally:
            real_models.close()


@pytest.fixture(scope="module", params=sorted(PHOTOS))
def photo(request: pytest.FixtureRequest) -> np.ndarray:
    return PHOTOS[request.param]()


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def _faces_to_compare(reference: Reference, rgb: np.ndarray) -> list[Face]:
    """The reference's best detections, plus one fixed face so that no comparison is ever empty.

    The fixed face sits in the middle of the photo with ArcFace's template keypoints scaled to it
    (stand-in detectors find noise, and may find nothing, or dozens of faces: at most
    MAX_DETECTIONS are kept, under the batch limit of the Triton configurations).
    """
    boxes, kpss = reference.detector.detect(_bgr(rgb))
    faces = [
        Face(bbox=b[:4].astype(np.float32), score=float(b[4]), kps=k.astype(np.float32))
        for b, k in zip(boxes[:MAX_DETECTIONS], kpss[:MAX_DETECTIONS])
    ]
    height, width = rgb.shape[:2]
    side = 0.4 * min(height, width)
    x0, y0 = (width - side) / 2, (height - side) / 2
    kps = face_align.arcface_dst / 112.0 * side + np.array([x0, y0])
    box = np.array([x0, y0, x0 + side, y0 + side], np.float32)
    faces.append(Face(bbox=box, score=1.0, kps=kps.astype(np.float32)))
    return faces


def _insightface_face(face: Face) -> InsightFace:
    return InsightFace(bbox=face.bbox.astype(np.float32), kps=face.kps.astype(np.float32), det_score=face.score)


def test_detection_matches_scrfd(case: Case, photo: np.ndarray) -> None:
    boxes, kpss = case.reference.detector.detect(_bgr(photo))
    ours = case.analyzer.detect(photo)
    assert len(ours) == len(boxes)
    if ours:
        np.testing.assert_allclose(np.stack([f.bbox for f in ours]), boxes[:, :4], atol=0.05)
        np.testing.assert_allclose([f.score for f in ours], boxes[:, 4], atol=1e-4)
        np.testing.assert_allclose(np.stack([f.kps for f in ours]), kpss, atol=0.05)


def test_detection_inside_a_region_matches_scrfd_on_that_crop(case: Case, photo: np.ndarray) -> None:
    """The search looks for a candidate's face in the crop around the mask at a smaller side: SCRFD's own
    answer on that crop at that side, in the photo's coordinates."""
    height, width = photo.shape[:2]
    rows, cols = slice(height // 8, height * 7 // 8), slice(width // 5, width * 4 // 5)
    size = DetectionConfig().crop_input_size
    boxes, kpss = case.reference.detector.detect(_bgr(photo[rows, cols]), input_size=(size, size))
    ours = case.analyzer.detect_in(photo, (rows, cols), size)
    assert len(ours) == len(boxes)
    offset = np.array([cols.start, rows.start], np.float32)
    if ours:
        np.testing.assert_allclose(np.stack([f.bbox for f in ours]), boxes[:, :4] + np.tile(offset, 2), atol=0.05)
        np.testing.assert_allclose([f.score for f in ours], boxes[:, 4], atol=1e-4)
        np.testing.assert_allclose(np.stack([f.kps for f in ours]), kpss + offset, atol=0.05)


def test_landmarks_match_insightface_landmark(case: Case, photo: np.ndarray) -> None:
    faces = _faces_to_compare(case.reference, photo)
    case.analyzer.add_landmarks(photo, faces)
    for face in faces:
        expected = case.reference.landmarks.get(_bgr(photo), _insightface_face(face))
        assert face.landmarks is not None and face.landmarks.shape == expected.shape == (106, 2)
        np.testing.assert_allclose(face.landmarks, expected, atol=0.05)


def test_embeddings_match_arcface(case: Case, photo: np.ndarray) -> None:
    faces = _faces_to_compare(case.reference, photo)
    case.analyzer.add_embeddings(photo, faces)
    for face in faces:
        expected = case.reference.recognition.get(_bgr(photo), _insightface_face(face))
        assert face.embedding is not None and face.embedding.shape == expected.shape == (512,)
        cosine = float(face.embedding @ expected / (np.linalg.norm(face.embedding) * np.linalg.norm(expected)))
        assert cosine > 0.9999
        np.testing.assert_allclose(face.embedding, expected, atol=5e-4 * float(np.linalg.norm(expected)))


def test_swapped_faces_match_inswapper(case: Case, photo: np.ndarray) -> None:
    """Tom Hanks's identity on each face of the photo: insightface's crop, pasted the project's way."""
    character = sample_photos.tom_hanks()
    source = max(_faces_to_compare(case.reference, character), key=lambda f: f.area)
    source_embedding = case.reference.recognition.get(_bgr(character), _insightface_face(source))
    for target in _faces_to_compare(case.reference, photo):
        crop_bgr, matrix = case.reference.swapper.get(
            _bgr(photo), _insightface_face(target), InsightFace(embedding=source_embedding), paste_back=False
        )
        expected, support = paste_back(photo, np.ascontiguousarray(crop_bgr[..., ::-1]), matrix)
        got = case.analyzer.swap(photo, target, source_embedding)
        assert np.array_equal(got.support, support)
        difference = np.abs(got.image.astype(np.int16) - expected.astype(np.int16))[support]
        assert difference.max() <= 2
        assert difference.mean() < 0.75  # rounding against truncation alone averages 0.5
        assert np.array_equal(got.image[~support], photo[~support])
