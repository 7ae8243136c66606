"""The output is generated at the requested size and the condition image has that same size (no 1024x1024
upscaling, no resampling of an input that already has it): a spy on the adapter's pipeline, and the server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import numpy as np
from inpaint.v1 import qwen_edit_pb2_grpc
from PIL import Image

from stack.process import REPO_ROOT
from tests.qwen_edit.conftest import QWEN_PYTHON, decode, edit_request, encode, photo, rpc_error

CROP = 900
NEAREST = 904  # the stand-in's multiple is 8: 900 lies between 896 and 904, a tie, which goes up


def probe(model_dir: Path, image: Path, width: int, height: int) -> dict[str, object]:
    done = subprocess.run(
        [str(QWEN_PYTHON), str(REPO_ROOT / "tests" / "qwen_edit" / "adapter_probe.py"), str(model_dir), str(image),
         str(width), str(height)],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_pipeline_receives_the_condition_image_at_the_output_size(qwen_standin: Path, tmp_path: Path) -> None:
    image = tmp_path / "crop.png"
    Image.fromarray(photo(CROP, CROP)).save(image)

    seen = probe(qwen_standin, image, NEAREST, NEAREST)

    assert seen["output_size"] == [NEAREST, NEAREST]
    assert seen["pipeline_image_size"] == [NEAREST, NEAREST]
    # The VAE encodes the condition image at the output size, not at about 1024x1024.
    assert seen["vae_encoder_input_shapes"] == [[1, 3, 1, NEAREST, NEAREST]]


def test_an_input_already_at_the_output_size_is_not_resampled(qwen_standin: Path, tmp_path: Path) -> None:
    image = tmp_path / "crop.png"
    Image.fromarray(photo(96, 80)).save(image)

    seen = probe(qwen_standin, image, 80, 96)

    assert seen["pipeline_image_is_input_pixels"] is True
    assert seen["vae_encoder_input_shapes"] == [[1, 3, 1, 96, 80]]


def test_a_900_crop_is_refused_then_edited_at_the_nearest_allowed_size(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    crop = encode(photo(CROP, CROP))
    error = rpc_error(lambda: stub.Edit(edit_request(image=crop, width=CROP, height=CROP), timeout=60))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"nearest allowed: {NEAREST}" in (error.details() or "")

    response = stub.Edit(
        edit_request(image=crop, width=NEAREST, height=NEAREST, num_inference_steps=1, true_cfg_scale=1.0),
        timeout=600,
    )

    assert decode(response.images[0].image).shape == (NEAREST, NEAREST, 3)
    assert (response.condition_width, response.condition_height) == (NEAREST, NEAREST)
    assert np.isfinite(response.seconds_per_step)
