"""The Edit RPC against a real server process running the tiny stand-in pipeline."""

from __future__ import annotations

import io

import numpy as np
import pytest
from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from stack.process import ModelServerProcess
from tests.qwen_edit.conftest import MAX_BATCH, decode, edit_request, encode, photo


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_one_output_per_seed_in_request_order_at_the_requested_size(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    response = stub.Edit(edit_request(seeds=[5, 3, 9], width=48, height=32), timeout=60)

    assert [image.seed for image in response.images] == [5, 3, 9]
    for image in response.images:
        assert image.image.mime_type == "image/png"
        assert decode(image.image).shape == (32, 48, 3)
        assert image.batch_size == 3
        assert image.batch_seconds > 0
        assert image.noise_cosine_to_parent == pytest.approx(1.0)
    assert response.pipeline == "QwenImageEditPipeline"
    assert response.denoising_steps == 4
    assert response.seconds_per_step > 0


def test_response_says_it_came_from_a_stand_in(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    response = stub.Edit(edit_request(), timeout=60)

    assert response.stand_in is True
    assert response.model == "qwen_edit"


def test_default_output_size_is_the_image_own_size(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    response = stub.Edit(edit_request(image=encode(photo(64, 128))), timeout=60)

    assert decode(response.images[0].image).shape == (64, 128, 3)
    assert (response.condition_width, response.condition_height) == (128, 64)


def test_an_unsized_request_snaps_the_image_size_to_the_nearest_allowed(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    # 61 and 83 are not multiples of the stand-in's 8: the nearest allowed are 64 and 80.
    response = stub.Edit(edit_request(image=encode(photo(61, 83))), timeout=60)

    assert decode(response.images[0].image).shape == (64, 80, 3)


def test_same_request_gives_identical_images(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    first = stub.Edit(edit_request(seeds=[11, 12]), timeout=60)
    second = stub.Edit(edit_request(seeds=[11, 12]), timeout=60)

    for a, b in zip(first.images, second.images, strict=True):
        np.testing.assert_array_equal(decode(a.image), decode(b.image))


def test_different_seeds_give_different_images(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    response = stub.Edit(edit_request(seeds=[1, 2]), timeout=60)

    assert mean_distance(decode(response.images[0].image), decode(response.images[1].image)) > 3.0


def test_batched_seeds_equal_one_seed_at_a_time(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    # Six seeds with a maximum batch of four: two batched calls (4 + 2), each compared with its own single run.
    seeds = [21, 22, 23, 24, 25, 26]
    batched = stub.Edit(edit_request(seeds=seeds), timeout=120)
    assert [image.batch_size for image in batched.images] == [MAX_BATCH] * MAX_BATCH + [len(seeds) - MAX_BATCH] * 2

    for seed in (22, 26):
        single = stub.Edit(edit_request(seeds=[seed]), timeout=60)
        in_batch = decode(batched.images[seeds.index(seed)].image)
        alone = decode(single.images[0].image)
        # Identical on this CPU; a different BLAS may round a batched matmul differently by a grey level.
        assert np.abs(in_batch - alone).max() <= 1, f"seed {seed} differs between batched and single runs"


def test_neighbourhood_children_are_nearer_their_parent_than_unrelated_seeds(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    parent = decode(stub.Edit(edit_request(seeds=[7]), timeout=60).images[0].image)
    child_seeds = [101, 102, 103, 104]
    unrelated = stub.Edit(edit_request(seeds=child_seeds), timeout=60)
    children = stub.Edit(
        edit_request(
            seeds=child_seeds, neighbourhood=qwen_edit_pb2.NoiseNeighbourhood(parent_seed=7, parent_weight=0.95)
        ),
        timeout=60,
    )

    for child in children.images:
        assert child.noise_cosine_to_parent == pytest.approx(0.95, abs=0.03)
    child_distances = [mean_distance(decode(c.image), parent) for c in children.images]
    unrelated_distances = [mean_distance(decode(u.image), parent) for u in unrelated.images]
    assert max(child_distances) < min(unrelated_distances), (child_distances, unrelated_distances)
    assert np.mean(child_distances) < 0.6 * np.mean(unrelated_distances)


def test_strength_runs_the_inpaint_pipeline_for_part_of_the_steps(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    response = stub.Edit(edit_request(seeds=[1, 2], num_inference_steps=8, strength=0.5), timeout=60)

    assert response.pipeline == "QwenImageEditInpaintPipeline"
    assert response.denoising_steps == 4
    assert len(response.images) == 2


def test_partial_renoising_stays_nearer_the_parent_than_full_generation(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    # The parent is one output; refining it at low strength starts from its own latents.
    parent_image = stub.Edit(edit_request(seeds=[3]), timeout=60).images[0].image
    parent = decode(parent_image)
    low = stub.Edit(edit_request(seeds=[40, 41], image=parent_image, strength=0.3, num_inference_steps=10), timeout=60)
    full = stub.Edit(edit_request(seeds=[40, 41], image=parent_image, strength=1.0, num_inference_steps=10), timeout=60)

    low_distance = np.mean([mean_distance(decode(i.image), parent) for i in low.images])
    full_distance = np.mean([mean_distance(decode(i.image), parent) for i in full.images])
    assert low_distance < full_distance


def test_mask_runs_the_inpaint_pipeline(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    mask = np.zeros((96, 80), dtype=np.uint8)
    mask[20:70, 15:65] = 255
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")

    response = stub.Edit(
        edit_request(
            seeds=[1], mask=image_pb2.Image(data=buffer.getvalue(), mime_type="image/png"), width=64, height=64
        ),
        timeout=60,
    )

    assert response.pipeline == "QwenImageEditInpaintPipeline"
    assert decode(response.images[0].image).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("output_format", "mime_type"),
    [(qwen_edit_pb2.IMAGE_FORMAT_JPEG, "image/jpeg"), (qwen_edit_pb2.IMAGE_FORMAT_WEBP, "image/webp")],
)
def test_output_format(stub: qwen_edit_pb2_grpc.QwenEditServiceStub, output_format: int, mime_type: str) -> None:
    response = stub.Edit(edit_request(output_format=output_format), timeout=60)

    assert response.images[0].image.mime_type == mime_type
    assert Image.open(io.BytesIO(response.images[0].image.data)).format == mime_type.split("/")[1].upper()


def test_a_4k_png_fits_the_message_limits(stub: qwen_edit_pb2_grpc.QwenEditServiceStub) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    request = edit_request(image=encode(noise), num_inference_steps=1, width=64, height=64)
    assert request.ByteSize() > 20 * 1024 * 1024  # well past gRPC's default 4 MiB

    response = stub.Edit(request, timeout=120)

    assert len(response.images) == 1


def test_prompt_encoding_is_reused_for_the_same_image_and_prompt(
    stub: qwen_edit_pb2_grpc.QwenEditServiceStub,
) -> None:
    request = edit_request(image=encode(photo(seed=99)), prompt="a prompt no other test sends")
    first = stub.Edit(request, timeout=60)
    second = stub.Edit(request, timeout=60)

    assert first.prompt_encoding_seconds > 0
    assert second.prompt_encoding_seconds == 0


def test_metrics_count_requests_and_batches(
    qwen_server: ModelServerProcess, stub: qwen_edit_pb2_grpc.QwenEditServiceStub
) -> None:
    key = "qwen_edit_requests_total{code=OK,method=/inpaint.v1.QwenEditService/Edit}"
    before = qwen_server.metrics()
    stub.Edit(edit_request(seeds=[1, 2, 3]), timeout=60)
    after = qwen_server.metrics()

    assert after[key] == before.get(key, 0) + 1
    assert after["qwen_edit_batch_size_sum"] == before.get("qwen_edit_batch_size_sum", 0) + 3
    assert after["qwen_edit_queue_depth"] == 0
