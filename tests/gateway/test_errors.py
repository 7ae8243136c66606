"""The gateway's errors without a stack (gateway/errors.py, gateway/app.py): a request it refuses itself answers
exactly as the gRPC port answers the same refusal, the gRPC port's statuses keep their details over HTTP, and a
body over the size limit is refused however it is sent."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message
from inpaint.v1 import inpaint_pb2, operations_pb2
from starlette.requests import Request

from gateway.app import BadRequestError, Gateway
from gateway.config import GatewayConfig
from gateway.errors import bad_request, from_rpc_error
from gateway.routes import ROUTES
from orchestrator.operations.status import MESSAGE_LIMIT, NotFoundError, rich_status
from servers.common.errors import InvalidArgument


def grpc_port_error(status: grpc.Status) -> grpc.aio.AioRpcError:
    """What the gateway's channel raises when the gRPC port ends a call with `status`."""
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )


def test_a_body_the_gateway_refuses_answers_as_the_grpc_port_would() -> None:
    refused = bad_request("body", "is not JSON: Expecting value: line 1 column 1 (char 0)")
    same_on_grpc = from_rpc_error(
        grpc_port_error(rich_status(InvalidArgument("body", "is not JSON: Expecting value: line 1 column 1 (char 0)")))
    )
    assert refused == same_on_grpc
    assert refused.status == 400 and refused.body["error"]["status"] == "INVALID_ARGUMENT"
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in refused.body["error"]["details"]}
    assert details["BadRequest"]["field_violations"][0]["field"] == "body"
    assert details["ErrorInfo"] == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "INVALID_ARGUMENT",
        "domain": "inpaint.v1",
    }


def test_an_echoed_oversized_input_is_bounded_like_every_other_error() -> None:
    """json_format's errors quote the offending field: a 100,000-character field name is not sent back whole."""
    unknown = "x" * 100_000
    refused = bad_request("body", f'Message type "inpaint.v1.SubmitInpaintRequest" has no field named "{unknown}"')
    error = refused.body["error"]
    assert len(error["message"]) <= MESSAGE_LIMIT and error["message"].startswith("body: ")
    violation = error["details"][1]["field_violations"][0]
    assert violation["field"] == "body" and len(violation["description"]) <= MESSAGE_LIMIT


def test_the_grpc_ports_not_found_keeps_its_details_over_http() -> None:
    status = rich_status(NotFoundError("operations/never-submitted: no such operation"))
    answer = from_rpc_error(grpc_port_error(status))
    assert answer.status == 404
    assert answer.body["error"]["message"] == status.details
    assert [d["@type"] for d in answer.body["error"]["details"]] == ["type.googleapis.com/google.rpc.ErrorInfo"]
    assert answer.body["error"]["details"][0]["reason"] == "NOT_FOUND"


LIMIT = 4096


def submit_request(chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> Request:
    """A POST to /v1/operations:submit whose body arrives in `chunks`, as the ASGI server hands it over."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        message = messages.pop(0)
        sent.append(message["body"])
        return message

    scope = {"type": "http", "method": "POST", "path": "/v1/operations:submit", "headers": headers}
    request = Request(scope, receive)
    request.state.sent = sent
    return request


SUBMIT = next(route for route in ROUTES if route.method == "SubmitInpaint")


def message_of(request: Request) -> Message:
    return asyncio.run(Gateway(GatewayConfig(max_body_bytes=LIMIT)).message_of(SUBMIT, request))


def test_a_body_within_the_limit_is_read_whole() -> None:
    chunks = [b'{"request": ', b'{"request_id": "a"}', b"}"]
    message = message_of(submit_request(chunks, []))
    assert message == operations_pb2.SubmitInpaintRequest(request=inpaint_pb2.InpaintRequest(request_id="a"))


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request = submit_request([b"{}"], [(b"content-length", str(LIMIT + 1).encode())])
    with pytest.raises(BadRequestError, match=f"is {LIMIT + 1} bytes, over the limit of {LIMIT}") as raised:
        message_of(request)
    assert raised.value.field_path == "body" and request.state.sent == []


def test_a_chunked_body_over_the_limit_is_refused_once_it_passes_it() -> None:
    """Without a Content-Length (chunked transfer encoding) the limit still holds: reading stops at the chunk
    that crosses it instead of holding the whole body in memory."""
    chunks = [b"x" * 1024] * 64
    request = submit_request(chunks, [(b"transfer-encoding", b"chunked")])
    with pytest.raises(BadRequestError, match=f"over the limit of {LIMIT} bytes") as raised:
        message_of(request)
    assert raised.value.field_path == "body"
    assert len(request.state.sent) == LIMIT // 1024 + 1
