"""The edit-plus pipeline (QwenImageEditPlusPipeline, Qwen-Image-Edit-2509/-2511) through the real server."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from stack.process import ModelServerProcess
from tests.qwen_edit.conftest import decode, edit_request, encode, photo, rpc_error


@pytest.fixture(scope="module")
def plus(qwen_plus_server: ModelServerProcess) -> qwen_edit_pb2_grpc.QwenEditServiceStub:
    return qwen_edit_pb2_grpc.QwenEditServiceStub(qwen_plus_server.channel())


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_batched_seeds_at_the_requested_size(plus: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    response = plus.Edit(edit_request(seeds=[5, 3, 9], width=48, height=32), timeout=60)

    assert response.pipeline == "QwenImageEditPlusPipeline"
    assert [image.seed for image in response.images] == [5, 3, 9]
    assert {image.batch_size for image in response.images} == {3}
    for image in response.images:
        assert decode(image.image).shape == (32, 48, 3)
    assert (response.condition_width, response.condition_height) == (48, 32)
    assert mean_distance(decode(response.images[0].image), decode(response.images[1].image)) > 3.0


def test_neighbourhood_children_are_nearer_their_parent(plus: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    parent = decode(plus.Edit(edit_request(seeds=[7]), timeout=60).images[0].image)
    child_seeds = [101, 102, 103]
    unrelated = plus.Edit(edit_request(seeds=child_seeds), timeout=60)
    children = plus.Edit(
        edit_request(
            seeds=child_seeds, neighbourhood=qwen_edit_pb2.NoiseNeighbourhood(parent_seed=7, parent_weight=0.95)
        ),
        timeout=60,
    )

    for child in children.images:
        assert child.noise_cosine_to_parent == pytest.approx(0.95, abs=0.03)
    near = [mean_distance(decode(c.image), parent) for c in children.images]
    far = [mean_distance(decode(u.image), parent) for u in unrelated.images]
    assert max(near) < min(far), (near, far)


def test_a_mask_keeps_every_pixel_outside_it(plus: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    source = photo(96, 80)
    mask = np.zeros((96, 80), dtype=np.uint8)
    mask[20:70, 15:65] = 255
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")

    response = plus.Edit(
        edit_request(image=encode(source), mask=image_pb2.Image(data=buffer.getvalue(), mime_type="image/png")),
        timeout=60,
    )

    edited = decode(response.images[0].image)
    outside = mask == 0
    np.testing.assert_array_equal(edited[outside], source.astype(np.int16)[outside])
    assert mean_distance(edited[~outside], source[~outside]) > 3.0


def test_strength_is_refused_naming_the_field(plus: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    error = rpc_error(lambda: plus.Edit(edit_request(strength=0.5), timeout=60))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("strength:")
