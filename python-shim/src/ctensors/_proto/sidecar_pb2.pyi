from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERR_CT_FORMAT: _ClassVar[ErrorCode]
    ERR_CT_UNSUPPORTED: _ClassVar[ErrorCode]
    ERR_CT_SIGNATURE_INVALID: _ClassVar[ErrorCode]
    ERR_CT_UNTRUSTED_SIGNER: _ClassVar[ErrorCode]
    ERR_CT_INTEGRITY: _ClassVar[ErrorCode]
    ERR_CT_NOT_CONFIDENTIAL: _ClassVar[ErrorCode]
    ERR_CT_DECRYPTION_FAILED: _ClassVar[ErrorCode]
    ERR_CT_KEY_NOT_FOUND: _ClassVar[ErrorCode]
    ERR_CT_KEY_INVALID: _ClassVar[ErrorCode]
    ERR_CT_POLICY_DENIED: _ClassVar[ErrorCode]
    ERR_CT_POLICY_UNSUPPORTED: _ClassVar[ErrorCode]
    ERR_CT_IO: _ClassVar[ErrorCode]
    ERR_CT_HUB: _ClassVar[ErrorCode]
    ERR_CT_USAGE: _ClassVar[ErrorCode]
    ERR_CT_UNAUTHENTICATED: _ClassVar[ErrorCode]
    ERR_CT_BAD_REQUEST: _ClassVar[ErrorCode]
    ERR_CT_MODEL_NOT_OPEN: _ClassVar[ErrorCode]
    ERR_CT_INTERNAL: _ClassVar[ErrorCode]

class LoadMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAD_MODE_UNSPECIFIED: _ClassVar[LoadMode]
    LOAD_MODE_RESIDENT: _ClassVar[LoadMode]
    LOAD_MODE_STREAMING: _ClassVar[LoadMode]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERR_CT_FORMAT: ErrorCode
ERR_CT_UNSUPPORTED: ErrorCode
ERR_CT_SIGNATURE_INVALID: ErrorCode
ERR_CT_UNTRUSTED_SIGNER: ErrorCode
ERR_CT_INTEGRITY: ErrorCode
ERR_CT_NOT_CONFIDENTIAL: ErrorCode
ERR_CT_DECRYPTION_FAILED: ErrorCode
ERR_CT_KEY_NOT_FOUND: ErrorCode
ERR_CT_KEY_INVALID: ErrorCode
ERR_CT_POLICY_DENIED: ErrorCode
ERR_CT_POLICY_UNSUPPORTED: ErrorCode
ERR_CT_IO: ErrorCode
ERR_CT_HUB: ErrorCode
ERR_CT_USAGE: ErrorCode
ERR_CT_UNAUTHENTICATED: ErrorCode
ERR_CT_BAD_REQUEST: ErrorCode
ERR_CT_MODEL_NOT_OPEN: ErrorCode
ERR_CT_INTERNAL: ErrorCode
LOAD_MODE_UNSPECIFIED: LoadMode
LOAD_MODE_RESIDENT: LoadMode
LOAD_MODE_STREAMING: LoadMode

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("version", "open_models", "require_encrypted", "trusted_signers")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OPEN_MODELS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_SIGNERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    open_models: _containers.RepeatedScalarFieldContainer[str]
    require_encrypted: bool
    trusted_signers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., open_models: _Optional[_Iterable[str]] = ..., require_encrypted: _Optional[bool] = ..., trusted_signers: _Optional[_Iterable[str]] = ...) -> None: ...

class OpenModelRequest(_message.Message):
    __slots__ = ("source", "refresh", "session_id")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    source: str
    refresh: bool
    session_id: str
    def __init__(self, source: _Optional[str] = ..., refresh: _Optional[bool] = ..., session_id: _Optional[str] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("name", "dtype", "shape", "byte_size", "encrypted", "file")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    byte_size: int
    encrypted: bool
    file: str
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., byte_size: _Optional[int] = ..., encrypted: _Optional[bool] = ..., file: _Optional[str] = ...) -> None: ...

class OpenModelResponse(_message.Message):
    __slots__ = ("model_id", "tensors", "metadata", "signer_kid", "total_bytes", "repo", "revision", "commit", "local_path")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SIGNER_KID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    LOCAL_PATH_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    tensors: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    metadata: _containers.ScalarMap[str, str]
    signer_kid: str
    total_bytes: int
    repo: str
    revision: str
    commit: str
    local_path: str
    def __init__(self, model_id: _Optional[str] = ..., tensors: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., signer_kid: _Optional[str] = ..., total_bytes: _Optional[int] = ..., repo: _Optional[str] = ..., revision: _Optional[str] = ..., commit: _Optional[str] = ..., local_path: _Optional[str] = ...) -> None: ...

class LoadStart(_message.Message):
    __slots__ = ("model_id", "names", "mode", "window_bytes", "window_count")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    mode: LoadMode
    window_bytes: int
    window_count: int
    def __init__(self, model_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., mode: _Optional[_Union[LoadMode, str]] = ..., window_bytes: _Optional[int] = ..., window_count: _Optional[int] = ...) -> None: ...

class RegionMapped(_message.Message):
    __slots__ = ("region_id",)
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    region_id: int
    def __init__(self, region_id: _Optional[int] = ...) -> None: ...

class RegionConsumed(_message.Message):
    __slots__ = ("region_id",)
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    region_id: int
    def __init__(self, region_id: _Optional[int] = ...) -> None: ...

class RegionRetained(_message.Message):
    __slots__ = ("region_id",)
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    region_id: int
    def __init__(self, region_id: _Optional[int] = ...) -> None: ...

class LoadClientMessage(_message.Message):
    __slots__ = ("start", "mapped", "consumed", "retained")
    START_FIELD_NUMBER: _ClassVar[int]
    MAPPED_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    RETAINED_FIELD_NUMBER: _ClassVar[int]
    start: LoadStart
    mapped: RegionMapped
    consumed: RegionConsumed
    retained: RegionRetained
    def __init__(self, start: _Optional[_Union[LoadStart, _Mapping]] = ..., mapped: _Optional[_Union[RegionMapped, _Mapping]] = ..., consumed: _Optional[_Union[RegionConsumed, _Mapping]] = ..., retained: _Optional[_Union[RegionRetained, _Mapping]] = ...) -> None: ...

class TensorPlacement(_message.Message):
    __slots__ = ("name", "dtype", "shape", "offset", "byte_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BYTE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    offset: int
    byte_size: int
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., offset: _Optional[int] = ..., byte_size: _Optional[int] = ...) -> None: ...

class RegionReady(_message.Message):
    __slots__ = ("region_id", "path", "region_bytes", "tensors", "accepts_retained", "window_count")
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REGION_BYTES_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_RETAINED_FIELD_NUMBER: _ClassVar[int]
    WINDOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    region_id: int
    path: str
    region_bytes: int
    tensors: _containers.RepeatedCompositeFieldContainer[TensorPlacement]
    accepts_retained: bool
    window_count: int
    def __init__(self, region_id: _Optional[int] = ..., path: _Optional[str] = ..., region_bytes: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[TensorPlacement, _Mapping]]] = ..., accepts_retained: _Optional[bool] = ..., window_count: _Optional[int] = ...) -> None: ...

class LoadDone(_message.Message):
    __slots__ = ("tensors", "bytes")
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    tensors: int
    bytes: int
    def __init__(self, tensors: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class LoadServerMessage(_message.Message):
    __slots__ = ("ready", "done")
    READY_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ready: RegionReady
    done: LoadDone
    def __init__(self, ready: _Optional[_Union[RegionReady, _Mapping]] = ..., done: _Optional[_Union[LoadDone, _Mapping]] = ...) -> None: ...

class CloseModelRequest(_message.Message):
    __slots__ = ("model_id", "session_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    session_id: str
    def __init__(self, model_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class CloseModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...
