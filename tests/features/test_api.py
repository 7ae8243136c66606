"""The face features through the public API, against real local processes of every component (stand-ins)."""

from __future__ import annotations

import io
import json
from typing import Any

import grpc
import numpy as np
import pytest
from inpaint.v1 import inpaint_pb2
from PIL import Image

from orchestrator import sample_photos
from tests.orchestrator.conftest import LiveStack, image

GREY = np.full((200, 200, 3), 128, np.uint8)  # no face, even for the stand-in detector


def _png(array: np.ndarray) -> Any:
    return image(sample_photos.encode_png(array))


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _images(**fields: Any) -> inpaint_pb2.TaskImages:
    images = inpaint_pb2.TaskImages(init_image=_png(sample_photos.astronaut()))
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(images, name).extend(value)
        else:
            getattr(images, name).CopyFrom(value)
    return images


def _refused(live: LiveStack, request: inpaint_pb2.InpaintRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        live.stub().Inpaint(request, timeout=120)
    return error.value


@pytest.fixture(scope="module")
def no_mask_several_photos(live: LiveStack) -> inpaint_pb2.InpaintResponse:
    tom = sample_photos.tom_hanks()
    request = inpaint_pb2.InpaintRequest(
        request_id="features-1",
        images=_images(character_images=[_png(tom), _png(tom[:, ::-1].copy()), _png((tom * 0.8).astype(np.uint8))]),
        face=inpaint_pb2.FaceSettings(min_identity_cosine=0.0),
        return_candidate_images=True,
    )
    response: inpaint_pb2.InpaintResponse = live.stub().Inpaint(request, timeout=300)
    return response


def test_without_a_mask_the_result_changes_only_inside_the_mask_built_from_the_face(
    no_mask_several_photos: inpaint_pb2.InpaintResponse,
) -> None:
    response = no_mask_several_photos
    init = sample_photos.astronaut()
    built = _decode(response.refined_mask.data)[..., 0] > 127
    assert built.any() and response.mask_refinement.refined
    assert response.mask_refinement.reason.startswith("no mask given")
    changed = (_decode(response.image.data) != init).any(axis=2)
    assert changed.any() and not (changed & ~built).any()


def test_the_ledger_says_what_the_face_stage_applied(no_mask_several_photos: inpaint_pb2.InpaintResponse) -> None:
    ledger = json.loads(no_mask_several_photos.ledger_json)
    raw_swap = ledger["candidates"][0]
    info = raw_swap["generator_info"]
    assert raw_swap["candidate_id"] == "g0"
    assert info["character_photos"] == 3 and info["mask_source"] == "built from the face"
    assert info["target_choice"] == "largest" and info["colour_match"] == "applied" and info["swap_size"] == 128
    assert info["hair_model"] == "face parser" and info["occluder"] == "xseg_1"
    assert "kept from init_image (face parser bisenet_resnet_34, occluder xseg_1)" in (
        no_mask_several_photos.mask_refinement.reason
    )
    for candidate in ledger["candidates"]:
        if candidate["candidate_id"] in {c.candidate_id for c in no_mask_several_photos.candidate_images}:
            assert candidate["generator_info"]["edge_delta_e"] >= 0.0


def test_colour_match_and_pixel_boost_are_chosen_per_request(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(
        images=_images(mask=_png(sample_photos.astronaut_face_mask()), character_image=_png(sample_photos.tom_hanks())),
        face=inpaint_pb2.FaceSettings(colour_match=False, swap_size=512),
        settings=inpaint_pb2.SearchSettings(k_global=1, m_global=0, k_local=0),
    )
    response = live.stub().Inpaint(request, timeout=300)
    info = json.loads(response.ledger_json)["candidates"][0]["generator_info"]
    assert info["colour_match"] == "off" and info["mask_source"] == "given" and info["target_choice"] == "mask_overlap"
    assert info["swap_size"] == 512
    changed = (_decode(response.image.data) != sample_photos.astronaut()).any(axis=2)
    assert changed.any() and not (changed & ~(_decode(response.refined_mask.data)[..., 0] > 127)).any()


def test_a_photo_of_another_person_is_invalid_argument_naming_it(live: LiveStack) -> None:
    tom = _png(sample_photos.tom_hanks())
    request = inpaint_pb2.InpaintRequest(
        images=_images(character_images=[tom, tom, _png(sample_photos.astronaut())]),
        face=inpaint_pb2.FaceSettings(min_identity_cosine=0.5),
    )
    error = _refused(live, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("images.character_images[2]: looks like another person")


def test_a_photo_without_a_face_is_failed_precondition_naming_it(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(images=_images(character_images=[_png(sample_photos.tom_hanks()), _png(GREY)]))
    error = _refused(live, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (error.details() or "").startswith("images.character_images[1]")


def test_a_face_index_out_of_range_names_the_field_and_the_faces_found(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(
        images=_images(character_image=_png(sample_photos.tom_hanks())),
        face=inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_INDEX, target_index=100_000),
    )
    error = _refused(live, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert details.startswith("face.target_index: is 100000 but init_image has") and "face(s)" in details


def test_a_reference_face_that_matches_no_one_is_refused(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(
        images=_images(character_image=_png(sample_photos.tom_hanks()), reference_face=_png(sample_photos.tom_hanks())),
        face=inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_REFERENCE, min_reference_cosine=0.999),
    )
    error = _refused(live, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("images.reference_face: matches none of the")


def test_the_face_closest_to_the_reference_is_chosen(live: LiveStack) -> None:
    request = inpaint_pb2.InpaintRequest(
        images=_images(character_image=_png(sample_photos.tom_hanks()), reference_face=_png(sample_photos.astronaut())),
        face=inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_REFERENCE),
        settings=inpaint_pb2.SearchSettings(k_global=1, m_global=0, k_local=0),
    )
    info = json.loads(live.stub().Inpaint(request, timeout=300).ledger_json)["candidates"][0]["generator_info"]
    assert info["target_choice"] == "reference" and info["reference_cosine"] == pytest.approx(1.0, abs=1e-3)


TOM = _png(sample_photos.tom_hanks())


@pytest.mark.parametrize(
    ("images", "face", "field"),
    [
        (_images(character_image=TOM, character_images=[TOM]), None, "images.character_images"),
        (_images(character_images=[TOM] * 9), None, "images.character_images"),
        (_images(), None, "images.character_image"),
        (_images(character_images=[TOM, image(b"not an image")]), None, "images.character_images[1]"),
        (_images(character_image=TOM, reference_face=image(b"junk")), None, "images.reference_face"),
        (_images(character_image=TOM), inpaint_pb2.FaceSettings(swap_size=300), "face.swap_size"),
        (_images(character_image=TOM), inpaint_pb2.FaceSettings(target_index=1), "face.target_index"),
        (
            _images(character_image=TOM),
            inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_INDEX),
            "face.target_index",
        ),
        (
            _images(character_image=TOM),
            inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_REFERENCE),
            "images.reference_face",
        ),
        (
            _images(character_image=TOM),
            inpaint_pb2.FaceSettings(target=inpaint_pb2.FACE_TARGET_MASK_OVERLAP),
            "images.mask",
        ),
        (_images(character_image=TOM), inpaint_pb2.FaceSettings(min_identity_cosine=2.0), "face.min_identity_cosine"),
        (
            _images(character_image=TOM),
            inpaint_pb2.FaceSettings(min_reference_cosine=float("nan")),
            "face.min_reference_cosine",
        ),
    ],
    ids=[
        "both character fields",
        "too many photos",
        "no character",
        "corrupt listed photo",
        "corrupt reference",
        "swap size",
        "index without its target",
        "index target without index",
        "reference target without photo",
        "mask target without mask",
        "identity threshold",
        "reference threshold",
    ],
)
def test_bad_face_inputs_are_invalid_argument_naming_the_field(
    live: LiveStack, images: inpaint_pb2.TaskImages, face: inpaint_pb2.FaceSettings | None, field: str
) -> None:
    request = inpaint_pb2.InpaintRequest(images=images, face=face)
    error = _refused(live, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert (error.details() or "").startswith(f"{field}:"), error.details()
