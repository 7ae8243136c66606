import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from inpaint.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_TARGET_UNSPECIFIED: _ClassVar[FaceTarget]
    FACE_TARGET_MASK_OVERLAP: _ClassVar[FaceTarget]
    FACE_TARGET_INDEX: _ClassVar[FaceTarget]
    FACE_TARGET_LARGEST: _ClassVar[FaceTarget]
    FACE_TARGET_REFERENCE: _ClassVar[FaceTarget]

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_GLOBAL: _ClassVar[Stage]
    STAGE_LOCAL: _ClassVar[Stage]
    STAGE_FACE: _ClassVar[Stage]

class CandidateMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_MODE_UNSPECIFIED: _ClassVar[CandidateMode]
    CANDIDATE_MODE_RAW_SWAP: _ClassVar[CandidateMode]
    CANDIDATE_MODE_REFINE: _ClassVar[CandidateMode]
    CANDIDATE_MODE_NOISE_NEIGHBOURHOOD: _ClassVar[CandidateMode]
    CANDIDATE_MODE_RENOISE: _ClassVar[CandidateMode]

class CandidateStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_STATUS_UNSPECIFIED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_SCORED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_NOT_SCORED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_SKIPPED: _ClassVar[CandidateStatus]
    CANDIDATE_STATUS_GENERATION_FAILED: _ClassVar[CandidateStatus]

class ProgressKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROGRESS_KIND_UNSPECIFIED: _ClassVar[ProgressKind]
    PROGRESS_KIND_STAGE_STARTED: _ClassVar[ProgressKind]
    PROGRESS_KIND_CANDIDATE_GENERATED: _ClassVar[ProgressKind]
    PROGRESS_KIND_CANDIDATE_SCORED: _ClassVar[ProgressKind]
    PROGRESS_KIND_STAGE_SKIPPED: _ClassVar[ProgressKind]
    PROGRESS_KIND_STAGE_FAILED: _ClassVar[ProgressKind]
    PROGRESS_KIND_DONE: _ClassVar[ProgressKind]
    PROGRESS_KIND_QUEUED: _ClassVar[ProgressKind]
FACE_TARGET_UNSPECIFIED: FaceTarget
FACE_TARGET_MASK_OVERLAP: FaceTarget
FACE_TARGET_INDEX: FaceTarget
FACE_TARGET_LARGEST: FaceTarget
FACE_TARGET_REFERENCE: FaceTarget
STAGE_UNSPECIFIED: Stage
STAGE_GLOBAL: Stage
STAGE_LOCAL: Stage
STAGE_FACE: Stage
CANDIDATE_MODE_UNSPECIFIED: CandidateMode
CANDIDATE_MODE_RAW_SWAP: CandidateMode
CANDIDATE_MODE_REFINE: CandidateMode
CANDIDATE_MODE_NOISE_NEIGHBOURHOOD: CandidateMode
CANDIDATE_MODE_RENOISE: CandidateMode
CANDIDATE_STATUS_UNSPECIFIED: CandidateStatus
CANDIDATE_STATUS_SCORED: CandidateStatus
CANDIDATE_STATUS_NOT_SCORED: CandidateStatus
CANDIDATE_STATUS_SKIPPED: CandidateStatus
CANDIDATE_STATUS_GENERATION_FAILED: CandidateStatus
PROGRESS_KIND_UNSPECIFIED: ProgressKind
PROGRESS_KIND_STAGE_STARTED: ProgressKind
PROGRESS_KIND_CANDIDATE_GENERATED: ProgressKind
PROGRESS_KIND_CANDIDATE_SCORED: ProgressKind
PROGRESS_KIND_STAGE_SKIPPED: ProgressKind
PROGRESS_KIND_STAGE_FAILED: ProgressKind
PROGRESS_KIND_DONE: ProgressKind
PROGRESS_KIND_QUEUED: ProgressKind

class TaskImages(_message.Message):
    __slots__ = ("init_image", "mask", "character_image", "character_images", "reference_face")
    INIT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_IMAGES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FACE_FIELD_NUMBER: _ClassVar[int]
    init_image: _image_pb2.Image
    mask: _image_pb2.Image
    character_image: _image_pb2.Image
    character_images: _containers.RepeatedCompositeFieldContainer[_image_pb2.Image]
    reference_face: _image_pb2.Image
    def __init__(self, init_image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., mask: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., character_image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., character_images: _Optional[_Iterable[_Union[_image_pb2.Image, _Mapping]]] = ..., reference_face: _Optional[_Union[_image_pb2.Image, _Mapping]] = ...) -> None: ...

class FaceSettings(_message.Message):
    __slots__ = ("target", "target_index", "min_identity_cosine", "min_reference_cosine", "colour_match", "swap_size")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_INDEX_FIELD_NUMBER: _ClassVar[int]
    MIN_IDENTITY_COSINE_FIELD_NUMBER: _ClassVar[int]
    MIN_REFERENCE_COSINE_FIELD_NUMBER: _ClassVar[int]
    COLOUR_MATCH_FIELD_NUMBER: _ClassVar[int]
    SWAP_SIZE_FIELD_NUMBER: _ClassVar[int]
    target: FaceTarget
    target_index: int
    min_identity_cosine: float
    min_reference_cosine: float
    colour_match: bool
    swap_size: int
    def __init__(self, target: _Optional[_Union[FaceTarget, str]] = ..., target_index: _Optional[int] = ..., min_identity_cosine: _Optional[float] = ..., min_reference_cosine: _Optional[float] = ..., colour_match: _Optional[bool] = ..., swap_size: _Optional[int] = ...) -> None: ...

class SearchSettings(_message.Message):
    __slots__ = ("k_global", "m_global", "k_local", "weight_consistency", "weight_realism", "weight_identity", "num_inference_steps", "true_cfg_scale", "feather_px", "erosion_px", "seed")
    K_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    M_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    K_LOCAL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_REALISM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    TRUE_CFG_SCALE_FIELD_NUMBER: _ClassVar[int]
    FEATHER_PX_FIELD_NUMBER: _ClassVar[int]
    EROSION_PX_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    k_global: int
    m_global: int
    k_local: int
    weight_consistency: float
    weight_realism: float
    weight_identity: float
    num_inference_steps: int
    true_cfg_scale: float
    feather_px: float
    erosion_px: int
    seed: int
    def __init__(self, k_global: _Optional[int] = ..., m_global: _Optional[int] = ..., k_local: _Optional[int] = ..., weight_consistency: _Optional[float] = ..., weight_realism: _Optional[float] = ..., weight_identity: _Optional[float] = ..., num_inference_steps: _Optional[int] = ..., true_cfg_scale: _Optional[float] = ..., feather_px: _Optional[float] = ..., erosion_px: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class InpaintRequest(_message.Message):
    __slots__ = ("request_id", "images", "task_id", "settings", "return_candidate_images", "face")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    RETURN_CANDIDATE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    images: TaskImages
    task_id: str
    settings: SearchSettings
    return_candidate_images: bool
    face: FaceSettings
    def __init__(self, request_id: _Optional[str] = ..., images: _Optional[_Union[TaskImages, _Mapping]] = ..., task_id: _Optional[str] = ..., settings: _Optional[_Union[SearchSettings, _Mapping]] = ..., return_candidate_images: _Optional[bool] = ..., face: _Optional[_Union[FaceSettings, _Mapping]] = ...) -> None: ...

class StreamInpaintRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: InpaintRequest
    def __init__(self, request: _Optional[_Union[InpaintRequest, _Mapping]] = ...) -> None: ...

class Score(_message.Message):
    __slots__ = ("signal", "value", "source", "fallback", "reason")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    signal: str
    value: float
    source: str
    fallback: bool
    reason: str
    def __init__(self, signal: _Optional[str] = ..., value: _Optional[float] = ..., source: _Optional[str] = ..., fallback: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("candidate_id", "stage", "parent_id", "seed", "mode", "status", "scores", "potential", "degraded")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    POTENTIAL_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    stage: Stage
    parent_id: str
    seed: int
    mode: CandidateMode
    status: CandidateStatus
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    potential: float
    degraded: bool
    def __init__(self, candidate_id: _Optional[str] = ..., stage: _Optional[_Union[Stage, str]] = ..., parent_id: _Optional[str] = ..., seed: _Optional[int] = ..., mode: _Optional[_Union[CandidateMode, str]] = ..., status: _Optional[_Union[CandidateStatus, str]] = ..., scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ..., potential: _Optional[float] = ..., degraded: _Optional[bool] = ...) -> None: ...

class MaskRefinement(_message.Message):
    __slots__ = ("refined", "reason")
    REFINED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    refined: bool
    reason: str
    def __init__(self, refined: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class InpaintResponse(_message.Message):
    __slots__ = ("request_id", "image", "refined_mask", "mask_refinement", "best_candidate_id", "candidates", "ledger_json", "timings", "stand_in_models", "degraded", "notes", "replayed", "candidate_images")
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _duration_pb2.Duration
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    REFINED_MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_REFINEMENT_FIELD_NUMBER: _ClassVar[int]
    BEST_CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    LEDGER_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    STAND_IN_MODELS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    image: _image_pb2.Image
    refined_mask: _image_pb2.Image
    mask_refinement: MaskRefinement
    best_candidate_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    ledger_json: str
    timings: _containers.MessageMap[str, _duration_pb2.Duration]
    stand_in_models: _containers.RepeatedScalarFieldContainer[str]
    degraded: bool
    notes: _containers.RepeatedScalarFieldContainer[str]
    replayed: bool
    candidate_images: _containers.RepeatedCompositeFieldContainer[CandidateImage]
    def __init__(self, request_id: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., refined_mask: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., mask_refinement: _Optional[_Union[MaskRefinement, _Mapping]] = ..., best_candidate_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., ledger_json: _Optional[str] = ..., timings: _Optional[_Mapping[str, _duration_pb2.Duration]] = ..., stand_in_models: _Optional[_Iterable[str]] = ..., degraded: _Optional[bool] = ..., notes: _Optional[_Iterable[str]] = ..., replayed: _Optional[bool] = ..., candidate_images: _Optional[_Iterable[_Union[CandidateImage, _Mapping]]] = ...) -> None: ...

class CandidateImage(_message.Message):
    __slots__ = ("candidate_id", "image")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    image: _image_pb2.Image
    def __init__(self, candidate_id: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ...) -> None: ...

class ProgressEvent(_message.Message):
    __slots__ = ("kind", "stage", "candidate_id", "planned", "generated", "scored", "potential", "elapsed", "detail", "queue_position")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    POTENTIAL_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    kind: ProgressKind
    stage: Stage
    candidate_id: str
    planned: int
    generated: int
    scored: int
    potential: float
    elapsed: _duration_pb2.Duration
    detail: str
    queue_position: int
    def __init__(self, kind: _Optional[_Union[ProgressKind, str]] = ..., stage: _Optional[_Union[Stage, str]] = ..., candidate_id: _Optional[str] = ..., planned: _Optional[int] = ..., generated: _Optional[int] = ..., scored: _Optional[int] = ..., potential: _Optional[float] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., detail: _Optional[str] = ..., queue_position: _Optional[int] = ...) -> None: ...

class StreamInpaintResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: ProgressEvent
    result: InpaintResponse
    def __init__(self, progress: _Optional[_Union[ProgressEvent, _Mapping]] = ..., result: _Optional[_Union[InpaintResponse, _Mapping]] = ...) -> None: ...
