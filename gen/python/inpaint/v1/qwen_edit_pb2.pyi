from inpaint.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat

class NoiseNeighbourhood(_message.Message):
    __slots__ = ("parent_seed", "parent_weight")
    PARENT_SEED_FIELD_NUMBER: _ClassVar[int]
    PARENT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    parent_seed: int
    parent_weight: float
    def __init__(self, parent_seed: _Optional[int] = ..., parent_weight: _Optional[float] = ...) -> None: ...

class EditRequest(_message.Message):
    __slots__ = ("image", "mask", "prompt", "negative_prompt", "num_inference_steps", "true_cfg_scale", "width", "height", "seeds", "strength", "neighbourhood", "output_format")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    TRUE_CFG_SCALE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURHOOD_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    mask: _image_pb2.Image
    prompt: str
    negative_prompt: str
    num_inference_steps: int
    true_cfg_scale: float
    width: int
    height: int
    seeds: _containers.RepeatedScalarFieldContainer[int]
    strength: float
    neighbourhood: NoiseNeighbourhood
    output_format: ImageFormat
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., mask: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., num_inference_steps: _Optional[int] = ..., true_cfg_scale: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seeds: _Optional[_Iterable[int]] = ..., strength: _Optional[float] = ..., neighbourhood: _Optional[_Union[NoiseNeighbourhood, _Mapping]] = ..., output_format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class EditedImage(_message.Message):
    __slots__ = ("image", "seed", "batch_seconds", "batch_size", "noise_cosine_to_parent")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NOISE_COSINE_TO_PARENT_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    seed: int
    batch_seconds: float
    batch_size: int
    noise_cosine_to_parent: float
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., seed: _Optional[int] = ..., batch_seconds: _Optional[float] = ..., batch_size: _Optional[int] = ..., noise_cosine_to_parent: _Optional[float] = ...) -> None: ...

class EditResponse(_message.Message):
    __slots__ = ("images", "stand_in", "model", "pipeline", "prompt_encoding_seconds", "total_seconds", "denoising_steps", "seconds_per_step", "lora", "condition_width", "condition_height")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    STAND_IN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ENCODING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DENOISING_STEPS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    CONDITION_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CONDITION_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[EditedImage]
    stand_in: bool
    model: str
    pipeline: str
    prompt_encoding_seconds: float
    total_seconds: float
    denoising_steps: int
    seconds_per_step: float
    lora: LoraInfo
    condition_width: int
    condition_height: int
    def __init__(self, images: _Optional[_Iterable[_Union[EditedImage, _Mapping]]] = ..., stand_in: _Optional[bool] = ..., model: _Optional[str] = ..., pipeline: _Optional[str] = ..., prompt_encoding_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ..., denoising_steps: _Optional[int] = ..., seconds_per_step: _Optional[float] = ..., lora: _Optional[_Union[LoraInfo, _Mapping]] = ..., condition_width: _Optional[int] = ..., condition_height: _Optional[int] = ...) -> None: ...

class LoraInfo(_message.Message):
    __slots__ = ("name", "path", "scale")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    scale: float
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., scale: _Optional[float] = ...) -> None: ...
