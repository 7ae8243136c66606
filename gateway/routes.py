"""The HTTP mapping of the public gRPC API: one route per RPC, its types read from the protos' descriptors.

Each route names only its RPC (service and method), its HTTP method and path, and where the request's
fields come from (the JSON body, the path, the query). The request and response message classes and
whether the call streams are looked up in the generated descriptors, so a field added to a message reaches
HTTP clients with no change here, and a test fails when an RPC has no route (the two cannot drift).

    POST   /v1/inpaint                        InpaintService.Inpaint              (body: InpaintRequest)
    POST   /v1/inpaint:stream                 InpaintService.StreamInpaint        (SSE)
    POST   /v1/operations:submit              OperationsService.SubmitInpaint     (body: SubmitInpaintRequest)
    GET    /v1/operations                     OperationsService.ListOperations    (query: filter, page_size...)
    GET    /v1/operations/{id}                OperationsService.GetOperation
    GET    /v1/operations/{id}:watch          OperationsService.WatchOperation    (SSE)
    POST   /v1/operations/{id}:cancel         OperationsService.CancelOperation
    DELETE /v1/operations/{id}                OperationsService.DeleteOperation
    GET    /v1/operations/{id}/candidates/{candidate}
                                              OperationsService.GetCandidateImage (?alt=media: the PNG)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from inpaint.v1 import inpaint_pb2, operations_pb2

# The services the gateway exposes; every method of each has a route.
SERVICES: tuple[descriptor.ServiceDescriptor, ...] = (
    inpaint_pb2.DESCRIPTOR.services_by_name["InpaintService"],
    operations_pb2.DESCRIPTOR.services_by_name["OperationsService"],
)
# Path parameters' pattern: an operation's request id (letters, digits, '-', '_', '.') or a candidate id.
ID_PATTERN = r"[A-Za-z0-9._-]+"


@dataclass(frozen=True)
class Route:
    """One RPC over HTTP.

    Attributes:
        service: the service's short name (`OperationsService`).
        method: the RPC's name (`GetOperation`).
        http_method: GET, POST or DELETE.
        path: the URL path; `{id}` fills the request's `name` as `operations/{id}`, `{candidate}` its
            `candidate_id`.
        body: True when the request message is the JSON body; otherwise its fields come from the query string.
        summary: one line for the OpenAPI document.
    """

    service: str
    method: str
    http_method: Literal["GET", "POST", "DELETE"]
    path: str
    body: bool
    summary: str

    @property
    def descriptor(self) -> descriptor.MethodDescriptor:
        method: descriptor.MethodDescriptor = service_by_name(self.service).methods_by_name[self.method]
        return method

    @property
    def full_method(self) -> str:
        """The gRPC method path, `/inpaint.v1.OperationsService/GetOperation`."""
        return f"/{self.descriptor.containing_service.full_name}/{self.method}"

    @property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.descriptor.input_type)

    @property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.descriptor.output_type)

    @property
    def streams(self) -> bool:
        """Server streaming: answered as server-sent events, one per message."""
        return bool(self.descriptor.server_streaming)

    @property
    def starlette_path(self) -> str:
        return self.path.replace("{id}", "{id:request_id}").replace("{candidate}", "{candidate:request_id}")


def service_by_name(name: str) -> descriptor.ServiceDescriptor:
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(f"no service {name!r} in {[s.name for s in SERVICES]}")


ROUTES: tuple[Route, ...] = (
    Route("InpaintService", "Inpaint", "POST", "/v1/inpaint", True, "Run one task and return its result"),
    Route(
        "InpaintService", "StreamInpaint", "POST", "/v1/inpaint:stream", True,
        "Run one task: progress events, then the result (server-sent events)",
    ),
    Route("OperationsService", "SubmitInpaint", "POST", "/v1/operations:submit", True, "Queue a task"),
    Route("OperationsService", "ListOperations", "GET", "/v1/operations", False, "Operations, newest first"),
    Route("OperationsService", "GetOperation", "GET", "/v1/operations/{id}", False, "The operation now"),
    Route(
        "OperationsService", "WatchOperation", "GET", "/v1/operations/{id}:watch", False,
        "Progress so far, what follows, then the finished operation (server-sent events)",
    ),
    Route("OperationsService", "CancelOperation", "POST", "/v1/operations/{id}:cancel", False, "Stop the task"),
    Route("OperationsService", "DeleteOperation", "DELETE", "/v1/operations/{id}", False, "Forget a finished one"),
    Route(
        "OperationsService", "GetCandidateImage", "GET", "/v1/operations/{id}/candidates/{candidate}", False,
        "One candidate's image of a finished operation (`?alt=media`: the PNG itself)",
    ),
)  # fmt: skip
