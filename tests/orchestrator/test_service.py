"""The public API end to end, against real local processes of every component."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from inpaint.v1 import inpaint_pb2
from PIL import Image

from orchestrator import sample_photos
from orchestrator.client import timings_s
from tests.orchestrator.conftest import SECOND_MODEL, LiveStack, image, task_images


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def result(live: LiveStack) -> inpaint_pb2.InpaintResponse:
    live.gemini.configure(not_found_models={"gemini-first"})  # the chain must move on to the next model
    request = inpaint_pb2.InpaintRequest(request_id="unary-1", images=task_images(), return_candidate_images=True)
    response: inpaint_pb2.InpaintResponse = live.stub().Inpaint(request, timeout=300)
    return response


def test_the_result_differs_from_the_init_image_only_inside_the_refined_mask(
    result: inpaint_pb2.InpaintResponse,
) -> None:
    init = sample_photos.astronaut()
    out = _decode(result.image.data)
    refined = _decode(result.refined_mask.data)[..., 0] > 127
    assert out.shape == init.shape
    changed = (out != init).any(axis=2)
    assert changed.any()
    assert not (changed & ~refined).any()


def test_every_candidate_is_in_the_ledger_and_the_best_wins(result: inpaint_pb2.InpaintResponse) -> None:
    assert len(result.candidates) == 3 + 1 * 2  # k_global + m_global * k_local
    ids = [c.candidate_id for c in result.candidates]
    assert ids[0] == "g0" and result.candidates[0].mode == inpaint_pb2.CANDIDATE_MODE_RAW_SWAP
    best = max(result.candidates, key=lambda c: c.potential)
    assert result.best_candidate_id == best.candidate_id
    locals_ = [c for c in result.candidates if c.stage == inpaint_pb2.STAGE_LOCAL]
    assert len(locals_) == 2 and all(c.parent_id for c in locals_)
    ledger = json.loads(result.ledger_json)
    assert [c["candidate_id"] for c in ledger["candidates"]] == ids
    assert {c.candidate_id for c in result.candidate_images} == set(ids)
    assert "test-key" not in result.ledger_json


def test_scores_carry_their_source_and_gemini_moved_to_the_next_model(
    result: inpaint_pb2.InpaintResponse, live: LiveStack
) -> None:
    realism = [s for c in result.candidates for s in c.scores if s.signal == "realism"]
    assert realism and all(s.source == f"gemini:{SECOND_MODEL}" and not s.fallback for s in realism)
    assert "gemini-first" in live.gemini.models_called() and SECOND_MODEL in live.gemini.models_called()
    for candidate in result.candidates:
        signals = {s.signal for s in candidate.scores}
        assert {"realism", "identity", "consistency", "identity_local", "consistency_local", "realism_local"} <= signals


def test_stand_ins_and_timings_are_reported(result: inpaint_pb2.InpaintResponse) -> None:
    assert {"triton:det_10g", "triton:inswapper_128", "qwen_edit"} <= set(result.stand_in_models)
    timings = timings_s(result)
    assert {"face", "search", "generation", "total"} <= set(timings)
    assert timings["total"] >= timings["face"] > 0
    assert result.mask_refinement.reason


def test_a_repeated_request_id_returns_the_stored_result_unless_it_was_degraded(
    live: LiveStack, result: inpaint_pb2.InpaintResponse
) -> None:
    """A complete result is replayed; a degraded one (stand-ins, fallbacks, cut short) is run again."""
    request = inpaint_pb2.InpaintRequest(request_id="unary-1", images=task_images(), return_candidate_images=True)
    again = live.stub().Inpaint(request, timeout=300)
    assert not result.replayed and again.replayed == (not result.degraded)
    assert again.image.data == result.image.data  # the same request and seed: the same result either way
    assert {c.candidate_id for c in again.candidate_images} == {c.candidate_id for c in result.candidates}


def test_a_reused_request_id_with_another_request_is_refused(
    live: LiveStack, result: inpaint_pb2.InpaintResponse
) -> None:
    request = inpaint_pb2.InpaintRequest(request_id="unary-1", task_id="71680285")
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (error.value.details() or "")


def test_streaming_sends_progress_then_the_result(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(request_id="stream-1", task_id="71680285")
    messages = list(live.stub().StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=300))
    assert messages[-1].HasField("result") and all(m.HasField("progress") for m in messages[:-1])
    everything = [m.progress.kind for m in messages[:-1]]
    # A task may wait for a slot first: its queue position comes before the search's events, never after.
    kinds = [k for k in everything if k != inpaint_pb2.PROGRESS_KIND_QUEUED]
    assert everything[: len(everything) - len(kinds)] == [inpaint_pb2.PROGRESS_KIND_QUEUED] * (
        len(everything) - len(kinds)
    )
    assert kinds[0] == inpaint_pb2.PROGRESS_KIND_STAGE_STARTED and kinds[-1] == inpaint_pb2.PROGRESS_KIND_DONE
    assert kinds.count(inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED) == 5
    scored = [m.progress.scored for m in messages[:-1]]
    assert scored == sorted(scored)
    assert messages[-1].result.best_candidate_id


def test_the_same_request_and_seed_give_the_same_result(live: LiveStack, result: inpaint_pb2.InpaintResponse) -> None:
    request = inpaint_pb2.InpaintRequest(request_id="unary-again", images=task_images())
    again = live.stub().Inpaint(request, timeout=300)
    assert again.image.data == result.image.data
    assert [c.seed for c in again.candidates] == [c.seed for c in result.candidates]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t.init_image.CopyFrom(image(b"not an image")), "init_image"),
        (
            lambda t: t.mask.CopyFrom(
                image(sample_photos.encode_png(np.zeros((512, 512), bool))).__class__(
                    data=sample_photos.encode_png(np.zeros((512, 512), np.uint8))
                )
            ),
            "mask",
        ),
        (lambda t: t.mask.CopyFrom(image(sample_photos.encode_png(np.full((100, 100), 255, np.uint8)))), "mask"),
        (lambda t: t.ClearField("character_image"), "images.character_image"),
    ],
    ids=["corrupt init", "empty mask", "mask of another size", "missing character"],
)
def test_bad_inputs_are_invalid_argument_naming_the_field(live: LiveStack, mutate, field) -> None:  # type: ignore[no-untyped-def]
    images = task_images()
    mutate(images)
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(images=images), timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith(field), error.value.details() or ""


@pytest.mark.parametrize("task_id", ["../etc", "a/b", "..", "nope-missing"])
def test_task_ids_cannot_escape_the_store(live: LiveStack, task_id: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id=task_id), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith("task_id")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (inpaint_pb2.SearchSettings(feather_px=0), "settings.feather_px"),
        (inpaint_pb2.SearchSettings(erosion_px=10**6), "settings.erosion_px"),
        (inpaint_pb2.SearchSettings(k_global=100000), "settings.k_global"),
        (inpaint_pb2.SearchSettings(num_inference_steps=0), "settings.num_inference_steps"),
        (inpaint_pb2.SearchSettings(true_cfg_scale=-1), "settings.true_cfg_scale"),
    ],
)
def test_settings_out_of_bounds_are_refused(live: LiveStack, settings: inpaint_pb2.SearchSettings, field: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id="71680285", settings=settings), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith(field)


def test_a_bad_setting_names_the_field(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(
        task_id="71680285", settings=inpaint_pb2.SearchSettings(m_global=9, k_global=2)
    )
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "settings.m_global" in (error.value.details() or "")


def test_no_face_in_the_character_is_failed_precondition(live: LiveStack) -> None:
    images = task_images()
    images.character_image.CopyFrom(image(sample_photos.encode_png(np.full((200, 200, 3), 128, np.uint8))))
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(images=images), timeout=60)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (error.value.details() or "").startswith("character_image")


def test_a_deadline_shorter_than_the_face_stage_is_deadline_exceeded(live: LiveStack) -> None:
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id="71680285"), timeout=0.05)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_tight_deadline_returns_the_best_so_far_flagged(live: LiveStack) -> None:
    started = time.monotonic()
    response = live.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id="71680285"), timeout=3.5)
    assert time.monotonic() - started < 3.5
    assert response.degraded and response.best_candidate_id
    ledger = json.loads(response.ledger_json)
    assert ledger["skipped"] or ledger["failures"], "a 3.5 s budget cannot hold the whole search"
    assert any("stage" in note for note in response.notes), response.notes


def test_a_malformed_request_id_is_invalid_argument(live: LiveStack) -> None:
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(request_id="../../x y", task_id="71680285"), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith("request_id")


def test_one_of_four_callers_cancelling_leaves_the_others_their_result(live: LiveStack) -> None:
    """Before: the other three got nothing until their own deadline; the server had logged them CANCELLED."""
    import concurrent.futures

    request = inpaint_pb2.InpaintRequest(request_id="shared-4", task_id="71680285")
    first = live.stub().StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=300)
    next(first)  # the task is under way
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        others = [pool.submit(live.stub().Inpaint, request, timeout=300) for _ in range(3)]
        first.cancel()
        results = [other.result() for other in others]
    assert all(r.best_candidate_id and r.image.data == results[0].image.data for r in results)


def test_a_second_stream_of_one_request_id_gets_progress_events(live: LiveStack) -> None:
    """Before: a replayed stream got the result alone, no progress."""
    request = inpaint_pb2.InpaintRequest(request_id="stream-twice", task_id="71680285")
    for _ in range(2):
        messages = list(live.stub().StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=300))
        kinds = {m.progress.kind for m in messages if m.HasField("progress")}
        assert inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED in kinds and messages[-1].HasField("result")


def test_a_huge_task_id_is_invalid_argument_with_a_bounded_message(live: LiveStack) -> None:
    """Before: RESOURCE_EXHAUSTED, the error echoing 100,000 characters into metadata past 16 KiB."""
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(inpaint_pb2.InpaintRequest(task_id="x" * 100_000), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.value.details() or "").startswith("task_id") and len(error.value.details() or "") <= 1024


def test_operations_submit_get_watch_fetch_list_and_delete(live: LiveStack) -> None:
    from inpaint.v1 import operations_pb2, operations_pb2_grpc

    from orchestrator.client import InpaintClient

    stub = operations_pb2_grpc.OperationsServiceStub(InpaintClient(live.address).channel)
    request = inpaint_pb2.InpaintRequest(request_id="ops-1", images=task_images())
    operation = stub.SubmitInpaint(operations_pb2.SubmitInpaintRequest(request=request), timeout=30)
    assert operation.name == "operations/ops-1" and not operation.done
    events = list(stub.WatchOperation(operations_pb2.WatchOperationRequest(name=operation.name), timeout=300))
    done = events[-1].done
    assert done.done and done.metadata.state == operations_pb2.OPERATION_STATE_SUCCEEDED
    assert any(e.HasField("progress") for e in events) and done.response.best_candidate_id
    again = stub.GetOperation(operations_pb2.GetOperationRequest(name=operation.name), timeout=30)
    assert again.response.image.data == done.response.image.data
    best = stub.GetCandidateImage(
        operations_pb2.GetCandidateImageRequest(name=operation.name, candidate_id=done.response.best_candidate_id),
        timeout=30,
    )
    assert best.image.data.startswith(b"\x89PNG")
    listed = stub.ListOperations(operations_pb2.ListOperationsRequest(filter="request_id_prefix=ops-"), timeout=30)
    assert [o.name for o in listed.operations] == [operation.name]
    stub.DeleteOperation(operations_pb2.DeleteOperationRequest(name=operation.name), timeout=30)
    with pytest.raises(grpc.RpcError) as error:
        stub.GetOperation(operations_pb2.GetOperationRequest(name=operation.name), timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_reused_request_id_names_the_differing_field_in_a_bad_request_detail(live: LiveStack) -> None:
    from google.rpc import error_details_pb2  # type: ignore[import-untyped]
    from grpc_status import rpc_status  # type: ignore[import-untyped]

    first = inpaint_pb2.InpaintRequest(request_id="reused-2", task_id="71680285")
    live.stub().Inpaint(first, timeout=300)
    changed = inpaint_pb2.InpaintRequest(
        request_id="reused-2", task_id="71680285", settings=inpaint_pb2.SearchSettings(seed=5)
    )
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(changed, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error.value)
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [v.field for v in bad.field_violations]
    assert violations == ["settings.seed"]


def test_the_api_documents_client_example_runs(live: LiveStack, tmp_path: Path) -> None:
    import subprocess
    import sys

    from orchestrator import sample_photos

    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    code = docs.split("```python\n", 1)[1].split("```", 1)[0]
    for name, array in (
        ("photo.jpg", sample_photos.astronaut()),
        ("mask.png", sample_photos.astronaut_face_mask()),
        ("face.jpg", sample_photos.tom_hanks()),
    ):
        (tmp_path / name).write_bytes(sample_photos.encode_png(array))
    code = code.replace("127.0.0.1:50050", live.address)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "result.png").stat().st_size > 1000 and (tmp_path / "best_candidate.png").stat().st_size > 1000
    assert "operations/order-5678" in done.stdout and "OPERATION_STATE_CANCELLED" in done.stdout
