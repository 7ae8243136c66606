"""Tiny random-weight stand-ins for the InsightFace files and FaceFusion's face parser and occluder, with
exactly the real contracts.

No weights can be downloaded here or in CI, so tests and the demo run the real loading, serving and
client code on these. Their outputs are noise: every file carries the stand-in mark
(`servers.triton.provenance.STANDIN_METADATA`) in its metadata, and everything made with them says so.

    python -m tools.models.standins --out models/standins

writes `buffalo_l/{det_10g,2d106det,w600k_r50}.onnx`, `inswapper_128.onnx` (with its trailing,
unused emap initializer, as in the real file) and `facefusion/{bisenet_resnet_34,xseg_1}.onnx` in the
same layout `make models` produces.

Where the real files' form matters to the code that reads them, the stand-ins copy it: 2d106det is,
like the real one, an old MXNet export (IR version 3, opset 9, every initializer also listed as a
graph input) whose first node `bn_data` normalises raw pixels itself. `--inswapper-bytes` pads
inswapper to a given file size (the real one is 554 MB) with unused initializers placed before the
emap, for measuring preparation's memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from servers.triton.contracts import (
    ARCFACE_W600K,
    DET_10G,
    EMAP_SHAPE,
    FACE_OCCLUDER,
    FACE_PARSER,
    INSWAPPER_128,
    LANDMARK_2D106,
    SCRFD_ANCHORS_PER_CELL,
    SCRFD_BOX_NAMES,
    SCRFD_KPS_NAMES,
    SCRFD_SCORE_NAMES,
    SCRFD_STRIDES,
    ModelContract,
    TensorSpec,
)
from servers.triton.provenance import STANDIN_METADATA

OPSET = 13  # old enough for the onnxruntime inside NVIDIA's Triton containers
IR_VERSION = 8
# buffalo_l's 2d106det.onnx was exported from MXNet with an old onnx: IR version 3 (initializers are
# graph inputs too) and opset 9.
LANDMARK_IR_VERSION = 3
LANDMARK_OPSET = 9
REAL_INSWAPPER_BYTES = 554_253_681


def _value_info(spec: TensorSpec) -> onnx.ValueInfoProto:
    axis_names = ("N", "C", "H", "W")
    dims: list[int | str] = [d if d >= 0 else axis_names[i] for i, d in enumerate(spec.shape)]
    return helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, dims)


class _Graph:
    """A small helper that names initializers and nodes uniquely."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, value: np.ndarray, prefix: str = "w") -> str:
        name = self._name(prefix)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def random(self, shape: tuple[int, ...], scale: float) -> str:
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self._name(op), **attrs))
        return out

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int, bias: float = 0.0, pad: int = 0) -> str:
        fan_in = c_in * kernel * kernel
        w = self.random((c_out, c_in, kernel, kernel), 1.0 / np.sqrt(fan_in))
        b = self.const(np.full((c_out,), bias, dtype=np.float32), "b")
        return self.node("Conv", [x, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)


def _model(
    graph: _Graph,
    contract: ModelContract,
    extra_initializers: list[onnx.TensorProto] | None = None,
    ir_version: int = IR_VERSION,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """The model with the source file's shapes (inswapper's file fixes its batch to 1, as the real one does)."""
    initializers = graph.initializers + (extra_initializers or [])
    specs_in = contract.source_inputs()
    specs_out = contract.source_outputs()
    inputs = [_value_info(s) for s in specs_in]
    if ir_version < 4:  # IR 3 requires every initializer to be a graph input as well
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in initializers]
    g = helper.make_graph(
        graph.nodes,
        f"{contract.triton_name}_standin",
        inputs,
        [_value_info(s) for s in specs_out],
        initializer=initializers,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="inpaint-standins")
    model.ir_version = ir_version
    helper.set_model_props(model, dict(STANDIN_METADATA))
    onnx.checker.check_model(model)
    return model


def _anchor_rows(g: _Graph, feature: str, width: int, out_name: str) -> str:
    """[1, A*width, h, w] -> [h*w*A, width], the row order SCRFD's decoder expects."""
    nhwc = g.node("Transpose", [feature], perm=[0, 2, 3, 1])
    shape = g.const(np.array([-1, width], dtype=np.int64), "shape")
    return g.node("Reshape", [nhwc, shape], output=out_name)


def make_det_10g(rng: np.random.Generator) -> onnx.ModelProto:
    g = _Graph(rng)
    a = SCRFD_ANCHORS_PER_CELL
    features = {s: g.node("Relu", [g.conv("input.1", 3, 8, s, s)]) for s in SCRFD_STRIDES}
    # The score bias keeps most random anchors under the default 0.5 threshold, so a stand-in
    # "detects" a handful of random boxes rather than thousands.
    for s, name in zip(SCRFD_STRIDES, SCRFD_SCORE_NAMES):
        logits = g.conv(features[s], 8, a, 1, 1, bias=-0.3)
        _anchor_rows(g, g.node("Sigmoid", [logits]), 1, name)
    for s, name in zip(SCRFD_STRIDES, SCRFD_BOX_NAMES):
        # distances in stride units, positive so that boxes are well formed
        _anchor_rows(g, g.node("Softplus", [g.conv(features[s], 8, a * 4, 1, 1, bias=1.5)]), 4, name)
    for s, name in zip(SCRFD_STRIDES, SCRFD_KPS_NAMES):
        _anchor_rows(g, g.conv(features[s], 8, a * 10, 1, 1), 10, name)
    # Graph outputs in the real file's order: scores, boxes, keypoints.
    return _model(g, DET_10G)


def make_2d106det(rng: np.random.Generator) -> onnx.ModelProto:
    g = _Graph(rng)
    # Raw pixels in, as in the MXNet export: its first node `bn_data` is a BatchNormalization that
    # does (x - mean) / std, which is how insightface recognises such a file.
    channels = np.ones((3,), np.float32)
    pixels = g.node(
        "BatchNormalization",
        [
            "data",
            g.const(channels / 128.0, "bn_gamma"),
            g.const(channels * 0.0, "bn_beta"),
            g.const(channels * 127.5, "bn_mean"),
            g.const(channels, "bn_var"),
        ],
        epsilon=1e-5,
    )
    g.nodes[-1].name = "bn_data"
    x = g.node("Relu", [g.conv(pixels, 3, 4, 16, 16)])  # [N,4,12,12]
    flat = g.node("Flatten", [x], axis=1)
    w = g.random((4 * 12 * 12, 212), 1.0 / np.sqrt(4 * 12 * 12))
    b = g.const(np.zeros((212,), np.float32), "b")
    g.node("Tanh", [g.node("Gemm", [flat, w, b])], output=LANDMARK_2D106.outputs[0].name)
    return _model(g, LANDMARK_2D106, ir_version=LANDMARK_IR_VERSION, opset=LANDMARK_OPSET)


def make_w600k_r50(rng: np.random.Generator) -> onnx.ModelProto:
    g = _Graph(rng)
    x = g.node("Relu", [g.conv("input.1", 3, 4, 16, 16)])  # [N,4,7,7]
    flat = g.node("Flatten", [x], axis=1)
    w = g.random((4 * 7 * 7, 512), 1.0 / np.sqrt(4 * 7 * 7))
    b = g.const(np.zeros((512,), np.float32), "b")
    g.node("Gemm", [flat, w, b], output="683")
    return _model(g, ARCFACE_W600K)


def make_inswapper_128(rng: np.random.Generator, pad_to_bytes: int = 0) -> onnx.ModelProto:
    """The inswapper stand-in; with pad_to_bytes, unused zero initializers bring its file to about that size."""
    g = _Graph(rng)
    target, source = (spec.name for spec in INSWAPPER_128.inputs)
    t = g.conv(target, 3, 8, 3, 1, pad=1)
    w = g.random((512, 8), 1.0 / np.sqrt(512))
    s = g.node("MatMul", [source, w])
    s = g.node("Reshape", [s, g.const(np.array([1, 8, 1, 1], np.int64), "shape")])
    x = g.node("Relu", [g.node("Add", [t, s])])
    x = g.conv(x, 8, 3, 3, 1, pad=1)
    g.node("Sigmoid", [x], output=INSWAPPER_128.outputs[0].name)
    # The real file carries the 512x512 projection of the identity embedding as its last
    # initializer, unused by the graph itself; the preparation step folds it in.
    emap = numpy_helper.from_array(
        (rng.standard_normal(EMAP_SHAPE) / np.sqrt(EMAP_SHAPE[0])).astype(np.float32), "emap"
    )
    # Batch 1 in the file, and a reshape that assumes it, as a fixed-batch export has.
    return _model(g, INSWAPPER_128, extra_initializers=[*_padding(g, pad_to_bytes - emap.ByteSize()), emap])


def _padding(g: _Graph, total_bytes: int, tensor_bytes: int = 4 << 20) -> list[onnx.TensorProto]:
    """Unused float32 zero initializers of about total_bytes, in tensors of at most tensor_bytes (real
    files hold hundreds of weight tensors, not one blob)."""
    total_bytes -= sum(t.ByteSize() for t in g.initializers)
    padding: list[onnx.TensorProto] = []
    while total_bytes > 0:
        count = max(min(tensor_bytes, total_bytes) // 4, 1)
        padding.append(numpy_helper.from_array(np.zeros((count,), np.float32), f"padding_{len(padding)}"))
        total_bytes -= count * 4
    return padding


def _upsample(g: _Graph, x: str, factor: int) -> str:
    """Bilinear upsampling by an integer factor (Resize, opset 13: X, roi, scales)."""
    roi = g.const(np.zeros((0,), np.float32), "roi")
    scales = g.const(np.array([1, 1, factor, factor], np.float32), "scales")
    return g.node("Resize", [x, roi, scales], mode="linear")


def make_bisenet_resnet_34(rng: np.random.Generator) -> onnx.ModelProto:
    """19 class logits per pixel of the 512 crop, smooth over 16 px blocks (so classes form regions)."""
    g = _Graph(rng)
    x = g.node("Relu", [g.conv(FACE_PARSER.inputs[0].name, 3, 8, 16, 16)])  # [1,8,32,32]
    logits = g.conv(x, 8, 19, 1, 1)
    g.node("Identity", [_upsample(g, logits, 16)], output=FACE_PARSER.source_outputs()[0].name)
    return _model(g, FACE_PARSER)


def make_xseg_1(rng: np.random.Generator) -> onnx.ModelProto:
    """NHWC in, NHWC visibility out; the bias makes the bundled photos' faces mostly visible with a few
    covered patches (about a tenth), so that both answers occur."""
    g = _Graph(rng)
    nchw = g.node("Transpose", [FACE_OCCLUDER.inputs[0].name], perm=[0, 3, 1, 2])
    x = g.node("Relu", [g.conv(nchw, 3, 4, 8, 8)])  # [1,4,32,32]
    visible = g.node("Sigmoid", [g.conv(x, 4, 1, 1, 1, bias=-0.1)])
    g.node("Transpose", [_upsample(g, visible, 8)], output=FACE_OCCLUDER.outputs[0].name, perm=[0, 2, 3, 1])
    return _model(g, FACE_OCCLUDER)


BUILDERS = {
    DET_10G: make_det_10g,
    LANDMARK_2D106: make_2d106det,
    ARCFACE_W600K: make_w600k_r50,
    INSWAPPER_128: make_inswapper_128,
    FACE_PARSER: make_bisenet_resnet_34,
    FACE_OCCLUDER: make_xseg_1,
}


def write_standins(out_dir: Path, seed: int = 0, inswapper_bytes: int = 0) -> dict[str, Path]:
    """Write every stand-in under out_dir in the real weights layout; return name -> path.

    inswapper_bytes > 0 pads inswapper_128.onnx to about that size (see make_inswapper_128).
    """
    written: dict[str, Path] = {}
    for contract, build in BUILDERS.items():
        rng = np.random.default_rng([seed, len(written)])
        path = out_dir / contract.source_path
        path.parent.mkdir(parents=True, exist_ok=True)
        model = make_inswapper_128(rng, inswapper_bytes) if contract is INSWAPPER_128 else build(rng)
        onnx.save(model, path)
        written[contract.triton_name] = path
    (out_dir / "STANDIN").write_text(
        "These ONNX files are tiny random-weight stand-ins made by tools/models/standins.py.\n"
        "Their outputs are noise. Run `make models` where internet exists for the real weights.\n"
    )
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("models/standins"), help="folder to write into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument(
        "--inswapper-bytes",
        type=int,
        default=0,
        help=f"pad inswapper_128.onnx to about this size (the real file: {REAL_INSWAPPER_BYTES})",
    )
    args = parser.parse_args(argv)
    for name, path in write_standins(args.out, args.seed, args.inswapper_bytes).items():
        print(f"stand-in {name}: {path}")


if __name__ == "__main__":
    main()
