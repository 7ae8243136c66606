"""One seed gives one image whatever the batch, byte for byte on a CPU, for both pipeline families.

Batched CPU matmuls and convolutions round a row differently with the batch size (measured on the stand-in:
up to a grey level at 64x64, 20 at larger sizes); the server runs each seed alone through the transformer
and the VAE (`batch_invariant`, the default), so this holds exactly."""

from __future__ import annotations

import numpy as np
import pytest
from inpaint.v1 import image_pb2, qwen_edit_pb2_grpc

from stack.process import ModelServerProcess
from tests.qwen_edit.conftest import edit_request, encode


def noise_image() -> image_pb2.Image:
    # A noise picture at 64x64: the case where batched kernels changed a seed's image before.
    return encode(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))


@pytest.fixture(params=["edit", "edit-plus"])
def any_stub(
    request: pytest.FixtureRequest, stub: qwen_edit_pb2_grpc.QwenEditServiceStub
) -> qwen_edit_pb2_grpc.QwenEditServiceStub:
    if request.param == "edit":
        return stub
    plus: ModelServerProcess = request.getfixturevalue("qwen_plus_server")
    return qwen_edit_pb2_grpc.QwenEditServiceStub(plus.channel())


def test_a_seed_alone_equals_the_same_seed_inside_a_batch_byte_for_byte(
    any_stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    alone = any_stub.Edit(edit_request(seeds=[5], image=noise_image()), timeout=120)
    batch = any_stub.Edit(edit_request(seeds=[3, 5, 9], image=noise_image()), timeout=120)

    assert batch.images[1].seed == 5
    assert batch.images[1].image.data == alone.images[0].image.data


def test_the_same_request_twice_is_byte_identical(any_stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    first = any_stub.Edit(edit_request(seeds=[3, 5, 9], image=noise_image()), timeout=120)
    second = any_stub.Edit(edit_request(seeds=[3, 5, 9], image=noise_image()), timeout=120)

    assert [i.image.data for i in first.images] == [i.image.data for i in second.images]


def test_a_masked_edit_is_reproducible_and_batch_invariant(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    """The orchestrator always sends the refined mask (the inpainting pipeline, which samples the VAE posterior
    of its condition images): before, every call drew that sample from torch's global RNG and differed."""
    mask = encode(np.full((64, 64, 3), 255, dtype=np.uint8))
    first = stub.Edit(edit_request(seeds=[3, 5, 9], image=noise_image(), mask=mask), timeout=120)
    second = stub.Edit(edit_request(seeds=[3, 5, 9], image=noise_image(), mask=mask), timeout=120)
    alone = stub.Edit(edit_request(seeds=[5], image=noise_image(), mask=mask), timeout=120)

    assert [i.image.data for i in first.images] == [i.image.data for i in second.images]
    assert first.images[1].image.data == alone.images[0].image.data
