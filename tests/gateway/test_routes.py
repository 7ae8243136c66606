"""The HTTP mapping cannot drift from the protos: every RPC has exactly one route, the route's types are the
RPC's, and the committed OpenAPI document is the one the code generates."""

from __future__ import annotations

import json
import re
from pathlib import Path

from google.protobuf import duration_pb2, json_format

from gateway.openapi import openapi_document
from gateway.routes import ROUTES, SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_rpc_of_the_public_services_has_exactly_one_route() -> None:
    rpcs = sorted((service.name, method.name) for service in SERVICES for method in service.methods)
    routed = sorted((route.service, route.method) for route in ROUTES)
    assert routed == rpcs
    assert {s.full_name for s in SERVICES} == {"inpaint.v1.InpaintService", "inpaint.v1.OperationsService"}


def test_routes_take_their_types_and_streaming_from_the_descriptors() -> None:
    for route in ROUTES:
        method = route.descriptor
        assert route.request_class.DESCRIPTOR.full_name == method.input_type.full_name
        assert route.response_class.DESCRIPTOR.full_name == method.output_type.full_name
        assert route.full_method == f"/{method.containing_service.full_name}/{method.name}"
        # A route without a body reads its fields from the path and the query: only scalar fields can come
        # from there, so its request must have no message field.
        if not route.body:
            assert all(f.message_type is None for f in method.input_type.fields), route.method
    assert {r.method for r in ROUTES if r.streams} == {"StreamInpaint", "WatchOperation"}


def test_method_and_path_pairs_are_unique() -> None:
    pairs = [(route.http_method, route.path) for route in ROUTES]
    assert len(pairs) == len(set(pairs))


def test_the_committed_openapi_document_is_current() -> None:
    committed = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    assert committed == openapi_document(), "run: python -m gateway.openapi > docs/openapi.json"


def test_openapi_schemas_have_every_field_of_every_message_they_describe() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    for route in ROUTES:
        for message in (route.descriptor.input_type, route.descriptor.output_type):
            if route.body or message is route.descriptor.output_type:
                assert set(schemas[message.full_name]["properties"]) == {f.name for f in message.fields}
        operation = document["paths"][route.path][route.http_method.lower()]
        assert operation["operationId"] == f"{route.service}.{route.method}"


def test_well_known_types_are_described_in_their_json_form() -> None:
    """A Duration travels as "1.500s" in proto3 JSON, not as {seconds, nanos}: the schema says so."""
    schema = openapi_document()["components"]["schemas"]["google.protobuf.Duration"]
    value = json_format.MessageToJson(duration_pb2.Duration(seconds=1, nanos=500_000_000))
    assert schema["type"] == "string" and re.fullmatch(schema["pattern"], json.loads(value))
