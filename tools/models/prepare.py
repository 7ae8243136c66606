"""Lay out the Triton model repository from the InsightFace files.

    python -m tools.models.prepare --weights models/real --repository triton_models

For each of det_10g, 2d106det, w600k_r50 and inswapper_128 it checks the file's SHA-256 (real
files) or its stand-in mark, checks its inputs and outputs against the real contract, writes it as
`<repository>/<model>/1/model.onnx`, installs the CPU python-backend runner beside it, and records
what it did in `<repository>/provenance.json`.

inswapper_128 is rewritten on the way: the real graph takes `normalize(normalize(e) @ emap)` as
its `source`, where `emap` is the file's last initializer. The prepared graph computes that
projection itself, so Triton clients send the plain ArcFace embedding `e` and need no weight file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tools.models.contracts import (
    ALL_MODELS,
    ARCFACE_W600K,
    EMAP_SHAPE,
    INSWAPPER_128,
    LANDMARK_2D106,
    META_EMAP_FOLDED,
    META_INPUT_FOLDED,
    META_STANDIN,
    ModelContract,
    TensorSpec,
)
from tools.models.manifest import FILE_SHA256

CPU_RUNNER = Path(__file__).resolve().parents[2] / "servers" / "triton" / "onnx_cpu_model.py"
PROVENANCE_FILE = "provenance.json"


class PreparationError(Exception):
    """A model file is missing, corrupt, or does not have the real contract."""


@dataclass(frozen=True)
class PreparedModel:
    name: str
    source: str
    source_sha256: str
    prepared_sha256: str
    standin: bool
    checksum_verified: bool
    emap_folded: bool
    input_normalisation_folded: bool = False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
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
    """Raise PreparationError unless the graph's inputs and outputs are the real contract's."""
    initializer_names = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializer_names]
    _check_tensors("inputs", inputs, contract.inputs, where)
    _check_tensors("outputs", list(model.graph.output), contract.outputs, where)


def fold_emap(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return inswapper with `source = normalize(normalize(e) @ emap)` computed inside the graph."""
    if _metadata(model).get(META_EMAP_FOLDED) == "true":
        raise PreparationError("inswapper_128: the emap projection is already folded into this graph")
    if not model.graph.initializer:
        raise PreparationError("inswapper_128: the graph has no initializers, so no emap to fold")
    emap = model.graph.initializer[-1]
    if tuple(emap.dims) != EMAP_SHAPE:
        raise PreparationError(
            f"inswapper_128: last initializer {emap.name!r} has shape {list(emap.dims)}, "
            f"expected emap {list(EMAP_SHAPE)}"
        )
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    graph = folded.graph
    projected = "source_projected"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == "source":
                node.input[i] = projected
    projection = [
        helper.make_node("LpNormalization", ["source"], ["source_normed"], axis=1, p=2, name="fold_normalize_in"),
        helper.make_node("MatMul", ["source_normed", emap.name], ["source_mapped"], name="fold_emap"),
        helper.make_node("LpNormalization", ["source_mapped"], [projected], axis=1, p=2, name="fold_normalize_out"),
    ]
    nodes = projection + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    helper.set_model_props(folded, {**_metadata(model), META_EMAP_FOLDED: "true"})
    onnx.checker.check_model(folded)
    return folded


# What the Triton contract asks clients to send (the normalisation insightface uses when a graph
# does not normalise by itself): (pixel - mean) / std, RGB.
CLIENT_NORMALISATION = {LANDMARK_2D106.triton_name: (127.5, 128.0), ARCFACE_W600K.triton_name: (127.5, 127.5)}


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
    """A graph that takes raw pixels, turned into one that takes the contract's normalised input.

    Every client then sends the same thing whichever export the file is: x_raw = x * std + mean.
    """
    mean, std = CLIENT_NORMALISATION[contract.triton_name]
    name = contract.inputs[0].name
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    graph = folded.graph
    raw = f"{name}_raw_pixels"
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = raw
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(std, np.float32), "fold_input_std"),
            numpy_helper.from_array(np.array(mean, np.float32), "fold_input_mean"),
        ]
    )
    nodes = [
        helper.make_node("Mul", [name, "fold_input_std"], [f"{name}_scaled"], name="fold_input_scale"),
        helper.make_node("Add", [f"{name}_scaled", "fold_input_mean"], [raw], name="fold_input_shift"),
        *graph.node,
    ]
    del graph.node[:]
    graph.node.extend(nodes)
    helper.set_model_props(folded, {**_metadata(model), META_INPUT_FOLDED: "true"})
    onnx.checker.check_model(folded)
    return folded


def prepare_model(
    contract: ModelContract, weights: Path, repository: Path, allow_unverified: bool = False
) -> PreparedModel:
    source = weights / contract.source_path
    if not source.is_file():
        raise PreparationError(
            f"{contract.triton_name}: {source} is missing; run `make models` (real weights, needs internet) "
            "or `make standins` (tiny random-weight stand-ins)"
        )
    source_sha = sha256_of(source)
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # onnx raises DecodeError, OSError or its own errors
        raise PreparationError(f"{contract.triton_name}: {source} is not a readable ONNX file ({exc})") from exc
    standin = _metadata(model).get(META_STANDIN) == "true"
    expected_sha = FILE_SHA256[contract.source_path]
    verified = source_sha == expected_sha
    if not standin and not verified and not allow_unverified:
        raise PreparationError(
            f"{contract.triton_name}: {source} has SHA-256 {source_sha}, expected {expected_sha}; "
            "the download is corrupt or a different file (pass --allow-unverified to use it anyway)"
        )
    check_contract(model, contract, f"{contract.triton_name} ({source})")
    folded = contract is INSWAPPER_128
    if folded:
        model = fold_emap(model)
    input_folded = contract.triton_name in CLIENT_NORMALISATION and normalises_itself(model, contract)
    if input_folded:
        model = fold_input_normalisation(model, contract)
    version_dir = repository / contract.triton_name / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    target = version_dir / "model.onnx"
    onnx.save(model, str(target))
    shutil.copyfile(CPU_RUNNER, version_dir / "model.py")
    return PreparedModel(
        name=contract.triton_name,
        source=str(source),
        source_sha256=source_sha,
        prepared_sha256=sha256_of(target),
        standin=standin,
        checksum_verified=verified,
        emap_folded=folded,
        input_normalisation_folded=input_folded,
    )


def prepare_repository(weights: Path, repository: Path, allow_unverified: bool = False) -> list[PreparedModel]:
    """Prepare every model; write provenance.json; return what was done."""
    for contract in ALL_MODELS:
        if not (repository / contract.triton_name / "config.pbtxt").is_file():
            raise PreparationError(
                f"{repository} is not this project's model repository: {contract.triton_name}/config.pbtxt is missing"
            )
    prepared = [prepare_model(c, weights, repository, allow_unverified) for c in ALL_MODELS]
    (repository / PROVENANCE_FILE).write_text(json.dumps([asdict(p) for p in prepared], indent=2) + "\n")
    return prepared


def read_provenance(repository: Path) -> list[PreparedModel] | None:
    path = repository / PROVENANCE_FILE
    if not path.is_file():
        return None
    return [PreparedModel(**entry) for entry in json.loads(path.read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="folder holding buffalo_l/ and inswapper_128.onnx")
    parser.add_argument(
        "--repository", type=Path, default=Path("triton_models"), help="Triton model repository to fill"
    )
    parser.add_argument("--allow-unverified", action="store_true", help="accept real files whose checksum differs")
    args = parser.parse_args(argv)
    try:
        prepared = prepare_repository(args.weights, args.repository, args.allow_unverified)
    except PreparationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in prepared:
        kind = (
            "STAND-IN (random weights)"
            if p.standin
            else ("real, checksum ok" if p.checksum_verified else "real, UNVERIFIED")
        )
        extra = ", emap folded" if p.emap_folded else ""
        print(f"{p.name:14s} {kind}{extra} -> {args.repository / p.name / '1' / 'model.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
