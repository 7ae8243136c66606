"""The gateway against the real stack: the same answers as the gRPC port, as JSON; streams as server-sent
events; the same errors (HTTP status and google.rpc details); the same API keys."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status  # type: ignore[import-untyped]
from inpaint.v1 import operations_pb2, operations_pb2_grpc

from gateway.errors import http_error
from orchestrator import sample_photos
from stack.process import health_check
from tests.gateway.conftest import API_KEY, OTHER_KEY, TASK_ID, GatewayStack, http

METADATA = (("authorization", f"Bearer {API_KEY}"),)


def events_of(base_url: str, path: str, body: object | None = None, key: str = API_KEY) -> list[tuple[str, Any]]:
    """Every server-sent event of one stream, (event, data) in order, read to its end."""
    request = urllib.request.Request(
        base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
    )
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    events: list[tuple[str, Any]] = []
    with urllib.request.urlopen(request, timeout=300) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        name = ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def inline_request(request_id: str) -> dict[str, Any]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "request_id": request_id,
        "images": {
            "init_image": {"data": b64(sample_photos.encode_png(sample_photos.astronaut()))},
            "mask": {"data": b64(sample_photos.encode_png(sample_photos.astronaut_face_mask()))},
            "character_image": {"data": b64(sample_photos.encode_png(sample_photos.tom_hanks()))},
        },
    }


def details_of(error_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["@type"].rsplit(".", 1)[-1]: d for d in error_body["error"]["details"]}


def test_submit_watch_get_list_and_images_agree_with_the_grpc_port(gateway_stack: GatewayStack) -> None:
    base = gateway_stack.base_url
    submitted = http("POST", f"{base}/v1/operations:submit", {"request": inline_request("gw-inline-1")})
    assert submitted.status == 200, submitted.body[:500]
    operation = submitted.json()
    assert operation["name"] == "operations/gw-inline-1"

    events = events_of(base, "/v1/operations/gw-inline-1:watch")
    kinds = [name for name, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) <= {"queued", "progress"}
    scored = [d["progress"]["candidate_id"] for n, d in events if n == "progress"
              and d["progress"]["kind"] == "PROGRESS_KIND_CANDIDATE_SCORED"]  # fmt: skip
    done = events[-1][1]["done"]
    assert done["done"] is True and done["metadata"]["state"] == "OPERATION_STATE_SUCCEEDED"
    assert sorted(scored) == sorted(c["candidate_id"] for c in done["response"]["candidates"] if "potential" in c)

    # GET answers the proto3 JSON of exactly what the gRPC port answers.
    with gateway_stack.channel() as channel:
        stub = operations_pb2_grpc.OperationsServiceStub(channel)
        by_grpc = stub.GetOperation(
            operations_pb2.GetOperationRequest(name="operations/gw-inline-1"), timeout=60, metadata=METADATA
        )
        got = http("GET", f"{base}/v1/operations/gw-inline-1")
        assert got.status == 200
        parsed = json_format.ParseDict(got.json(), operations_pb2.Operation())
        assert parsed == by_grpc

        best = done["response"]["best_candidate_id"]
        png = http("GET", f"{base}/v1/operations/gw-inline-1/candidates/{best}?alt=media")
        assert png.status == 200 and png.headers["content-type"] == "image/png"
        image = stub.GetCandidateImage(
            operations_pb2.GetCandidateImageRequest(name="operations/gw-inline-1", candidate_id=best),
            timeout=60,
            metadata=METADATA,
        )
        assert png.body == image.image.data
        as_json = http("GET", f"{base}/v1/operations/gw-inline-1/candidates/{best}").json()
        assert base64.b64decode(as_json["image"]["data"]) == image.image.data

    listed = http("GET", f"{base}/v1/operations?filter=request_id_prefix%3Dgw-inline-&page_size=5")
    assert listed.status == 200
    assert [o["name"] for o in listed.json()["operations"]] == ["operations/gw-inline-1"]


def test_stream_inpaint_is_progress_events_then_the_result(gateway_stack: GatewayStack) -> None:
    events = events_of(
        gateway_stack.base_url, "/v1/inpaint:stream", {"request": {"request_id": "gw-stream-1", "task_id": TASK_ID}}
    )
    assert [n for n, _ in events][-1] == "result"
    assert all(n == "progress" for n, _ in events[:-1]) and len(events) > 1
    result = events[-1][1]["result"]
    assert result["request_id"] == "gw-stream-1"
    # A stand-in run says so in the result (the console marks it from this list).
    assert result["stand_in_models"]


def test_unary_inpaint_from_a_task_id(gateway_stack: GatewayStack) -> None:
    answer = http("POST", f"{gateway_stack.base_url}/v1/inpaint", {"request_id": "gw-unary-1", "task_id": TASK_ID})
    assert answer.status == 200, answer.body[:500]
    body = answer.json()
    assert body["request_id"] == "gw-unary-1" and body["best_candidate_id"]
    assert base64.b64decode(body["image"]["data"]).startswith(b"\x89PNG")


def test_cancel_then_delete(gateway_stack: GatewayStack) -> None:
    base = gateway_stack.base_url
    body = {"request": {"request_id": "gw-cancel-1", "task_id": TASK_ID}, "fresh_run": True}
    assert http("POST", f"{base}/v1/operations:submit", body).status == 200
    cancelled = http("POST", f"{base}/v1/operations/gw-cancel-1:cancel")
    assert cancelled.status == 200
    events = events_of(base, "/v1/operations/gw-cancel-1:watch")
    state = events[-1][1]["done"]["metadata"]["state"]
    assert cancelled.json()["name"] == "operations/gw-cancel-1"
    # A task that finished before the cancel reached it is SUCCEEDED; otherwise CANCELLED.
    assert state in ("OPERATION_STATE_CANCELLED", "OPERATION_STATE_SUCCEEDED")
    assert http("DELETE", f"{base}/v1/operations/gw-cancel-1").status == 200
    assert http("GET", f"{base}/v1/operations/gw-cancel-1").status == 404


def test_not_found_has_the_grpc_ports_status_and_details(gateway_stack: GatewayStack) -> None:
    answer = http("GET", f"{gateway_stack.base_url}/v1/operations/never-submitted")
    assert answer.status == 404
    error = answer.json()["error"]
    with gateway_stack.channel() as channel:
        stub = operations_pb2_grpc.OperationsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetOperation(
                operations_pb2.GetOperationRequest(name="operations/never-submitted"), timeout=60, metadata=METADATA
            )
    status = rpc_status.from_call(raised.value)
    assert error["status"] == "NOT_FOUND" and error["message"] == status.message
    grpc_details = [json_format.MessageToDict(d, preserving_proto_field_name=True) for d in status.details]
    assert error["details"] == grpc_details and details_of(answer.json())["ErrorInfo"]["domain"] == "inpaint.v1"
    # A stream that cannot start is a real HTTP error, not a 200 that fails.
    assert http("GET", f"{gateway_stack.base_url}/v1/operations/never-submitted:watch").status == 404


def test_a_bad_setting_is_400_naming_the_field(gateway_stack: GatewayStack) -> None:
    body = {"request": {"request_id": "gw-bad-1", "task_id": TASK_ID, "settings": {"k_global": 999}}}
    answer = http("POST", f"{gateway_stack.base_url}/v1/operations:submit", body)
    assert answer.status == 400
    details = details_of(answer.json())
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert details["BadRequest"]["field_violations"][0]["field"] == "settings.k_global"


@pytest.mark.parametrize(
    ("body", "needle"),
    [(b"{not json", "is not JSON"), (b'{"request": {"no_such_field": 1}}', "no_such_field"), (b"[1]", "JSON object")],
)
def test_a_body_that_is_not_the_message_is_400_naming_it(gateway_stack: GatewayStack, body: bytes, needle: str) -> None:
    request = urllib.request.Request(f"{gateway_stack.base_url}/v1/operations:submit", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {API_KEY}")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=60)
    assert raised.value.code == 400
    error = json.loads(raised.value.read())["error"]
    assert needle in error["message"] and error["status"] == "INVALID_ARGUMENT"
    assert details_of({"error": error})["BadRequest"]["field_violations"][0]["field"] == "body"


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_key_is_401_on_http(gateway_stack: GatewayStack, key: str | None) -> None:
    for method, path in (("GET", "/v1/operations"), ("GET", "/v1/operations/x:watch"), ("POST", "/v1/inpaint")):
        answer = http(method, gateway_stack.base_url + path, {} if method == "POST" else None, key=key)
        assert answer.status == 401, path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        error = answer.json()["error"]
        assert error["status"] == "UNAUTHENTICATED"
        reason = details_of(answer.json())["ErrorInfo"]["reason"]
        assert reason == ("API_KEY_MISSING" if key is None else "API_KEY_INVALID")


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong-key"),), (("x-api-key", "wrong"),)])
def test_a_missing_or_wrong_key_is_unauthenticated_on_grpc(gateway_stack: GatewayStack, metadata: Any) -> None:
    with gateway_stack.channel() as channel:
        stub = operations_pb2_grpc.OperationsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ListOperations(operations_pb2.ListOperationsRequest(), timeout=60, metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Streams are guarded too.
        with pytest.raises(grpc.RpcError) as streamed:
            list(
                stub.WatchOperation(
                    operations_pb2.WatchOperationRequest(name="operations/x"), timeout=60, metadata=metadata
                )
            )
        assert streamed.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_keys_from_the_file_and_the_environment_both_work_and_probes_need_none(gateway_stack: GatewayStack) -> None:
    with gateway_stack.channel() as channel:
        stub = operations_pb2_grpc.OperationsServiceStub(channel)
        for metadata in (METADATA, (("x-api-key", OTHER_KEY),)):
            stub.ListOperations(operations_pb2.ListOperationsRequest(page_size=1), timeout=60, metadata=metadata)
        answer = health_check(channel)(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert http("GET", f"{gateway_stack.base_url}/v1/operations?page_size=1", key=None,
                headers={"X-API-Key": OTHER_KEY}).status == 200  # fmt: skip
    assert http("GET", f"{gateway_stack.base_url}/healthz", key=None).status == 200


def test_openapi_and_the_console_are_served(gateway_stack: GatewayStack) -> None:
    document = http("GET", f"{gateway_stack.base_url}/openapi.json", key=None)
    assert document.status == 200 and document.json()["openapi"].startswith("3.")
    page = http("GET", f"{gateway_stack.base_url}/console/", key=None)
    assert page.status == 200 and b"<title>" in page.body
    sample = http("GET", f"{gateway_stack.base_url}/console/samples/init.png", key=None)
    assert sample.body == sample_photos.encode_png(sample_photos.astronaut())


def test_retry_info_becomes_a_retry_after_header() -> None:
    """The mapping itself (the live stack is healthy, so it never answers UNAVAILABLE here)."""
    retry = any_pb2.Any()
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=5)))
    error = http_error(grpc.StatusCode.UNAVAILABLE, "not ready", [retry])
    assert error.status == 503 and error.headers["Retry-After"] == "5"
    assert error.body["error"]["details"][0]["retry_delay"] == "5s"
