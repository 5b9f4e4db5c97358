"""errors.from_rpc_error: the one mapping from grpc.RpcError to CryptoTensorsError."""

from __future__ import annotations

import grpc
import pytest

from ctensors._proto import sidecar_pb2
from ctensors.errors import ERROR_CODES, CryptoTensorsError, SidecarUnavailableError, from_rpc_error


class FakeRpcError(grpc.RpcError):
    def __init__(self, status: grpc.StatusCode, details: str | None, trailers: tuple = ()) -> None:  # type: ignore[type-arg]
        self._status, self._details, self._trailers = status, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str | None:
        return self._details

    def trailing_metadata(self) -> tuple:  # type: ignore[type-arg]
        return self._trailers


def test_codes_come_from_the_proto_enum() -> None:
    names = set(sidecar_pb2.ErrorCode.keys())
    assert names - {"ERROR_CODE_UNSPECIFIED"} == ERROR_CODES
    for code in [
        "ERR_CT_FORMAT",
        "ERR_CT_SIGNATURE_INVALID",
        "ERR_CT_DECRYPTION_FAILED",
        "ERR_CT_KEY_NOT_FOUND",
        "ERR_CT_POLICY_DENIED",
        "ERR_CT_UNAUTHENTICATED",
    ]:
        assert code in ERROR_CODES


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_trailer_code_and_details(code: str) -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "what went wrong", (("ct-error-code", code),)), socket="/s")
    assert type(err) is CryptoTensorsError
    assert err.code == code and err.message == "what went wrong"
    assert str(err) == f"{code}: what went wrong"


def test_trailer_wins_over_status() -> None:
    err = from_rpc_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "key service down", (("other", "x"), ("ct-error-code", "ERR_CT_KEY_NOT_FOUND"))),
        socket="/s",
    )
    assert type(err) is CryptoTensorsError and err.code == "ERR_CT_KEY_NOT_FOUND"


def test_trailer_as_bytes_numeric_and_metadatum_objects() -> None:
    class Metadatum:
        def __init__(self, key: str, value: object) -> None:
            self.key, self.value = key, value

    err = from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "m", (("ct-error-code", b"ERR_CT_IO"),)), socket="/s")
    assert err.code == "ERR_CT_IO"
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "m", (("ct-error-code", "10"),)), socket="/s")
    assert err.code == "ERR_CT_POLICY_DENIED"
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "m", (Metadatum("ct-error-code", "ERR_CT_FORMAT"),)), socket="/s")
    assert err.code == "ERR_CT_FORMAT"


def test_unknown_code_from_a_newer_sidecar_is_kept() -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "new", (("ct-error-code", "ERR_CT_SOMETHING_NEW"),)), socket="/s")
    assert err.code == "ERR_CT_SOMETHING_NEW"


def test_unavailable_without_trailer() -> None:
    rpc_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    err = from_rpc_error(rpc_error, socket="/x.sock")
    assert isinstance(err, SidecarUnavailableError) and isinstance(err, CryptoTensorsError)
    assert err.code == "ERR_CT_SIDECAR_UNAVAILABLE" and err.socket == "/x.sock"
    assert "/x.sock" in err.message and "failed to connect" in err.message


def test_unauthenticated_without_trailer() -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, None), socket="/s")
    assert err.code == "ERR_CT_UNAUTHENTICATED" and err.message


def test_other_status_without_trailer() -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"), socket="/s")
    assert err.code == "ERR_CT_INTERNAL" and "slow" in err.message and "DEADLINE_EXCEEDED" in err.message


def test_bare_rpc_error() -> None:
    err = from_rpc_error(grpc.RpcError(), socket="/s")
    assert err.code == "ERR_CT_INTERNAL"


def test_usage_code_is_in_the_proto() -> None:
    assert "ERR_CT_USAGE" in ERROR_CODES


def test_vllm_errors_are_crypto_tensors_errors_with_codes() -> None:
    """One error model: every error ctensors raises is a CryptoTensorsError with a proto code."""
    from ctensors.vllm import EncryptedWeightsError, ExtraConfigError, LoaderConfig, MissingWeightsError, UnsupportedVllmError
    from ctensors.vllm import check_vllm_version

    with pytest.raises(CryptoTensorsError) as info:
        LoaderConfig.parse({"mode": "sideways"})
    assert isinstance(info.value, ExtraConfigError) and isinstance(info.value, ValueError)
    assert info.value.code == "ERR_CT_USAGE" and "mode must be one of" in info.value.message

    with pytest.raises(CryptoTensorsError) as info:
        check_vllm_version("0.1.0")
    assert isinstance(info.value, UnsupportedVllmError) and isinstance(info.value, RuntimeError)
    assert info.value.code == "ERR_CT_UNSUPPORTED"

    missing = MissingWeightsError("org/model", ["b", "a"])
    assert isinstance(missing, CryptoTensorsError) and isinstance(missing, ValueError)
    assert missing.code == "ERR_CT_FORMAT" and missing.missing == ["a", "b"] and "org/model" in missing.message

    guard = EncryptedWeightsError("x.safetensors is a CryptoTensors (encrypted) file")
    assert isinstance(guard, CryptoTensorsError) and isinstance(guard, RuntimeError) and guard.code == "ERR_CT_USAGE"
