"""The service's own pieces, without servers: admission, error mapping and its details."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from inpaint.v1 import image_pb2, inpaint_pb2

from orchestrator.errors import DeadlineExceededError, InvalidInputError, ModelUnavailableError, NoFaceError
from orchestrator.operations.engine import field_digests, first_difference
from orchestrator.operations.status import to_service_error
from orchestrator.search import SearchConfigError
from servers.common import errors as service_errors
from servers.common.interceptor import status_for


def test_a_reused_request_id_is_compared_on_everything_but_the_id() -> None:
    """What a request asks for, without its id (or whether candidates come back inline): a replayed id must
    carry the same request, and what differs is named."""
    images = inpaint_pb2.TaskImages(init_image=image_pb2.Image(data=b"init"), mask=image_pb2.Image(data=b"mask"))
    a = inpaint_pb2.InpaintRequest(request_id="x", images=images, return_candidate_images=True)
    b = inpaint_pb2.InpaintRequest(request_id="y", images=images)
    c = inpaint_pb2.InpaintRequest(request_id="x", images=images, face=inpaint_pb2.FaceSettings(swap_size=256))
    assert field_digests(a, "t1") == field_digests(b, "t1")
    assert first_difference(field_digests(a, "t1"), field_digests(a, "t2")) == "task_id"
    assert first_difference(field_digests(a), field_digests(c)) == "face"


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (InvalidInputError("mask", "is empty"), "INVALID_ARGUMENT", "mask: is empty"),
        (SearchConfigError("k_local", "must be at least 0"), "INVALID_ARGUMENT", "settings.k_local"),
        (NoFaceError("character_image"), "FAILED_PRECONDITION", "character_image: no face"),
        (ModelUnavailableError("det_10g", "refused"), "UNAVAILABLE", "det_10g is unavailable"),
        (DeadlineExceededError("late"), "DEADLINE_EXCEEDED", "late"),
        (RuntimeError("bug"), "INTERNAL", "RuntimeError: bug"),
    ],
)
def test_domain_errors_map_to_status_codes_once(error: Exception, code: str, text: str) -> None:
    mapped = to_service_error(error)
    assert status_for(mapped).name == code
    assert text in str(mapped)


def test_the_pipeline_raises_deadline_exceeded_when_the_face_stage_outlasts_the_budget() -> None:
    """The server's own DEADLINE_EXCEEDED path (not the client's): no time left once the face stage ends."""
    import time
    from unittest import mock

    import numpy as np

    from orchestrator.config import OrchestratorConfig, RequestSettings
    from orchestrator.faces.stage import FaceStage
    from orchestrator.pipeline import InpaintPipeline
    from orchestrator.requests import Task, TaskImages
    from orchestrator.search import Deadline

    config = OrchestratorConfig()
    pipeline = InpaintPipeline(config)
    slow = mock.Mock(side_effect=lambda *args: time.sleep(0.3))
    images = TaskImages(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), np.zeros((8, 8, 3), np.uint8))
    task = Task("late", images, RequestSettings(), config, Deadline.after(0.2))
    with (
        mock.patch.object(FaceStage, "run", slow),
        mock.patch.object(InpaintPipeline, "analyzer", mock.Mock()),
        pytest.raises(DeadlineExceededError, match="face stage"),
    ):
        asyncio.run(pipeline.run(task))
    assert slow.called


def _details(error: Exception) -> tuple[Any, dict[str, Any]]:
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

    from orchestrator.operations.status import rich_status

    status = rich_status(to_service_error(error))
    (key, value), *_ = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    found: dict[str, Any] = {}
    for detail in status_pb2.Status.FromString(value).details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.__name__] = message
    return status, found


def test_an_invalid_argument_carries_the_field_as_a_bad_request_detail() -> None:
    status, details = _details(InvalidInputError("settings.k_global", "must be within 1..32, got 100"))
    assert status.code.name == "INVALID_ARGUMENT"
    violation = details["BadRequest"].field_violations[0]
    assert violation.field == "settings.k_global" and "1..32" in violation.description
    assert details["ErrorInfo"].reason == "INVALID_ARGUMENT"
    assert "RetryInfo" not in details


@pytest.mark.parametrize(
    "error", [service_errors.ResourceExhausted("queue full"), ModelUnavailableError("det_10g", "refused")]
)
def test_busy_and_unavailable_say_when_to_retry(error: Exception) -> None:
    _, details = _details(error)
    assert details["RetryInfo"].retry_delay.seconds > 0


def test_a_huge_input_echoed_in_an_error_is_bounded() -> None:
    """A 100,000-character task id came back as RESOURCE_EXHAUSTED: its echo overflowed the metadata."""
    from pathlib import Path

    from orchestrator.tasks import TaskStore

    with pytest.raises(InvalidInputError) as raised:
        TaskStore(Path("tasks")).find("x" * 100_000)
    status, details = _details(raised.value)
    assert status.code.name == "INVALID_ARGUMENT" and len(status.details) <= 1024
    assert details["BadRequest"].field_violations[0].field == "task_id"
    assert sum(len(k) + len(v) for k, v in status.trailing_metadata) < 4096
