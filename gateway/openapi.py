"""The gateway's OpenAPI 3.1 document, generated from the route table and the protos' descriptors.

    python -m gateway.openapi > docs/openapi.json     (a test compares the committed file)

Every message a route sends or receives becomes a schema in proto3 JSON form (the protos' field names,
64-bit integers as strings, bytes as base64, enums by name), so the document says what the gateway
actually reads and writes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from google.protobuf import descriptor
from google.protobuf.descriptor import FieldDescriptor as F

from gateway.routes import ID_PATTERN, ROUTES

SCALARS: dict[int, dict[str, str]] = {
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_INT64: {"type": "string", "format": "int64"},
    F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    F.TYPE_SINT64: {"type": "string", "format": "int64"},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    F.TYPE_FIXED32: {"type": "integer", "format": "uint32"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Google's JSON error format: the HTTP status, the gRPC code's name, and the google.rpc details "
    "the gRPC port sends (ErrorInfo, BadRequest naming the field, RetryInfo).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "integer"},
                "status": {"type": "string", "examples": ["INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED"]},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {"@type": {"type": "string"}}}},
            },
        }
    },
}


# Well-known types have their own JSON forms (the protobuf JSON mapping), not their fields'.
WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$", "examples": ["1.5s"]},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _ref(message: descriptor.Descriptor) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{message.full_name}"}


def _field_schema(field: descriptor.FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == F.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": _field_schema(value, schemas)}
        _add_message(field.message_type, schemas)
        item: dict[str, Any] = _ref(field.message_type)
    elif field.type == F.TYPE_ENUM:
        item = {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    else:
        item = dict(SCALARS[field.type])
    return {"type": "array", "items": item} if field.is_repeated else item


def _add_message(message: descriptor.Descriptor, schemas: dict[str, Any]) -> None:
    if message.full_name in schemas:
        return
    if message.full_name in WELL_KNOWN:
        schemas[message.full_name] = dict(WELL_KNOWN[message.full_name])
        return
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    schemas[message.full_name] = schema  # before the fields: messages may refer to themselves
    for field in message.fields:
        schema["properties"][field.name] = _field_schema(field, schemas)
    oneofs = [o for o in message.oneofs if not o.name.startswith("_")]
    if oneofs:
        schema["description"] = "; ".join(
            f"at most one of {', '.join(f.name for f in o.fields)} (oneof {o.name})" for o in oneofs
        )


def _parameters(route_path: str, query_message: descriptor.Descriptor | None) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{id}" in route_path:
        parameters.append(
            {"name": "id", "in": "path", "required": True, "description": "the request id (`operations/{id}`)",
             "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}}
        )  # fmt: skip
    if "{candidate}" in route_path:
        parameters.append({"name": "candidate", "in": "path", "required": True, "schema": {"type": "string"}})
    if query_message is not None:
        for field in query_message.fields:
            if field.name not in ("name", "candidate_id"):
                parameters.append({"name": field.name, "in": "query", "schema": dict(SCALARS.get(field.type, {}))})
    return parameters


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for route in ROUTES:
        method = route.descriptor
        _add_message(method.output_type, schemas)
        operation: dict[str, Any] = {
            "operationId": f"{route.service}.{route.method}",
            "summary": route.summary,
            "tags": [route.service],
            "parameters": _parameters(route.path, None if route.body else method.input_type),
        }
        if route.body:
            _add_message(method.input_type, schemas)
            operation["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": _ref(method.input_type)}}
            }  # fmt: skip
        if route.streams:
            content: dict[str, Any] = {
                "text/event-stream": {
                    "schema": _ref(method.output_type),
                    "description": "server-sent events: `event:` the message's oneof, `data:` the message as JSON; "
                    "a failure after the stream started is one `event: error` with an Error",
                }
            }
        else:
            content = {"application/json": {"schema": _ref(method.output_type)}}
            if route.method == "GetCandidateImage":
                content["image/png"] = {"schema": {"type": "string", "format": "binary"}}
                operation["parameters"].append(
                    {"name": "alt", "in": "query", "schema": {"type": "string", "enum": ["json", "media"]},
                     "description": "`media`: the image's bytes instead of JSON"}
                )  # fmt: skip
        operation["responses"] = {
            "200": {"description": f"{method.output_type.full_name}", "content": content},
            "default": {"description": "an error", "content": {"application/json": {"schema": ERROR_REF}}},
        }  # fmt: skip
        paths.setdefault(route.path, {})[route.http_method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Face inpainting service: HTTP/JSON gateway",
            "version": "v1",
            "description": "The gRPC API of inpaint.v1 (InpaintService, OperationsService) over HTTP/JSON. "
            "Messages are proto3 JSON with the protos' field names. Send the API key as "
            "`Authorization: Bearer <key>` (or `X-API-Key`) when the service requires one.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}, {}],
    }


def main() -> int:
    sys.stdout.write(json.dumps(openapi_document(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
