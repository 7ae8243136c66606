"""The Triton model repository's contracts: what each model (InsightFace's four, FaceFusion's face parser
and occluder) takes and gives, written once.

The runtime (the orchestrator's Triton client, the Triton launcher) and the dev tooling (the stand-in
generator and the preparation command under `tools.models`) all read the model and tensor names from
here. It imports nothing heavier than numpy, so serving code can depend on it without pulling in onnx.
A dimension of -1 is dynamic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: type[np.generic] = np.float32


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
    # What the served model asks clients to send, as (mean, std): (pixel - mean) / std, RGB. None where
    # the client sends something else (SCRFD's own class normalises; inswapper takes pixels / 255).
    input_normalisation: tuple[float, float] | None = None
    # Where the source file fixes the leading dimension that the served model leaves free (inswapper's
    # file takes exactly one crop; the prepared model a batch), the file's value of it.
    source_batch: int | None = None
    # Where the source file's outputs have no batch axis at all (SCRFD: its one image's anchors as rows);
    # the prepared model stacks each item's outputs on a new leading axis.
    source_outputs_unbatched: bool = False
    # Where preparation serves other outputs than the file's (the face parser's 19 logits per pixel become
    # the winning class), the file's; `outputs` are the served ones.
    file_outputs: tuple[TensorSpec, ...] | None = None
    # Where the served model takes uint8 pixels and normalises them itself, (pixel - mean) / std into the
    # file's float32 input, the (mean, std) its insightface class uses: a quarter of the bytes on the wire.
    pixel_input: tuple[float, float] | None = None

    def source_shape(self, spec: TensorSpec) -> tuple[int, ...]:
        """A tensor's shape in the source file (the served shape unless the file fixes or lacks its batch)."""
        if self.source_outputs_unbatched and spec in self.outputs:
            return spec.shape[1:]
        return spec.shape if self.source_batch is None else (self.source_batch, *spec.shape[1:])

    def source_inputs(self) -> tuple[TensorSpec, ...]:
        """The inputs as the source file has them (float32 where the served model takes uint8 pixels)."""
        return tuple(
            TensorSpec(s.name, self.source_shape(s), np.float32 if self.pixel_input else s.dtype) for s in self.inputs
        )

    def source_outputs(self) -> tuple[TensorSpec, ...]:
        """The outputs as the source file has them."""
        if self.file_outputs is not None:
            return self.file_outputs
        return tuple(TensorSpec(s.name, self.source_shape(s), s.dtype) for s in self.outputs)

    @property
    def scan_batched(self) -> bool:
        """Whether preparation makes the file's one-item graph run over a batch (tools.models.prepare)."""
        return self.source_batch is not None


SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS_PER_CELL = 2
SCRFD_INPUT_NAME = "input.1"
SCRFD_SCORE_NAMES = ("448", "471", "494")
SCRFD_BOX_NAMES = ("451", "474", "497")
SCRFD_KPS_NAMES = ("454", "477", "500")

LANDMARK_INPUT_NAME = "data"
LANDMARK_OUTPUT_NAME = "fc1"

ARCFACE_INPUT_NAME = "input.1"
ARCFACE_OUTPUT_NAME = "683"

SWAPPER_TARGET_NAME = "target"
SWAPPER_SOURCE_NAME = "source"
SWAPPER_OUTPUT_NAME = "output"

# FaceFusion feeds both mask models a tensor named "input" (facefusion/face_masker.py); the real files'
# output names are not published, so preparation renames each one's single output to these.
PARSER_INPUT_NAME = "input"
PARSER_OUTPUT_NAME = "output"
# The served parser gives each pixel's class (the argmax of the file's logits, folded in by preparation),
# as float32: 1 MB a crop where the logits are 20 MB.
PARSER_LABELS_NAME = "labels"
OCCLUDER_INPUT_NAME = "input"
OCCLUDER_OUTPUT_NAME = "output"

# The real file takes one image and gives its anchors as rows, with no batch axis. The prepared model runs
# the graph once per image of a batch (tools.models.prepare.batch_by_scan) and stacks each image's rows, so
# that Triton's dynamic batcher can group concurrent detections of one size (the client letterboxes every
# image to the same square) and the landmark and embedding calls behind them arrive together.
DET_10G = ModelContract(
    triton_name="det_10g",
    source_path="buffalo_l/det_10g.onnx",
    inputs=(TensorSpec(SCRFD_INPUT_NAME, (-1, 3, -1, -1), np.uint8),),  # RGB pixels of the letterboxed square
    outputs=tuple(TensorSpec(n, (-1, -1, 1)) for n in SCRFD_SCORE_NAMES)
    + tuple(TensorSpec(n, (-1, -1, 4)) for n in SCRFD_BOX_NAMES)
    + tuple(TensorSpec(n, (-1, -1, 10)) for n in SCRFD_KPS_NAMES),
    batchable=True,
    source_batch=1,
    source_outputs_unbatched=True,
    pixel_input=(127.5, 128.0),
)

LANDMARK_2D106 = ModelContract(
    triton_name="2d106det",
    source_path="buffalo_l/2d106det.onnx",
    inputs=(TensorSpec(LANDMARK_INPUT_NAME, (-1, 3, 192, 192)),),
    outputs=(TensorSpec(LANDMARK_OUTPUT_NAME, (-1, 212)),),
    batchable=True,
    input_normalisation=(127.5, 128.0),
)

ARCFACE_W600K = ModelContract(
    triton_name="w600k_r50",
    source_path="buffalo_l/w600k_r50.onnx",
    inputs=(TensorSpec(ARCFACE_INPUT_NAME, (-1, 3, 112, 112)),),
    outputs=(TensorSpec(ARCFACE_OUTPUT_NAME, (-1, 512)),),
    batchable=True,
    input_normalisation=(127.5, 127.5),
)

# The real file fixes its batch to 1; the prepared model takes any number of crops in one request
# (pixel boost's sub-pixel tiles) and runs the original graph once per crop (see
# tools.models.prepare.batch_by_scan). Triton's dynamic batcher stays off: a request carries its own batch.
INSWAPPER_128 = ModelContract(
    triton_name="inswapper_128",
    source_path="inswapper_128.onnx",
    inputs=(TensorSpec(SWAPPER_TARGET_NAME, (-1, 3, 128, 128)), TensorSpec(SWAPPER_SOURCE_NAME, (-1, 512))),
    outputs=(TensorSpec(SWAPPER_OUTPUT_NAME, (-1, 3, 128, 128)),),
    batchable=False,
    source_batch=1,
)

# FaceFusion's face parser (BiSeNet on a ResNet-34, trained on CelebAMask-HQ): the aligned face at 512x512,
# RGB, (pixel/255 - ImageNet mean) / ImageNet std (per channel, sent by the client); 19 class logits per pixel.
# Like inswapper's, the file fixes its batch to 1; the prepared model runs it per crop of a batch (a Scan),
# so that Triton's dynamic batcher groups concurrent swaps' crops (the heaviest face model: left unbatched,
# it spaces the callers out and no model behind or before it sees two requests at once). It serves each
# pixel's class, not the file's logits.
FACE_PARSER = ModelContract(
    triton_name="bisenet_resnet_34",
    source_path="facefusion/bisenet_resnet_34.onnx",
    inputs=(TensorSpec(PARSER_INPUT_NAME, (-1, 3, 512, 512)),),
    outputs=(TensorSpec(PARSER_LABELS_NAME, (-1, 512, 512)),),
    batchable=True,
    source_batch=1,
    file_outputs=(TensorSpec(PARSER_OUTPUT_NAME, (1, 19, 512, 512)),),
)

# FaceFusion's occluder (DeepFaceLab's XSeg): the face crop at 256x256, NHWC, BGR pixel/255; per pixel the
# probability that the face is visible there (0 where a hand, hair, glasses... cover it).
# Batched as the parser is.
FACE_OCCLUDER = ModelContract(
    triton_name="xseg_1",
    source_path="facefusion/xseg_1.onnx",
    inputs=(TensorSpec(OCCLUDER_INPUT_NAME, (-1, 256, 256, 3)),),
    outputs=(TensorSpec(OCCLUDER_OUTPUT_NAME, (-1, 256, 256, 1)),),
    batchable=True,
    source_batch=1,
)

# The face parser's classes (CelebAMask-HQ's 19, in the order FaceFusion's face_masker.py maps them).
PARSER_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "glasses",
    "left_ear",
    "right_ear",
    "earring",
    "nose",
    "mouth",
    "upper_lip",
    "lower_lip",
    "neck",
    "necklace",
    "cloth",
    "hair",
    "hat",
)

INSIGHTFACE_MODELS: tuple[ModelContract, ...] = (DET_10G, LANDMARK_2D106, ARCFACE_W600K, INSWAPPER_128)
FACE_MASK_MODELS: tuple[ModelContract, ...] = (FACE_PARSER, FACE_OCCLUDER)
ALL_MODELS: tuple[ModelContract, ...] = INSIGHTFACE_MODELS + FACE_MASK_MODELS
MODELS_BY_NAME = {m.triton_name: m for m in ALL_MODELS}

# inswapper's trailing initializer: the projection of the ArcFace embedding that the graph expects
# as `source`. The prepared graph computes it itself, so clients send the plain embedding.
EMAP_SHAPE = (512, 512)

# Keys written into a prepared ONNX file's metadata_props. (The stand-in mark lives in
# servers.triton.provenance, with everything else that says whether a model is real.)
META_EMAP_FOLDED = "inpaint.emap_folded"
META_INPUT_FOLDED = "inpaint.input_normalisation_folded"
META_BATCH_SCAN = "inpaint.batch_by_scan"
META_PIXEL_INPUT = "inpaint.pixel_input"
META_ARGMAX_FOLDED = "inpaint.argmax_folded"
