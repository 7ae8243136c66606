from inpaint.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_METHOD_UNSPECIFIED: _ClassVar[ScoreMethod]
    SCORE_METHOD_DIGIT_LOGITS: _ClassVar[ScoreMethod]
    SCORE_METHOD_PARSED_TEXT: _ClassVar[ScoreMethod]
    SCORE_METHOD_FALLBACK: _ClassVar[ScoreMethod]
SCORE_METHOD_UNSPECIFIED: ScoreMethod
SCORE_METHOD_DIGIT_LOGITS: ScoreMethod
SCORE_METHOD_PARSED_TEXT: ScoreMethod
SCORE_METHOD_FALLBACK: ScoreMethod

class ModelInfo(_message.Message):
    __slots__ = ("name", "adapter", "revision", "standin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STANDIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    adapter: str
    revision: str
    standin: bool
    def __init__(self, name: _Optional[str] = ..., adapter: _Optional[str] = ..., revision: _Optional[str] = ..., standin: _Optional[bool] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("image", "question", "max_new_tokens", "request_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    question: str
    max_new_tokens: int
    request_id: str
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., question: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("answer", "model", "image_encoded")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ENCODED_FIELD_NUMBER: _ClassVar[int]
    answer: str
    model: ModelInfo
    image_encoded: bool
    def __init__(self, answer: _Optional[str] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., image_encoded: _Optional[bool] = ...) -> None: ...

class ScoreQuery(_message.Message):
    __slots__ = ("image", "question", "method")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    image: _image_pb2.Image
    question: str
    method: ScoreMethod
    def __init__(self, image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., question: _Optional[str] = ..., method: _Optional[_Union[ScoreMethod, str]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("queries", "request_id")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[ScoreQuery]
    request_id: str
    def __init__(self, queries: _Optional[_Iterable[_Union[ScoreQuery, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("score", "method", "raw_answer", "fallback", "fallback_reason", "answer_probabilities", "answer_mass", "image_encoded")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RAW_ANSWER_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    ANSWER_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ANSWER_MASS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ENCODED_FIELD_NUMBER: _ClassVar[int]
    score: float
    method: ScoreMethod
    raw_answer: str
    fallback: bool
    fallback_reason: str
    answer_probabilities: _containers.RepeatedScalarFieldContainer[float]
    answer_mass: float
    image_encoded: bool
    def __init__(self, score: _Optional[float] = ..., method: _Optional[_Union[ScoreMethod, str]] = ..., raw_answer: _Optional[str] = ..., fallback: _Optional[bool] = ..., fallback_reason: _Optional[str] = ..., answer_probabilities: _Optional[_Iterable[float]] = ..., answer_mass: _Optional[float] = ..., image_encoded: _Optional[bool] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    model: ModelInfo
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...
