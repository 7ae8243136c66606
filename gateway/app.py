"""The HTTP/JSON gateway: each route of `routes.ROUTES` forwarded to the orchestrator's gRPC port.

    app = create_app(GatewayConfig(orchestrator="127.0.0.1:50050"))    # an ASGI app (uvicorn runs it)

Messages cross as proto3 JSON (`google.protobuf.json_format`, the protos' field names, bytes as base64),
built from the descriptors of the generated messages, so the JSON is the protos'. Streaming RPCs are
server-sent events: `event:` is the message's oneof (`queued`, `progress`, `done`; `progress`, `result`),
`data:` the whole message; an error after the stream started is one `event: error` with the error body.
Failed calls answer with the HTTP status of their gRPC code and the google.rpc details (`errors.py`).
The caller's `authorization` / `x-api-key` and `x-request-id` headers go along as gRPC metadata.

Also served: `/openapi.json` (the document in docs/openapi.json), `/healthz`, and the console at `/console/`
(`gateway/static/`) with the bundled sample photos at `/console/samples/{init,mask,character}.png`.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway import errors
from gateway.config import GatewayConfig
from gateway.openapi import openapi_document
from gateway.routes import ID_PATTERN, ROUTES
from gateway.routes import Route as ApiRoute
from orchestrator.client import CHANNEL_OPTIONS

STATIC = Path(__file__).resolve().parent / "static"
FORWARDED_HEADERS = ("authorization", "x-api-key", "x-request-id")
SAMPLES = ("init", "mask", "character")


class _RequestIdConvertor(Convertor[str]):
    regex = ID_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("request_id", _RequestIdConvertor())


def to_json(message: Message) -> dict[str, Any]:
    """A message as proto3 JSON with the protos' field names; unset scalars shown with their defaults."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class BadRequestError(Exception):
    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"{field_path}: {problem}")
        self.field_path = field_path
        self.problem = problem


class Gateway:
    """The channel to the orchestrator (opened on the server's event loop) and the route handlers."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.channel: grpc.aio.Channel | None = None

    async def open(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.config.orchestrator, options=CHANNEL_OPTIONS)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    def _channel(self) -> grpc.aio.Channel:
        assert self.channel is not None, "the gateway's channel opens at start-up"
        return self.channel

    def timeout_for(self, route: ApiRoute) -> float:
        # Inpaint, StreamInpaint and WatchOperation last as long as a task; the rest answer at once.
        return self.config.task_timeout_s if route.streams or route.method == "Inpaint" else self.config.call_timeout_s

    async def message_of(self, route: ApiRoute, request: Request) -> Message:
        """The RPC's request message from the body or the query string, then the path."""
        message = route.request_class()
        if route.body:
            raw = await self.body_of(request)
            try:
                data = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as error:
                raise BadRequestError("body", f"is not JSON: {error}") from None
            if not isinstance(data, dict):
                raise BadRequestError("body", f"must be a JSON object, got {type(data).__name__}")
            try:
                json_format.ParseDict(data, message)
            except json_format.ParseError as error:
                raise BadRequestError("body", str(error)) from None
        else:
            query = {key: value for key, value in request.query_params.items() if key != "alt"}
            try:
                json_format.ParseDict(query, message)
            except json_format.ParseError as error:
                raise BadRequestError("query", str(error)) from None
        if "id" in request.path_params:
            message.name = f"operations/{request.path_params['id']}"  # type: ignore[attr-defined]
        if "candidate" in request.path_params:
            message.candidate_id = request.path_params["candidate"]  # type: ignore[attr-defined]
        return message

    async def body_of(self, request: Request) -> bytes:
        """The request's body, refused once it is over `max_body_bytes`: at once when its declared length is,
        otherwise as soon as the bytes received are (a chunked body declares none)."""
        limit = self.config.max_body_bytes
        size = int(request.headers.get("content-length") or 0)
        if size > limit:
            raise BadRequestError("body", f"is {size} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise BadRequestError("body", f"is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def handler(self, route: ApiRoute) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            try:
                message = await self.message_of(route, request)
            except BadRequestError as error:
                return error_response(errors.bad_request(error.field_path, error.problem))
            metadata = tuple((name, request.headers[name]) for name in FORWARDED_HEADERS if request.headers.get(name))
            if route.streams:
                return await self.stream(route, message, metadata)
            call = self._channel().unary_unary(
                route.full_method,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
            try:
                response = await call(message, timeout=self.timeout_for(route), metadata=metadata)
            except grpc.aio.AioRpcError as error:
                return error_response(errors.from_rpc_error(error))
            if request.query_params.get("alt") == "media" and response.DESCRIPTOR.fields_by_name.get("image"):
                image: Any = getattr(response, "image")  # noqa: B009 (a CandidateImage, known by its descriptor)
                return Response(image.data, media_type=image.mime_type or "application/octet-stream")
            return JSONResponse(to_json(response))

        return handle

    async def stream(self, route: ApiRoute, message: Message, metadata: tuple[tuple[str, str], ...]) -> Response:
        call = self._channel().unary_stream(
            route.full_method,
            request_serializer=route.request_class.SerializeToString,
            response_deserializer=route.response_class.FromString,
        )(message, timeout=self.timeout_for(route), metadata=metadata)
        # The first message (or the error) decides the HTTP status: NOT_FOUND, UNAUTHENTICATED and a refused
        # request are real HTTP errors, not a 200 stream that fails.
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as error:
            return error_response(errors.from_rpc_error(error))

        async def events() -> AsyncIterator[str]:
            try:
                current = first
                while current is not grpc.aio.EOF:
                    assert isinstance(current, Message)
                    name = current.WhichOneof("event") or "message"
                    yield f"event: {name}\ndata: {json.dumps(to_json(current))}\n\n"
                    current = await call.read()
            except grpc.aio.AioRpcError as error:
                yield f"event: error\ndata: {json.dumps(errors.from_rpc_error(error).body)}\n\n"
            finally:
                # A client that goes away ends the gRPC call too (a watcher; the task itself goes on).
                call.cancel()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def healthz(self, request: Request) -> Response:
        """200 when the orchestrator behind answers SERVING (what a readiness probe wants)."""
        check = self._channel().unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            answer = await check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
        except grpc.aio.AioRpcError as error:
            return JSONResponse({"status": "UNAVAILABLE", "detail": error.details() or ""}, status_code=503)
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return JSONResponse({"status": status}, status_code=200 if serving else 503)


def error_response(error: errors.HttpError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


@functools.cache
def sample_png(name: str) -> bytes:
    """The bundled photo pair (the one `make demo` runs), for the console's one-click submit."""
    from orchestrator import sample_photos  # numpy and OpenCV, only when the console asks

    images = {
        "init": sample_photos.astronaut,
        "mask": sample_photos.astronaut_face_mask,
        "character": sample_photos.tom_hanks,
    }
    return sample_photos.encode_png(images[name]())


async def sample(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in SAMPLES:
        return error_response(errors.http_error(grpc.StatusCode.NOT_FOUND, f"no sample {name!r}; one of {SAMPLES}"))
    return Response(sample_png(name), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def create_app(config: GatewayConfig) -> Starlette:
    gateway = Gateway(config)
    document = openapi_document()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def home(request: Request) -> Response:
        return RedirectResponse("/console/" if config.console else "/openapi.json")

    routes: list[BaseRoute] = [
        Route(api.starlette_path, gateway.handler(api), methods=[api.http_method], name=api.method) for api in ROUTES
    ]
    routes += [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/", home, methods=["GET"]),
    ]
    if config.console:
        routes += [
            Route("/console/samples/{name}.png", sample, methods=["GET"]),
            Mount("/console", StaticFiles(directory=STATIC, html=True), name="console"),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app
