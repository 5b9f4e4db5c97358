"""Errors raised by ctensors, and the one place where a gRPC failure becomes one.

    Exception
     └── CryptoTensorsError          .code: an ErrorCode name from the proto (ERR_CT_FORMAT, ...)
          ├── SidecarUnavailableError    .code == "ERR_CT_SIDECAR_UNAVAILABLE" (client-side only)
          └── the vLLM loader's errors (ctensors.vllm): ExtraConfigError (ERR_CT_USAGE),
              EncryptedWeightsError (ERR_CT_USAGE), MissingWeightsError (ERR_CT_FORMAT),
              UnsupportedVllmError (ERR_CT_UNSUPPORTED); each also keeps its builtin base
              (ValueError / RuntimeError)

The codes are read from the generated proto enum (`sidecar_pb2.ErrorCode`), never retyped, so this
list and the sidecar's cannot drift. The sidecar sends the code in the `ct-error-code` trailer and
the message as the gRPC status details.
"""

from __future__ import annotations

import grpc

from ._proto import sidecar_pb2

__all__ = [
    "ERROR_CODES",
    "SIDECAR_UNAVAILABLE",
    "CryptoTensorsError",
    "SidecarUnavailableError",
    "from_rpc_error",
]

#: Every code the sidecar can send: the names of the proto's `ErrorCode` enum (without UNSPECIFIED).
ERROR_CODES: frozenset[str] = frozenset(name for name in sidecar_pb2.ErrorCode.keys() if name != "ERROR_CODE_UNSPECIFIED")

#: The one client-side code: nothing answers on the socket (so the sidecar cannot have sent it).
SIDECAR_UNAVAILABLE = "ERR_CT_SIDECAR_UNAVAILABLE"


def _code(name: str) -> str:
    """`name`, checked against the proto's ErrorCode enum (a typo fails at import)."""
    if name not in ERROR_CODES:
        raise ImportError(f"{name} is not a code of the proto's ErrorCode enum: regenerate the stubs")
    return name


USAGE = _code("ERR_CT_USAGE")
FORMAT = _code("ERR_CT_FORMAT")
UNSUPPORTED = _code("ERR_CT_UNSUPPORTED")

_TRAILER = "ct-error-code"


class CryptoTensorsError(Exception):
    """A refusal or failure from the sidecar (bad file, bad signature, missing key, policy, ...).

    `code` is one of `ERROR_CODES` (or `SIDECAR_UNAVAILABLE`); `message` is the human-readable text.
    A newer sidecar may send a code this version does not know: it is kept as sent.
    """

    code: str
    message: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SidecarUnavailableError(CryptoTensorsError):
    """No sidecar answers on the socket (not running, wrong socket path, or it went away)."""

    socket: str

    def __init__(self, socket: str, detail: str) -> None:
        super().__init__(
            SIDECAR_UNAVAILABLE,
            f"cannot reach the ctensors sidecar at {socket} ({detail}). Is the sidecar running? "
            f"Start it with `ctensors serve --socket {socket} --key ... --trust ...`, or point "
            "socket= or the CTENSORS_SOCKET environment variable at the socket it listens on.",
        )
        self.socket = socket


def from_rpc_error(err: grpc.RpcError, *, socket: str) -> CryptoTensorsError:
    """Turns a failed gRPC call into a CryptoTensorsError.

    The code comes from the `ct-error-code` trailer and the message from the status details.
    Without the trailer (the failure did not come from the sidecar's own error mapping), the gRPC
    status decides: UNAVAILABLE -> SidecarUnavailableError, UNAUTHENTICATED -> ERR_CT_UNAUTHENTICATED,
    anything else -> ERR_CT_INTERNAL with the status name in the message.
    """
    status = _call(err, "code")
    details = str(_call(err, "details") or "")
    code = _trailer_code(_call(err, "trailing_metadata") or ())
    if code is not None:
        return CryptoTensorsError(code, details or code)
    status_name = getattr(status, "name", str(status))
    if status == grpc.StatusCode.UNAVAILABLE:
        return SidecarUnavailableError(socket, details or "unavailable")
    if status == grpc.StatusCode.UNAUTHENTICATED:
        return CryptoTensorsError("ERR_CT_UNAUTHENTICATED", details or "the sidecar refused the token")
    return CryptoTensorsError("ERR_CT_INTERNAL", f"{details or 'call failed'} (gRPC status {status_name})")


def _call(err: grpc.RpcError, method: str) -> object:
    # grpc.RpcError itself declares no methods; the errors grpc raises are also grpc.Call objects.
    fn = getattr(err, method, None)
    try:
        return fn() if callable(fn) else None
    except Exception:  # a half-built error object must not hide the original failure
        return None


def _trailer_code(trailers: object) -> str | None:
    for item in trailers:  # type: ignore[attr-defined]
        key, value = getattr(item, "key", None), getattr(item, "value", None)
        if key is None:
            key, value = item
        if key != _TRAILER:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        value = str(value).strip()
        if value.isdigit():  # tolerate a numeric enum value
            try:
                return str(sidecar_pb2.ErrorCode.Name(int(value)))
            except ValueError:
                return value
        return value or None
    return None
