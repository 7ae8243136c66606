"""The contracts of the real InsightFace files, written once.

The stand-in generator builds graphs with exactly these names, shapes and dtypes; the preparation
command checks every file (real or stand-in) against them; the Triton configurations are tested
against them. A dimension of -1 is dynamic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: type[np.floating] = np.float32


@dataclass(frozen=True)
class ModelContract:
    """One real model file: where it lives in the source folder and what it takes and gives."""

    triton_name: str
    source_path: str  # relative to the weights folder laid out by `make models`
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Models whose first dimension is a free batch dimension on every input and output can be
    # batched by Triton's dynamic batcher; the others take exactly one image per request.
    batchable: bool


SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS_PER_CELL = 2
SCRFD_SCORE_NAMES = ("448", "471", "494")
SCRFD_BOX_NAMES = ("451", "474", "497")
SCRFD_KPS_NAMES = ("454", "477", "500")

DET_10G = ModelContract(
    triton_name="det_10g",
    source_path="buffalo_l/det_10g.onnx",
    inputs=(TensorSpec("input.1", (1, 3, -1, -1)),),
    outputs=tuple(TensorSpec(n, (-1, 1)) for n in SCRFD_SCORE_NAMES)
    + tuple(TensorSpec(n, (-1, 4)) for n in SCRFD_BOX_NAMES)
    + tuple(TensorSpec(n, (-1, 10)) for n in SCRFD_KPS_NAMES),
    batchable=False,
)

LANDMARK_2D106 = ModelContract(
    triton_name="2d106det",
    source_path="buffalo_l/2d106det.onnx",
    inputs=(TensorSpec("data", (-1, 3, 192, 192)),),
    outputs=(TensorSpec("fc1", (-1, 212)),),
    batchable=True,
)

ARCFACE_W600K = ModelContract(
    triton_name="w600k_r50",
    source_path="buffalo_l/w600k_r50.onnx",
    inputs=(TensorSpec("input.1", (-1, 3, 112, 112)),),
    outputs=(TensorSpec("683", (-1, 512)),),
    batchable=True,
)

INSWAPPER_128 = ModelContract(
    triton_name="inswapper_128",
    source_path="inswapper_128.onnx",
    inputs=(TensorSpec("target", (1, 3, 128, 128)), TensorSpec("source", (1, 512))),
    outputs=(TensorSpec("output", (1, 3, 128, 128)),),
    batchable=False,
)

ALL_MODELS: tuple[ModelContract, ...] = (DET_10G, LANDMARK_2D106, ARCFACE_W600K, INSWAPPER_128)
MODELS_BY_NAME = {m.triton_name: m for m in ALL_MODELS}

EMAP_SHAPE = (512, 512)

# Keys written into an ONNX file's metadata_props by this project.
META_STANDIN = "inpaint.standin"
META_EMAP_FOLDED = "inpaint.emap_folded"
META_INPUT_FOLDED = "inpaint.input_normalisation_folded"
