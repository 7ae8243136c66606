"""Read and write single-file ONNX models without holding their weights in memory.

`onnx.load` holds the file's bytes and the parsed message at once (twice the file), and every copy,
checker run and `onnx.save` of a loaded model holds it again: preparing inswapper_128 (554 MB) that
way peaked at 2.16 GiB, over the init container's limit. Here the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) is walked just deep enough (ModelProto.graph ->
GraphProto.initializer -> TensorProto.raw_data) to leave each large initializer's bytes in the file.
The loaded ModelProto is the whole model except those bytes, which it references the way ONNX
references external data (`data_location: EXTERNAL`, `location`/`offset`/`length`) into the source
file itself, so onnx's own checker accepts it. `save` writes a self-contained single file again,
streaming those bytes from their source, and returns the SHA-256 of what it wrote.

Field numbers come from onnx's own message descriptors, not from this file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnx
from google.protobuf.message import DecodeError
from onnx import helper

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MODEL_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_GRAPH_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_TENSOR_RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number

# Initializers smaller than this are parsed whole: leaving them in the file saves nothing worth the
# bookkeeping. inswapper_128's emap (1 MiB) stays in memory, which folding does not need either.
INLINE_BELOW_BYTES = 1 << 20
_COPY_CHUNK = 8 << 20


class ModelFileError(ValueError):
    """The file is not a well-formed ONNX protobuf (truncated, corrupt, or something else)."""


@dataclass(frozen=True)
class _Field:
    number: int
    wire_type: int
    start: int  # offset of the field's key
    value_start: int
    end: int


@dataclass(frozen=True)
class _Span:
    """Bytes of a file to copy into the output unchanged."""

    path: Path
    offset: int
    length: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _read_varint(f: BinaryIO, where: Path) -> int:
    result = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise ModelFileError(f"{where}: ends inside a field header")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ModelFileError(f"{where}: malformed varint at byte {f.tell()}")


def _fields(f: BinaryIO, start: int, end: int, where: Path) -> Iterator[_Field]:
    """The fields of the message stored in bytes [start, end), without reading length-delimited values."""
    offset = start
    while offset < end:
        f.seek(offset)
        key = _read_varint(f, where)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ModelFileError(f"{where}: field number 0 at byte {offset}")
        if wire_type == _VARINT:
            value_start = f.tell()
            _read_varint(f, where)
            value_end = f.tell()
        elif wire_type == _LEN:
            length = _read_varint(f, where)
            value_start = f.tell()
            value_end = value_start + length
        elif wire_type in (_I64, _I32):
            value_start = f.tell()
            value_end = value_start + (8 if wire_type == _I64 else 4)
        else:
            raise ModelFileError(f"{where}: unsupported wire type {wire_type} at byte {offset}")
        if value_end > end:
            raise ModelFileError(f"{where}: field {number} at byte {offset} runs past its message (truncated?)")
        yield _Field(number, wire_type, offset, value_start, value_end)
        offset = value_end


def _read(f: BinaryIO, start: int, end: int) -> bytes:
    f.seek(start)
    return f.read(end - start)


def _parse(message: onnx.ModelProto | onnx.GraphProto | onnx.TensorProto, data: bytes, where: Path) -> None:
    try:
        message.MergeFromString(data)
    except DecodeError as exc:
        raise ModelFileError(f"{where}: {type(message).__name__} does not parse ({exc})") from exc


def _mark_external(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _load_tensor(f: BinaryIO, field: _Field, path: Path, inline_below: int) -> onnx.TensorProto:
    tensor = onnx.TensorProto()
    if field.end - field.value_start < inline_below:
        _parse(tensor, _read(f, field.value_start, field.end), path)
        return tensor
    header = bytearray()
    raw: _Field | None = None
    for part in _fields(f, field.value_start, field.end, path):
        if part.number == _TENSOR_RAW_DATA and part.wire_type == _LEN:
            raw = part  # a repeated bytes field: the last one wins, as in protobuf
        else:
            header += _read(f, part.start, part.end)
    if raw is None:
        # Typed data (float_data, ...) or data already external: nothing to leave behind.
        _parse(tensor, _read(f, field.value_start, field.end), path)
        return tensor
    _parse(tensor, bytes(header), path)
    _mark_external(tensor, path.name, raw.value_start, raw.end - raw.value_start)
    return tensor


def load(path: Path, inline_below: int = INLINE_BELOW_BYTES) -> onnx.ModelProto:
    """The model in `path`, its large initializers left in the file (external data relative to path.parent)."""
    size = path.stat().st_size
    model = onnx.ModelProto()
    with path.open("rb") as f:
        rest = bytearray()
        graphs: list[onnx.GraphProto] = []
        for field in _fields(f, 0, size, path):
            if field.number != _MODEL_GRAPH or field.wire_type != _LEN:
                rest += _read(f, field.start, field.end)
                continue
            graph_rest = bytearray()
            initializers = []
            for part in _fields(f, field.value_start, field.end, path):
                if part.number == _GRAPH_INITIALIZER and part.wire_type == _LEN:
                    initializers.append(_load_tensor(f, part, path, inline_below))
                else:
                    graph_rest += _read(f, part.start, part.end)
            graph = onnx.GraphProto()
            _parse(graph, bytes(graph_rest), path)
            graph.initializer.extend(initializers)
            graphs.append(graph)
    _parse(model, bytes(rest), path)
    for graph in graphs:  # a message field given twice is merged, as protobuf does
        model.graph.MergeFrom(graph)
    return model


def check(model: onnx.ModelProto) -> None:
    """onnx's checker on the model, with its external initializers standing in as graph inputs.

    The checker resolves external data against the working directory and refuses links, so it cannot
    follow a reference into the source file; instead each external initializer's length is checked
    here against its shape, and the checker sees it as a graph input of the same type and shape (as
    IR 3 files list their initializers anyway), which is all the graph's structure needs.
    """
    view = onnx.ModelProto()
    view.CopyFrom(model)  # small: the weights that matter are not in it
    inputs = {value.name for value in view.graph.input}
    inline = []
    for tensor in view.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            inline.append(tensor)
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        expected = math.prod(tensor.dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        if "length" in info and int(info["length"]) != expected:
            raise ModelFileError(
                f"initializer {tensor.name!r}: {info['length']} bytes of data for shape {list(tensor.dims)} "
                f"({expected} bytes expected)"
            )
        if tensor.name not in inputs:
            view.graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    del view.graph.initializer[:]
    view.graph.initializer.extend(inline)
    onnx.checker.check_model(view)


def _external_span(tensor: onnx.TensorProto, base_dir: Path) -> _Span | None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    info = {entry.key: entry.value for entry in tensor.external_data}
    if "location" not in info:
        raise ModelFileError(f"initializer {tensor.name!r}: external data without a location")
    path = base_dir / info["location"]
    offset = int(info.get("offset", "0"))
    length = int(info["length"]) if "length" in info else path.stat().st_size - offset
    return _Span(path, offset, length)


def save(model: onnx.ModelProto, target: Path, base_dir: Path) -> str:
    """Write `model` as one self-contained file, streaming external initializers; return its SHA-256.

    External data locations are resolved against `base_dir` (the source's folder, for a model from
    `load`). The model itself is not changed.
    """
    head = onnx.ModelProto()
    head.CopyFrom(model)  # small: the weights that matter are not in it
    head.ClearField("graph")
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    graph.ClearField("initializer")
    graph_bytes = graph.SerializeToString()
    pieces: list[bytes | _Span] = []
    for tensor in model.graph.initializer:
        span = _external_span(tensor, base_dir)
        if span is None:
            body = tensor.SerializeToString()
            pieces += [_key(_GRAPH_INITIALIZER, _LEN) + _varint(len(body)), body]
            continue
        inline = onnx.TensorProto()
        inline.CopyFrom(tensor)
        inline.ClearField("external_data")
        inline.ClearField("data_location")
        header = inline.SerializeToString() + _key(_TENSOR_RAW_DATA, _LEN) + _varint(span.length)
        pieces += [_key(_GRAPH_INITIALIZER, _LEN) + _varint(len(header) + span.length) + header, span]
    graph_length = len(graph_bytes) + sum(p.length if isinstance(p, _Span) else len(p) for p in pieces)
    digest = hashlib.sha256()
    sources: dict[Path, BinaryIO] = {}
    try:
        with target.open("wb") as out:

            def write(data: bytes) -> None:
                out.write(data)
                digest.update(data)

            write(head.SerializeToString())
            write(_key(_MODEL_GRAPH, _LEN) + _varint(graph_length))
            write(graph_bytes)
            for piece in pieces:
                if not isinstance(piece, _Span):
                    write(piece)
                    continue
                source = sources.get(piece.path) or sources.setdefault(piece.path, piece.path.open("rb"))
                source.seek(piece.offset)
                left = piece.length
                while left:
                    chunk = source.read(min(left, _COPY_CHUNK))
                    if not chunk:
                        raise ModelFileError(f"{piece.path}: ends before byte {piece.offset + piece.length}")
                    write(chunk)
                    left -= len(chunk)
    finally:
        for source in sources.values():
            source.close()
    return digest.hexdigest()
