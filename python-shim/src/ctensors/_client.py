"""The gRPC client of the sidecar: socket resolution, the token, and metadata on every call.

Control only: tensor bytes never travel over this channel (see _shm.py and _loader.py).
"""

from __future__ import annotations

import os
import stat
import string
import threading
from collections.abc import Iterator
from types import TracebackType

import grpc

from ._compat import check_sidecar_version
from ._proto import sidecar_pb2, sidecar_pb2_grpc
from .errors import CryptoTensorsError, SidecarUnavailableError, from_rpc_error

SOCKET_ENV = "CTENSORS_SOCKET"
TOKEN_SUFFIX = ".token"
_MAX_TOKEN_BYTES = 4096
# Manifests of large models (thousands of tensors) exceed grpc's 4 MiB default; the bytes never do.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def default_socket_path() -> str:
    """The socket a client uses when none is given: the rule of plugin/src/sidecar-socket.ts, which
    the sidecar applies (tests/test_socket_rule.py compares the two).

    $CTENSORS_SOCKET if set, else `$XDG_RUNTIME_DIR/ctensors/sidecar.sock` if XDG_RUNTIME_DIR is
    set (normalised, as Node's path.join does), else `/tmp/ctensors-<uid>/sidecar.sock`.
    """
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        path = os.path.normpath(os.path.join(runtime_dir, "ctensors", "sidecar.sock"))
        return "/" + path.lstrip("/") if path.startswith("/") else path  # normpath keeps a leading "//"
    return f"/tmp/ctensors-{os.getuid()}/sidecar.sock"


def resolve_socket_path(socket: str | os.PathLike[str] | None) -> str:
    """`socket` as an absolute path, or `default_socket_path()` when it is None."""
    path = default_socket_path() if socket is None else os.fspath(socket)
    if not path:
        raise ValueError("socket must be a non-empty path")
    return os.path.abspath(path)


def read_token(socket_path: str) -> str:
    """Reads the sidecar's per-run token from `<socket>.token`.

    Refuses a token file that group or others may read (it must be mode 0600): such a token may
    have been seen by others. Raises CryptoTensorsError(ERR_CT_UNAUTHENTICATED) with the reason.
    """
    path = socket_path + TOKEN_SUFFIX
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CryptoTensorsError(
            "ERR_CT_UNAUTHENTICATED",
            f"no token file at {path}: the sidecar writes it beside its socket when it starts "
            f"(is the sidecar serving --socket {socket_path}?)",
        ) from None
    except PermissionError:
        raise CryptoTensorsError(
            "ERR_CT_UNAUTHENTICATED",
            f"cannot read the token file {path}: permission denied (it is readable only by the user "
            "the sidecar runs as; run this process as that user)",
        ) from None
    except OSError as err:
        raise CryptoTensorsError("ERR_CT_UNAUTHENTICATED", f"cannot read the token file {path}: {err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CryptoTensorsError("ERR_CT_UNAUTHENTICATED", f"the token file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise CryptoTensorsError(
                "ERR_CT_UNAUTHENTICATED",
                f"refusing the token file {path}: its mode {stat.S_IMODE(st.st_mode):04o} lets group or others "
                "read it; it must be 0600 (restart the sidecar, or chmod 600 it if you trust its contents)",
            )
        raw = os.read(fd, _MAX_TOKEN_BYTES + 1)
    finally:
        os.close(fd)
    token = raw.decode("ascii", "replace").strip()
    if not token or len(raw) > _MAX_TOKEN_BYTES or any(c not in string.hexdigits for c in token):
        raise CryptoTensorsError("ERR_CT_UNAUTHENTICATED", f"the token file {path} does not hold a hex token")
    return token


class SidecarClient:
    """One gRPC channel to the sidecar, with the bearer token on every call.

    Every failed call raises CryptoTensorsError (mapped in errors.from_rpc_error). `token` is for
    tests only; normally it is read from `<socket>.token`.
    """

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, token: str | None = None) -> None:
        self.socket_path = resolve_socket_path(socket)
        if not os.path.exists(self.socket_path):
            raise SidecarUnavailableError(self.socket_path, "no such socket")
        self._metadata = (("authorization", f"Bearer {read_token(self.socket_path) if token is None else token}"),)
        self._channel = grpc.insecure_channel(
            f"unix:{self.socket_path}",
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ],
        )
        self._stub = sidecar_pb2_grpc.SidecarStub(self._channel)
        self._version_checked = False
        self._session = _Session()

    def health(self) -> sidecar_pb2.HealthResponse:
        try:
            response: sidecar_pb2.HealthResponse = self._stub.Health(sidecar_pb2.HealthRequest(), metadata=self._metadata)
            return response
        except grpc.RpcError as err:
            raise from_rpc_error(err, socket=self.socket_path) from err

    def open_model(self, source: str, *, refresh: bool = False) -> sidecar_pb2.OpenModelResponse:
        if not self._version_checked:  # once per client, before its first model (_compat.py)
            check_sidecar_version(self.health().version, socket=self.socket_path)
            self._version_checked = True
        try:
            session_id = self._session.id(self._stub, self._metadata)
            request = sidecar_pb2.OpenModelRequest(source=source, refresh=refresh, session_id=session_id)
            opened: sidecar_pb2.OpenModelResponse = self._stub.OpenModel(request, metadata=self._metadata)
            return opened
        except grpc.RpcError as err:
            raise from_rpc_error(err, socket=self.socket_path) from err

    def close_model(self, model_id: str) -> None:
        try:
            request = sidecar_pb2.CloseModelRequest(model_id=model_id, session_id=self._session.known_id())
            self._stub.CloseModel(request, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, socket=self.socket_path) from err

    def load(self, requests: Iterator[sidecar_pb2.LoadClientMessage]) -> grpc.Call:
        """Starts a Load stream; the caller iterates the returned call and maps grpc.RpcError itself."""
        return self._stub.Load(requests, metadata=self._metadata)

    def close(self) -> None:
        """Ends the session (the sidecar closes the models still open in it) and closes the channel."""
        self._session.end()
        self._channel.close()

    def __enter__(self) -> SidecarClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Session:
    """This client's Session call (proto Session), started before its first OpenModel and held open
    while the client lives: the models it opens belong to the session, and the sidecar closes them
    when the call ends: at close(), or when this process exits or is killed (its socket closes).
    A sidecar of this release line from before sessions answers UNIMPLEMENTED: then the id is "" and
    models stay open until close_model, as before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._call: grpc.Call | None = None
        self._id: str | None = None

    def id(self, stub: sidecar_pb2_grpc.SidecarStub, metadata: tuple[tuple[str, str], ...]) -> str:
        """The session's id, starting the session on first use. Raises grpc.RpcError when the call fails."""
        with self._lock:
            if self._id is None:
                call = stub.Session(sidecar_pb2.SessionRequest(), metadata=metadata)
                try:
                    first: sidecar_pb2.SessionResponse | None = next(call, None)
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    first = None
                if first is None:
                    self._id = ""
                else:
                    self._call, self._id = call, first.session_id
            return self._id

    def known_id(self) -> str:
        """The id if the session has started, else "" (no session: nothing was opened in one)."""
        return self._id or ""

    def end(self) -> None:
        with self._lock:
            call, self._call = self._call, None
        if call is not None:
            call.cancel()
