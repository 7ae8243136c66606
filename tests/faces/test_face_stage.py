"""The whole face stage through a real tritonserver serving the stand-ins."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest

from orchestrator import sample_photos
from orchestrator.errors import NoFaceError
from orchestrator.faces.analysis import DetectionConfig, Face, FaceAnalyzer
from orchestrator.faces.selection import choose_character_face, choose_target_face
from orchestrator.faces.stage import FaceStage, FaceStageResult
from orchestrator.faces.triton_client import TritonModels
from orchestrator.search import Deadline
from servers.common.logs import JsonLineFormatter
from tests.conftest import settled_statistics

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def analyzer(triton_models: TritonModels) -> FaceAnalyzer:
    return FaceAnalyzer(triton_models)


@pytest.fixture(scope="module")
def result(analyzer: FaceAnalyzer, astronaut: np.ndarray, tom_hanks: np.ndarray) -> FaceStageResult:
    return FaceStage(analyzer, standin=True).run(astronaut, sample_photos.astronaut_face_mask(), tom_hanks)


def test_detection_decodes_boxes_and_keypoints(analyzer: FaceAnalyzer, group_photo: np.ndarray) -> None:
    faces = analyzer.detect(group_photo)
    assert faces, "the stand-in detector yields some (random) boxes on a photo"
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5
    for face in faces:
        assert face.bbox.shape == (4,) and face.kps.shape == (5, 2)
        assert face.bbox[2] > face.bbox[0] and face.bbox[3] > face.bbox[1]


def test_landmarks_and_embeddings_are_batched_per_image(
    analyzer: FaceAnalyzer, group_photo: np.ndarray, triton_models: TritonModels
) -> None:
    faces = analyzer.detect(group_photo)[:5]
    before = settled_statistics(triton_models, "2d106det")
    analyzer.add_landmarks(group_photo, faces)
    after = settled_statistics(triton_models, "2d106det")
    assert after[0] - before[0] == len(faces) and after[1] - before[1] == 1, "one request carries every face"
    analyzer.add_embeddings(group_photo, faces)
    for face in faces:
        assert face.landmarks is not None and face.landmarks.shape == (106, 2)
        assert face.embedding is not None and face.embedding.shape == (512,)
    assert not np.allclose(faces[0].embedding, faces[1].embedding)  # type: ignore[arg-type]


def test_a_crowd_larger_than_the_batch_limit_goes_in_chunks(analyzer: FaceAnalyzer, group_photo: np.ndarray) -> None:
    """Triton refuses batches over max_batch_size (32): 40 faces are sent as 32 + 8, with the same answers."""
    one = analyzer.detect(group_photo)[0]
    crowd = [dataclasses.replace(one) for _ in range(40)]
    analyzer.add_landmarks(group_photo, crowd)
    analyzer.add_embeddings(group_photo, crowd)
    alone = dataclasses.replace(one)
    analyzer.add_landmarks(group_photo, [alone])
    analyzer.add_embeddings(group_photo, [alone])
    for face in crowd:
        np.testing.assert_allclose(face.landmarks, alone.landmarks, atol=1e-3)  # type: ignore[arg-type]
        np.testing.assert_allclose(face.embedding, alone.embedding, rtol=1e-4, atol=1e-4)  # type: ignore[arg-type]


def test_an_embedding_does_not_depend_on_what_shares_its_batch(analyzer: FaceAnalyzer, group_photo: np.ndarray) -> None:
    """Scores, and so the search's winner, must not depend on which requests Triton batched together:
    a face alone, inside a request of several, and among concurrent requests gets the same embedding,
    bit for bit (the CPU runner runs each item on its own)."""
    from concurrent.futures import ThreadPoolExecutor

    faces = analyzer.detect(group_photo)[:5]
    alone = dataclasses.replace(faces[0])
    analyzer.add_embeddings(group_photo, [alone])
    together = [dataclasses.replace(f) for f in faces]
    analyzer.add_embeddings(group_photo, together)

    def embed_one(_: int) -> np.ndarray:
        face = dataclasses.replace(faces[0])
        analyzer.add_embeddings(group_photo, [face])
        assert face.embedding is not None
        return face.embedding

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(embed_one, range(16)))
    assert alone.embedding is not None
    assert np.array_equal(together[0].embedding, alone.embedding)  # type: ignore[arg-type]
    assert all(np.array_equal(e, alone.embedding) for e in concurrent)


def test_outside_the_refined_mask_nothing_changes(result: FaceStageResult, astronaut: np.ndarray) -> None:
    changed = (result.blended != astronaut).any(axis=2)
    assert changed.any(), "the swap must change something"
    assert not (changed & ~result.mask.mask).any()


def test_raw_swap_changes_only_the_pasted_crop(result: FaceStageResult, astronaut: np.ndarray) -> None:
    changed = (result.raw_swap != astronaut).any(axis=2)
    assert changed.any()
    box = result.target.bbox
    ys, xs = np.nonzero(changed)
    # The pasted 128 crop covers the aligned face, a neighbourhood of the target box.
    span = max(box[2] - box[0], box[3] - box[1]) * 4
    assert (
        xs.min() > box[0] - span and xs.max() < box[2] + span and ys.min() > box[1] - span and ys.max() < box[3] + span
    )


def test_result_reports_faces_timings_and_stand_in(result: FaceStageResult) -> None:
    assert result.standin
    assert result.target.landmarks is not None and result.character.embedding is not None
    assert set(result.timings_s) == {
        "detect_target",
        "character_identity",
        "face_regions",
        "refine_mask",
        "swap",
        "colour_match",
        "blend",
    }
    assert all(t >= 0 for t in result.timings_s.values())
    assert result.mask.reason


def test_same_inputs_give_the_same_output(
    analyzer: FaceAnalyzer, result: FaceStageResult, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    again = FaceStage(analyzer, standin=True).run(astronaut, sample_photos.astronaut_face_mask(), tom_hanks)
    np.testing.assert_array_equal(again.blended, result.blended)


def test_no_face_in_the_init_image_names_it(
    triton_models: TritonModels, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    blind = FaceAnalyzer(triton_models, DetectionConfig(score_threshold=1.01))  # no score can pass
    with pytest.raises(NoFaceError, match=r"^init_image: no face was detected") as info:
        FaceStage(blind).run(astronaut, sample_photos.astronaut_face_mask(), tom_hanks)
    assert info.value.image == "init_image"


def _face(x: float, y: float, size: float, score: float = 0.9) -> Face:
    return Face(bbox=np.array([x, y, x + size, y + size], np.float32), score=score, kps=np.zeros((5, 2), np.float32))


def test_target_is_the_face_overlapping_the_mask_most() -> None:
    mask = np.zeros((100, 100), bool)
    mask[50:90, 50:90] = True
    faces = [_face(0, 0, 40, 0.99), _face(40, 40, 40, 0.6), _face(60, 60, 20, 0.8)]
    assert choose_target_face(faces, mask) is faces[1]
    with pytest.raises(NoFaceError, match=r"^init_image: 1 face\(s\) detected, none overlaps the mask"):
        choose_target_face([faces[0]], mask)


def test_character_is_its_largest_face() -> None:
    faces = [_face(0, 0, 20, 0.99), _face(30, 30, 50, 0.6)]
    assert choose_character_face(faces) is faces[1]
    with pytest.raises(NoFaceError, match=r"^character_image: no face was detected"):
        choose_character_face([])


def test_no_hard_seam_where_the_mask_reaches_beyond_the_pasted_crop(
    result: FaceStageResult, astronaut: np.ndarray
) -> None:
    from orchestrator.imaging.blend import erode

    support = result.swap_support
    inside = result.mask.mask & support
    crop_edge = inside & ~erode(support, 1)
    assert (result.mask.mask & ~support).any(), "the test needs a mask reaching beyond the crop"
    assert crop_edge.any()
    # At the crop's edge the blend has not started yet: the init image, not the pasted crop.
    np.testing.assert_array_equal(result.blended[crop_edge], astronaut[crop_edge])


def test_a_failing_mask_refinement_keeps_the_given_mask_and_says_why(
    analyzer: FaceAnalyzer,
    astronaut: np.ndarray,
    tom_hanks: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: any exception inside the refinement aborted the task. And the log line says why (it used
    to carry the error in a field the service's JSON log lines drop)."""
    import orchestrator.faces.stage as stage_module

    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("a degenerate hull")

    monkeypatch.setattr(stage_module, "refine_mask", broken)
    given = sample_photos.astronaut_face_mask()
    result = FaceStage(analyzer, standin=True).run(astronaut, given, tom_hanks)
    assert not result.mask.refined
    assert np.array_equal(result.mask.mask, given)
    assert "mask refinement failed (ValueError: a degenerate hull)" in result.mask.reason
    (record,) = [r for r in caplog.records if r.getMessage() == "mask refinement failed"]
    assert json.loads(JsonLineFormatter().format(record))["error"] == "ValueError: a degenerate hull"
    changed = (result.blended != astronaut).any(axis=2)
    assert changed.any() and not (changed & ~given).any(), "the swap is still blended inside the given mask"


def test_every_triton_call_of_a_request_carries_its_id(
    analyzer: FaceAnalyzer, astronaut: np.ndarray, tom_hanks: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request id reaches Triton with each inference (gRPC metadata and the KServe request id), through the
    real client and server; the shared analyzer is not changed by a request's view of it."""
    seen: list[tuple[str, dict[str, str] | None]] = []
    client = analyzer.models.client
    real_infer = client.infer

    def recording_infer(*args: object, **kwargs: object) -> object:
        seen.append((str(kwargs.get("request_id")), kwargs.get("headers")))  # type: ignore[arg-type]
        return real_infer(*args, **kwargs)

    monkeypatch.setattr(client, "infer", recording_infer)
    scoped = analyzer.for_request("task-77")
    FaceStage(scoped, standin=True).run(astronaut, sample_photos.astronaut_face_mask(), tom_hanks, Deadline.after(60))
    assert seen and all(rid == "task-77" and headers == {"x-request-id": "task-77"} for rid, headers in seen)
    assert analyzer.models.request_id == "" and scoped.models.client is analyzer.models.client


def test_the_character_is_analysed_while_the_target_is_detected(
    analyzer: FaceAnalyzer, astronaut: np.ndarray, tom_hanks: np.ndarray
) -> None:
    """The two detections are independent and go to Triton together: the target's detection here waits until
    the character's has started (a stage that finished the target before starting the character would fail)."""
    character_started = threading.Event()

    class Watching(FaceAnalyzer):
        def detect(
            self, image: np.ndarray, deadline: Deadline | None = None, input_size: int | None = None
        ) -> list[Face]:
            if image.shape == tom_hanks.shape and np.array_equal(image, tom_hanks):
                character_started.set()
            elif not character_started.wait(timeout=10):
                raise AssertionError("the target's detection ran alone: the character's never started beside it")
            return super().detect(image, deadline, input_size)

    watching = Watching(analyzer.models)
    result = FaceStage(watching, standin=True).run(astronaut, sample_photos.astronaut_face_mask(), tom_hanks)
    assert result.identity is not None and result.identity.shape == (512,)
    assert result.timings_s["character_identity"] > 0
