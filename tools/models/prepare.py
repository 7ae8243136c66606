"""Lay out the Triton model repository from the InsightFace files.

    python -m tools.models.prepare --weights models/real --repository triton_models

For each of det_10g, 2d106det, w600k_r50 and inswapper_128 it checks the file's SHA-256 (real
files) or its stand-in mark, checks its inputs and outputs against the real contract, writes it as
`<repository>/<model>/1/model.onnx`, installs the CPU python-backend runner beside it, and records
what it did in `<repository>/provenance.json`.

inswapper_128 is rewritten on the way: the real graph takes `normalize(normalize(e) @ emap)` as
its `source`, where `emap` is the file's last initializer. The prepared graph computes that
projection itself, so Triton clients send the plain ArcFace embedding `e` and need no weight file.
The real graph also fixes its batch to 1; the prepared one runs it once per item of a batch (a Scan
over the leading axis), so that pixel boost's tiles go to Triton in one request. det_10g gets the same
Scan (its file takes one image and gives that image's anchors with no batch axis; the prepared one
stacks them per image), so that Triton's dynamic batcher can group concurrent detections, and so do the
face parser and the occluder. The face parser serves each pixel's class: its logits' argmax is folded
in (1 MB a crop on the wire instead of 20 MB).
Exports that normalise their own input (the MXNet 2d106det) get the contract's normalisation folded
in front, so every client sends the same thing whichever export the file is.

Memory: the largest file (inswapper_128, 554 MB) runs in an init container with a tight limit, so
nothing here holds a model's weights: `tools.models.onnx_stream` leaves them in the source file and
streams them into the output, and checksums are streamed too. Any failure is a PreparationError
naming the model and the file; the command prints it on one line and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from servers.triton.contracts import (
    ALL_MODELS,
    EMAP_SHAPE,
    FACE_MASK_MODELS,
    INSWAPPER_128,
    LANDMARK_2D106,
    META_ARGMAX_FOLDED,
    META_BATCH_SCAN,
    META_EMAP_FOLDED,
    META_INPUT_FOLDED,
    META_PIXEL_INPUT,
    MODELS_BY_NAME,
    ModelContract,
    TensorSpec,
)
from servers.triton.provenance import PreparedModel, is_standin, write_provenance
from tools.models import onnx_stream
from tools.models.manifest import FILE_CRC32, FILE_SHA256

CPU_RUNNER = Path(__file__).resolve().parents[2] / "servers" / "triton" / "onnx_cpu_model.py"


class PreparationError(Exception):
    """A model file is missing, corrupt, does not have the real contract, or could not be prepared."""


def _one_line(exc: BaseException) -> str:
    # onnx's checker and protobuf write multi-line messages; the CLI reports one line per failure.
    return " ".join(str(exc).split()) or type(exc).__name__


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def crc32_of(path: Path) -> str:
    """CRC32 as FaceFusion's .hash files write it (8 lowercase hex digits)."""
    value = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            value = zlib.crc32(chunk, value)
    return f"{value:08x}"


def verify_checksum(path: Path, relative: str, sha256: str) -> tuple[bool, str]:
    """Whether the file is the published one, and what was expected: its SHA-256 where one is published,
    else its size and CRC32 (FaceFusion's files)."""
    if relative in FILE_SHA256:
        return sha256 == FILE_SHA256[relative], f"SHA-256 {FILE_SHA256[relative]}"
    size, crc32 = FILE_CRC32[relative]
    return path.stat().st_size == size and crc32_of(path) == crc32, f"{size} bytes with CRC32 {crc32}"


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _dims(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    # A named or absent dimension is dynamic (-1), as in Triton's configuration.
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)


def _check_tensors(kind: str, found: list[onnx.ValueInfoProto], expected: tuple[TensorSpec, ...], where: str) -> None:
    names = [v.name for v in found]
    if names != [s.name for s in expected]:
        raise PreparationError(f"{where}: {kind} are {names}, expected {[s.name for s in expected]}")
    for value, spec in zip(found, expected):
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise PreparationError(f"{where}: {kind[:-1]} {spec.name!r} is not float32")
        dims = _dims(value)
        if len(dims) != len(spec.shape):
            raise PreparationError(
                f"{where}: {kind[:-1]} {spec.name!r} has rank {len(dims)}, expected {len(spec.shape)}"
            )
        for got, want in zip(dims, spec.shape):
            if got != -1 and want != -1 and got != want:
                raise PreparationError(f"{where}: {kind[:-1]} {spec.name!r} has shape {dims}, expected {spec.shape}")


def check_contract(model: onnx.ModelProto, contract: ModelContract, where: str) -> None:
    """Raise PreparationError unless the graph's inputs and outputs are the real contract's.

    Files of IR version 3 (old exports) list every initializer among the graph's inputs too; those
    are not inputs a client feeds.
    """
    initializer_names = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializer_names]

    _check_tensors("inputs", inputs, contract.source_inputs(), where)
    _check_tensors("outputs", list(model.graph.output), contract.source_outputs(), where)


def rename_single_output(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """Give a one-output graph the contract's output name; returns `model`, changed in place.

    FaceFusion reads its mask models' first output whatever it is called, and the real files' names are
    not published; the served name is the contract's.
    """
    wanted = contract.source_outputs()[0].name
    if len(model.graph.output) != 1 or model.graph.output[0].name == wanted:
        return model
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.input[:] = [wanted if n == old else n for n in node.input]
        node.output[:] = [wanted if n == old else n for n in node.output]
    model.graph.output[0].name = wanted
    helper.set_model_props(model, {**_metadata(model), "inpaint.output_renamed_from": old})
    return model


def _prepend_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    combined = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(combined)


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _constant(name: str, value: float) -> onnx.NodeProto:
    # A Constant node rather than an initializer: files of IR version < 4 must list every initializer
    # among the graph's inputs, which would make the constant an input clients could override.
    tensor = numpy_helper.from_array(np.array(value, np.float32), f"{name}_value")
    return helper.make_node("Constant", [], [name], value=tensor, name=name)


def fold_emap(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make inswapper compute `source = normalize(normalize(e) @ emap)` itself; returns `model`, changed in place.

    In place because a copy of inswapper is another 554 MB; the emap initializer is used where it is.
    """
    where = f"{INSWAPPER_128.triton_name}"
    if _metadata(model).get(META_EMAP_FOLDED) == "true":
        raise PreparationError(f"{where}: the emap projection is already folded into this graph")
    if not model.graph.initializer:
        raise PreparationError(f"{where}: the graph has no initializers, so no emap to fold")
    emap = model.graph.initializer[-1]
    if tuple(emap.dims) != EMAP_SHAPE:
        raise PreparationError(
            f"{where}: last initializer {emap.name!r} has shape {list(emap.dims)}, expected emap {list(EMAP_SHAPE)}"
        )
    source = INSWAPPER_128.inputs[1].name
    projected = f"{source}_projected"
    _rename_input(model.graph, source, projected)
    _prepend_nodes(
        model.graph,
        [
            helper.make_node("LpNormalization", [source], ["source_normed"], axis=1, p=2, name="fold_normalize_in"),
            helper.make_node("MatMul", ["source_normed", emap.name], ["source_mapped"], name="fold_emap"),
            helper.make_node("LpNormalization", ["source_mapped"], [projected], axis=1, p=2, name="fold_normalize_out"),
        ],
    )
    helper.set_model_props(model, {**_metadata(model), META_EMAP_FOLDED: "true"})
    return model


def fold_argmax(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """Serve each pixel's class instead of the class logits; returns `model`, changed in place.

    The face parser's file gives 19 logits per pixel, [1, 19, H, W] float32 (20 MB at 512x512), of which
    the client only ever wants the argmax (the first maximum on ties: ONNX's select_last_index=0, as numpy's;
    onnxruntime's CPU kernel keeps to it, exact ties between float logits are rare). The prepared graph ends in
    ArgMax over the class axis, cast to float32: [1, H, W], 1 MB, and no argmax left to the client.
    """
    where = contract.triton_name
    (served,) = contract.outputs
    (logits,) = model.graph.output
    if _metadata(model).get(META_ARGMAX_FOLDED) == "true" or logits.name != contract.source_outputs()[0].name:
        raise PreparationError(f"{where}: the graph's output is {logits.name!r}, not the file's class logits")
    dims = _dims(logits)
    index = f"{served.name}_index"
    model.graph.node.extend(
        [
            helper.make_node("ArgMax", [logits.name], [index], axis=1, keepdims=0, name="fold_argmax"),
            helper.make_node("Cast", [index], [served.name], to=onnx.TensorProto.FLOAT, name="fold_cast"),
        ]
    )
    del model.graph.output[:]
    shape = [None if d == -1 else d for d in (dims[0], *dims[2:])]
    model.graph.output.append(helper.make_tensor_value_info(served.name, onnx.TensorProto.FLOAT, shape))
    helper.set_model_props(model, {**_metadata(model), META_ARGMAX_FOLDED: "true"})
    return model


def _axes_zero(name: str, opset: int) -> tuple[list[onnx.NodeProto], dict[str, Any], list[str]]:
    """Unsqueeze/Squeeze on axis 0: opset 13 takes the axes as an input, earlier opsets as an attribute."""
    if opset < 13:
        return [], {"axes": [0]}, []
    constant = helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.array([0], np.int64), f"{name}_value"), name=name
    )
    return [constant], {}, [name]


def _one_item(value: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """`value` as one item of its batch, as a Scan body sees it: renamed, its leading dimension dropped."""
    item = onnx.ValueInfoProto()
    item.CopyFrom(value)
    item.name = f"{value.name}_item"
    del item.type.tensor_type.shape.dim[0]
    return item


def batch_by_scan(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """Make a graph that takes one item take a batch of them; returns `model`, changed in place.

    The graph's nodes become the body of a Scan over the leading axis of every input: each item is
    unsqueezed back to a batch of one, run through the unchanged nodes, and the outputs squeezed (or,
    where the file's outputs have no batch axis, as SCRFD's, taken whole) and stacked. The real inswapper
    and SCRFD fix their batch to 1 (declaring the dimension free would not do: a
    graph exported that way may reshape with that 1 inside). The weights stay initializers of the
    outer graph, which the body reads from its enclosing scope, so they are not copied.
    """
    where = contract.triton_name
    if _metadata(model).get(META_BATCH_SCAN) == "true":
        raise PreparationError(f"{where}: the graph already runs over a batch")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 9:
        raise PreparationError(f"{where}: opset {opset} has no batch-free Scan (needs opset 9 or later)")
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializer_names]
    # Names are single-assignment across scopes: inside the body the graph's own tensors get new names.
    inner = {v.name: f"{v.name}_one" for v in [*inputs, *graph.output]}
    for node in graph.node:
        node.input[:] = [inner.get(n, n) for n in node.input]
        node.output[:] = [inner.get(n, n) for n in node.output]
    nodes, attrs, axes_input = _axes_zero("batch_axis", opset)
    body_inputs, body_outputs = [], []
    for value in inputs:
        item = _one_item(value)
        body_inputs.append(item)
        nodes.append(
            helper.make_node(
                "Unsqueeze", [item.name, *axes_input], [inner[value.name]], name=f"{value.name}_one", **attrs
            )
        )
    nodes.extend(graph.node)
    for value in graph.output:
        if contract.source_outputs_unbatched:
            # The file's output has no batch axis: each item's whole output is one slice of the stack.
            item = onnx.ValueInfoProto()
            item.CopyFrom(value)
            item.name = f"{value.name}_item"
            # Its rows (SCRFD's anchors) depend on the image's size: an export traced at 640x640 may have
            # written that size's count, which the graph's other sizes would contradict.
            item.type.tensor_type.shape.dim[0].Clear()
            nodes.append(helper.make_node("Identity", [inner[value.name]], [item.name], name=f"{value.name}_of_item"))
        else:
            item = _one_item(value)
            nodes.append(
                helper.make_node(
                    "Squeeze", [inner[value.name], *axes_input], [item.name], name=f"{value.name}_unbatch", **attrs
                )
            )
        body_outputs.append(item)
    body = helper.make_graph(nodes, f"{where}_per_item", body_inputs, body_outputs, value_info=list(graph.value_info))
    scan = helper.make_node(
        "Scan",
        [v.name for v in inputs],
        [v.name for v in graph.output],
        name=f"{where}_over_batch",
        body=body,
        num_scan_inputs=len(inputs),
    )
    del graph.node[:]
    graph.node.append(scan)
    del graph.value_info[:]
    for value in inputs:
        first = value.type.tensor_type.shape.dim[0]
        first.Clear()
        first.dim_param = "N"
    for value in graph.output:
        dims = value.type.tensor_type.shape.dim
        if contract.source_outputs_unbatched:
            dims.add()
            for i in range(len(dims) - 1, 0, -1):
                dims[i].CopyFrom(dims[i - 1])
            dims[1].Clear()  # the rows, as in the body
        dims[0].Clear()
        dims[0].dim_param = "N"
    helper.set_model_props(model, {**_metadata(model), META_BATCH_SCAN: "true"})
    return model


def take_pixels(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """Serve a float32-input graph as one that takes uint8 pixels; returns `model`, changed in place.

    The graph computes (pixel - mean) * (1 / std) itself, as insightface's class does before it calls the file
    (SCRFD: OpenCV's blobFromImage with scale 1/128 and mean 127.5, exact in float32), so the file's graph
    gets exactly the input it got before, and a client sends a quarter of the bytes (4.9 MB a 640x640
    detection as float32).
    """
    where = contract.triton_name
    if contract.pixel_input is None or _metadata(model).get(META_PIXEL_INPUT) == "true":
        raise PreparationError(f"{where}: the contract serves no pixel input, or the graph already takes one")
    mean, std = contract.pixel_input
    (spec,) = contract.inputs
    (value,) = [v for v in model.graph.input if v.name == spec.name]
    normalised = f"{spec.name}_normalised"
    _rename_input(model.graph, spec.name, normalised)
    _prepend_nodes(
        model.graph,
        [
            helper.make_node("Cast", [spec.name], ["pixels_float"], to=onnx.TensorProto.FLOAT, name="pixels_cast"),
            _constant("pixels_mean", mean),
            _constant("pixels_scale", 1.0 / std),
            helper.make_node("Sub", ["pixels_float", "pixels_mean"], ["pixels_centred"], name="pixels_centre"),
            helper.make_node("Mul", ["pixels_centred", "pixels_scale"], [normalised], name="pixels_scale_by"),
        ],
    )
    value.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    helper.set_model_props(model, {**_metadata(model), META_PIXEL_INPUT: "true"})
    return model


def normalises_itself(model: onnx.ModelProto, contract: ModelContract) -> bool:
    """insightface's own test: a graph that starts by subtracting and multiplying takes raw pixels.

    (insightface.model_zoo.landmark.Landmark / arcface_onnx.ArcFaceONNX look at the first 8 nodes'
    names; the MXNet landmark export starts with a `bn_data` node that does both.)
    """
    sub = mul = False
    for index, node in enumerate(model.graph.node[:8]):
        sub = sub or node.name.startswith(("Sub", "_minus"))
        mul = mul or node.name.startswith(("Mul", "_mul"))
        if contract is LANDMARK_2D106 and index < 3 and node.name == "bn_data":
            sub = mul = True
    return sub and mul


def fold_input_normalisation(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """A graph that takes raw pixels made to take the contract's normalised input; returns `model`, changed in place.

    Every client then sends the same thing whichever export the file is: x_raw = x * std + mean.
    """
    if contract.input_normalisation is None:
        raise PreparationError(f"{contract.triton_name}: the contract names no input normalisation to fold")
    mean, std = contract.input_normalisation
    name = contract.inputs[0].name
    raw = f"{name}_raw_pixels"
    _rename_input(model.graph, name, raw)
    _prepend_nodes(
        model.graph,
        [
            _constant("fold_input_std", std),
            _constant("fold_input_mean", mean),
            helper.make_node("Mul", [name, "fold_input_std"], [f"{name}_scaled"], name="fold_input_scale"),
            helper.make_node("Add", [f"{name}_scaled", "fold_input_mean"], [raw], name="fold_input_shift"),
        ],
    )
    helper.set_model_props(model, {**_metadata(model), META_INPUT_FOLDED: "true"})
    return model


def _prepare(contract: ModelContract, source: Path, repository: Path, allow_unverified: bool) -> PreparedModel:
    where = f"{contract.triton_name} ({source})"
    source_sha = sha256_of(source)
    try:
        model = onnx_stream.load(source)
    except onnx_stream.ModelFileError as exc:
        raise PreparationError(
            f"{contract.triton_name}: {source} is not a readable ONNX file ({_one_line(exc)})"
        ) from exc
    standin = is_standin(_metadata(model))
    verified, expected = verify_checksum(source, contract.source_path, source_sha)
    if not standin and not verified and not allow_unverified:
        raise PreparationError(
            f"{contract.triton_name}: {source} (SHA-256 {source_sha}) is not the published file ({expected}); "
            "the download is corrupt or a different file (pass --allow-unverified to use it anyway)"
        )
    if contract in FACE_MASK_MODELS:
        rename_single_output(model, contract)
    check_contract(model, contract, where)
    emap_folded = contract is INSWAPPER_128
    if emap_folded:
        fold_emap(model)
    if contract.file_outputs is not None:
        fold_argmax(model, contract)
    if contract.scan_batched:
        batch_by_scan(model, contract)
    if contract.pixel_input is not None:
        take_pixels(model, contract)
    input_folded = contract.input_normalisation is not None and normalises_itself(model, contract)
    if input_folded:
        fold_input_normalisation(model, contract)
    try:
        onnx_stream.check(model)
    except (onnx.checker.ValidationError, onnx_stream.ModelFileError) as exc:
        raise PreparationError(
            f"{where}: the prepared graph (IR version {model.ir_version}, "
            f"opsets {[(o.domain or 'ai.onnx', o.version) for o in model.opset_import]}) "
            f"fails onnx's checker: {_one_line(exc)}"
        ) from exc
    version_dir = repository / contract.triton_name / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    target = version_dir / "model.onnx"
    # Written beside and renamed, so that an interrupted run never leaves a half file Triton would load.
    partial = version_dir / "model.onnx.partial"
    prepared_sha = onnx_stream.save(model, partial, base_dir=source.parent)
    os.replace(partial, target)
    shutil.copyfile(CPU_RUNNER, version_dir / "model.py")
    return PreparedModel(
        name=contract.triton_name,
        source=str(source),
        source_sha256=source_sha,
        prepared_sha256=prepared_sha,
        standin=standin,
        checksum_verified=verified,
        emap_folded=emap_folded,
        input_normalisation_folded=input_folded,
        takes_pixels=contract.pixel_input is not None,
    )


def prepare_model(
    contract: ModelContract, weights: Path, repository: Path, allow_unverified: bool = False
) -> PreparedModel:
    """Check, fold and write one model; every failure is a PreparationError naming the model and file."""
    source = weights / contract.source_path
    if not source.is_file():
        raise PreparationError(
            f"{contract.triton_name}: {source} is missing; run `make models` (real weights, needs internet) "
            "or `make standins` (tiny random-weight stand-ins)"
        )
    try:
        return _prepare(contract, source, repository, allow_unverified)
    except PreparationError:
        raise
    except Exception as exc:  # whatever else breaks (I/O, onnx, protobuf), the operator learns which file
        raise PreparationError(
            f"{contract.triton_name}: preparing {source} failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc


def prepare_repository(weights: Path, repository: Path, allow_unverified: bool = False) -> list[PreparedModel]:
    """Prepare every model; write provenance.json; return what was done."""
    for contract in ALL_MODELS:
        if not (repository / contract.triton_name / "config.pbtxt").is_file():
            raise PreparationError(
                f"{repository} is not this project's model repository: {contract.triton_name}/config.pbtxt is missing"
            )
    prepared = [prepare_model(c, weights, repository, allow_unverified) for c in ALL_MODELS]
    write_provenance(repository, prepared)
    return prepared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", type=Path, required=True, help="folder holding buffalo_l/, inswapper_128.onnx and facefusion/"
    )
    parser.add_argument(
        "--repository", type=Path, default=Path("triton_models"), help="Triton model repository to fill"
    )
    parser.add_argument("--allow-unverified", action="store_true", help="accept real files whose checksum differs")
    args = parser.parse_args(argv)
    try:
        prepared = prepare_repository(args.weights, args.repository, args.allow_unverified)
    except PreparationError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    for p in prepared:
        kind = (
            "STAND-IN (random weights)"
            if p.standin
            else ("real, checksum ok" if p.checksum_verified else "real, UNVERIFIED")
        )
        extra = ", emap folded" if p.emap_folded else ""
        extra += ", class argmax folded" if MODELS_BY_NAME[p.name].file_outputs is not None else ""
        extra += ", batched by Scan" if MODELS_BY_NAME[p.name].scan_batched else ""
        extra += ", takes uint8 pixels" if p.takes_pixels else ""
        extra += ", input normalisation folded" if p.input_normalisation_folded else ""
        print(f"{p.name:14s} {kind}{extra} -> {args.repository / p.name / '1' / 'model.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
