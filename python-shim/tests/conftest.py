"""Shared fixtures and helpers.

- A clean environment for every test, and short temp dirs (unix socket paths are limited to 107 bytes).
- The real programs: `cli` (the `ctensors` CLI built by `npm run build`; `keygen`, `encrypt`),
  `start_sidecar` (one `ctensors serve` on a private socket, waited for until its token file exists),
  `start_dev_hub`, and the session's `keys` and `sidecar`: one keygen and one strict sidecar trusting
  those keys, shared by every test module.
- `wire`: records, inside this process, the protocol as the client sees it (what it opens and closes,
  every RegionReady it receives, every `mapped`/`consumed` it sends), against the real sidecar.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import safetensors
import torch

sys.path.insert(0, str(Path(__file__).parent))  # fake_sidecar, e2e helpers

from ctensors import _loader
from ctensors._client import SidecarClient
from ctensors._proto import sidecar_pb2 as pb

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The `ctensors` executable, as installed; it runs plugin/dist (built by `npm run build`).
CLI = REPO_ROOT / "plugin" / "bin" / "ctensors.js"
BUILT = REPO_ROOT / "plugin" / "dist" / "cli" / "bin.js"


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Every test starts without the variables that steer socket resolution, and leaves none behind."""
    saved = dict(os.environ)
    os.environ.pop("CTENSORS_SOCKET", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def short_temp_dir(prefix: str = "ct-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = short_temp_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sample_tensors() -> dict[str, torch.Tensor]:
    """One tensor per supported dtype, plus a scalar and a 0-element tensor (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 5, generator=g)
    tensors = {
        "f32": f,
        "f16": f.to(torch.float16),
        "bf16": f.to(torch.bfloat16),
        "f64": f.to(torch.float64),
        "c64": torch.complex(f, -f),
        "bool": f > 0,
        "u8": torch.randint(0, 255, (7,), generator=g, dtype=torch.uint8),
        "i8": torch.randint(-128, 127, (2, 3), generator=g, dtype=torch.int8),
        "i16": torch.randint(-(2**15), 2**15 - 1, (4,), generator=g, dtype=torch.int16),
        "i32": torch.randint(-(2**31), 2**31 - 1, (4,), generator=g, dtype=torch.int32),
        "i64": torch.randint(-(2**62), 2**62, (2, 2), generator=g, dtype=torch.int64),
        "u16": torch.randint(0, 2**16 - 1, (3,), generator=g, dtype=torch.int32).to(torch.uint16),
        "u32": torch.randint(0, 2**31 - 1, (3,), generator=g, dtype=torch.int64).to(torch.uint32),
        "u64": torch.randint(0, 2**62, (3,), generator=g, dtype=torch.int64).to(torch.uint64),
        "f8_e4m3": f.to(torch.float8_e4m3fn),
        "f8_e5m2": f.to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 4),
        "big": torch.randn(10, 10, generator=g),  # 400 bytes
    }
    return tensors


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return bool(torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)))


# --- the CLI ---------------------------------------------------------------------------------------


def require_cli() -> None:
    """Fails (never skips) when the CLI is not built: `npm test` builds it first."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed")
    if not BUILT.exists():
        pytest.fail(f"{BUILT} is not built (npm run build)")


def cli(*args: str | os.PathLike[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Runs `ctensors ARGS...`; returns its stdout, fails with its output when it exits non-zero."""
    argv = [str(a) for a in args]
    proc = subprocess.run(["node", str(CLI), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ctensors {' '.join(argv)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@dataclass(frozen=True)
class Keys:
    """What `ctensors keygen --out DIR` writes."""

    dir: Path

    @property
    def enc(self) -> Path:
        return self.dir / "enc.jwk"

    @property
    def sign(self) -> Path:
        return self.dir / "sign.jwk"

    @property
    def sign_pub(self) -> Path:
        return self.dir / "sign.pub.jwk"


def keygen(out: Path, *args: str) -> Keys:
    cli("keygen", "--out", out, *args)
    return Keys(out)


def encrypt(plain: Path, out: Path, keys: Keys, *args: str) -> Path:
    """`ctensors encrypt` with the publisher's keys (every tensor encrypted, header signed; a folder
    also gets its signed release manifest, model.sig)."""
    cli("encrypt", plain, out, "--key", keys.enc, "--sign-key", keys.sign, *args)
    return out


def tamper_tensor_bytes(src: Path, dst: Path, name: str) -> Path:
    """Copies a .safetensors file and flips one bit of tensor `name`'s bytes (its ciphertext, when the
    file is encrypted): the header and its signature stay valid, decrypting that tensor fails."""
    raw = bytearray(src.read_bytes())
    (size,) = struct.unpack("<Q", raw[:8])
    begin, end = json.loads(raw[8 : 8 + size])[name]["data_offsets"]
    assert end > begin, f"{name} has no bytes to tamper with"
    raw[8 + size + (begin + end) // 2] ^= 1
    dst.write_bytes(bytes(raw))
    return dst


def file_order(path: Path) -> list[str]:
    """The tensor names of a .safetensors file in file order (by offset), as safetensors reads them."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        return list(f.offset_keys())


def make_tiny_model(out: Path, *args: str) -> Path:
    """A tiny random Llama folder (scripts/make_tiny_model.py)."""
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_tiny_model.py"), str(out), *args], check=True, capture_output=True)
    return out


# --- processes -------------------------------------------------------------------------------------


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 60.0) -> None:
    """Waits until `check()` holds; fails with `log` when `proc` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_dev_hub(root: Path, token: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`ctensors dev-hub` on a free loopback port, data in <root>/hub-data: the process and its URL."""
    log = root / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["node", str(CLI), "dev-hub", "--port", "0", "--data", str(root / "hub-data"), "--token", token],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wait_for(lambda: "http://" in log.read_text(), proc, log, "the dev hub")
    return proc, next(w for w in log.read_text().split() if w.startswith("http://")).rstrip(".,;")


# --- the real sidecar ------------------------------------------------------------------------------


@dataclass
class Sidecar:
    """One running `ctensors serve`: its socket, its JSON-lines log, and its shared-memory instance."""

    socket: str
    log: Path
    process: subprocess.Popen[bytes]
    #: The id in the names of the region files this sidecar creates (/dev/shm/ctensors-<id>-<32 hex>).
    shm_instance: str = ""

    @property
    def region_prefix(self) -> str:
        return f"/dev/shm/ctensors-{self.shm_instance}-"

    def regions(self) -> set[str]:
        """The region files of this sidecar that exist now (in /dev/shm, not yet unlinked)."""
        name = re.compile(rf"ctensors-{self.shm_instance}-[0-9a-f]{{32}}")
        return {f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if name.fullmatch(n)}

    def mark(self) -> int:
        """A position in the log: pass it as `since` to see only the events logged after it."""
        return len(self._lines())

    def _lines(self) -> list[str]:
        return self.log.read_text().split("\n")[:-1]  # complete lines only: the last may be being written

    def events(self, event: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self._lines()[since:] if line.startswith("{")]
        return [e for e in lines if event is None or e.get("event") == event]

    def wait_for_event(self, event: str, since: int = 0, timeout: float = 15.0, **fields: object) -> dict[str, Any]:
        """The first log event named `event` (after `since`) whose fields include `fields`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(event, since):
                if all(e.get(k) == v for k, v in fields.items()):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} {fields} in the sidecar log:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.05)

    def holds(self, source: str | os.PathLike[str], timeout: float = 10.0) -> bool:
        """Whether the sidecar still holds `source` open (Health lists open models by real path), once
        it no longer does or after `timeout`: a Load's own reference is released just after its stream ends."""
        real = os.path.realpath(source)
        deadline = time.monotonic() + timeout
        with SidecarClient(self.socket) as client:
            while (held := real in client.health().open_models) and time.monotonic() < deadline:
                time.sleep(0.05)
        return held

    def stop(self) -> None:
        stop_process(self.process)


def start_sidecar(root: Path, *args: str | os.PathLike[str], env: dict[str, str] | None = None) -> Sidecar:
    """Starts `ctensors serve --socket <root>/s*/sidecar.sock ARGS...` (a fresh private directory per
    sidecar, its log beside the socket) and waits until it serves: the token file exists. Stop it with
    `.stop()`; a sidecar that dies or takes more than 60 s to start fails with its log."""
    sock_dir = Path(tempfile.mkdtemp(prefix="s", dir=root))  # mode 0700, as the sidecar requires
    socket = str(sock_dir / "sidecar.sock")
    log = sock_dir / "sidecar.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["node", str(CLI), "serve", "--socket", socket, *[str(a) for a in args]],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sidecar = Sidecar(socket, log, process)
    try:
        wait_for(lambda: os.path.exists(socket + ".token"), process, log, "the sidecar")
    except RuntimeError:
        sidecar.stop()
        raise
    sidecar.shm_instance = sidecar.wait_for_event("sidecar.started")["shm_instance"]
    return sidecar


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    root = short_temp_dir("cts-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def keys(session_dir: Path) -> Keys:
    """The publisher's keys: master key (enc.jwk) and signing key pair (sign.jwk, sign.pub.jwk)."""
    require_cli()
    return keygen(session_dir / "keys")


@pytest.fixture(scope="session")
def sidecar(session_dir: Path, keys: Keys) -> Iterator[Sidecar]:
    """The real sidecar, strict as by default (signed, fully encrypted models only), with the session's
    master key and trusting its signing key. Shared by every module: leave it running."""
    server = start_sidecar(session_dir, "--key", keys.enc, "--trust", keys.sign_pub)
    try:
        yield server
    finally:
        server.stop()


# --- the protocol as the client sees it ------------------------------------------------------------


@dataclass
class Wire:
    opened: list[str] = field(default_factory=list)  # OpenModel sources sent
    model_ids: list[str] = field(default_factory=list)  # model ids the sidecar answered
    closed: list[str] = field(default_factory=list)  # CloseModel model ids sent
    ready: list[tuple[int, str]] = field(default_factory=list)  # (region_id, path) per RegionReady received
    sent: list[tuple[str, int]] = field(default_factory=list)  # ("mapped" | "consumed" | "retained", region_id) sent
    cancelled: int = 0  # Load calls the client cancelled


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Records the client's half of the protocol in this process (spies around the real client code)."""
    w = Wire()
    open_model, close_model = SidecarClient.open_model, SidecarClient.close_model
    place, send, close = _loader._LoadStream._place, _loader._Requests.send, _loader._LoadStream.close

    def spy_open(self: SidecarClient, source: str, **kw: Any) -> pb.OpenModelResponse:
        w.opened.append(source)
        response = open_model(self, source, **kw)
        w.model_ids.append(response.model_id)
        return response

    def spy_close(self: SidecarClient, model_id: str) -> None:
        w.closed.append(model_id)
        close_model(self, model_id)

    def spy_place(self: _loader._LoadStream, ready: pb.RegionReady) -> list[tuple[str, torch.Tensor]]:
        w.ready.append((ready.region_id, ready.path))
        return place(self, ready)

    def spy_send(self: _loader._Requests, msg: pb.LoadClientMessage) -> None:
        kind = msg.WhichOneof("msg")
        if kind in ("mapped", "consumed", "retained"):
            w.sent.append((kind, getattr(msg, kind).region_id))
        send(self, msg)

    def spy_close_stream(self: _loader._LoadStream) -> None:
        if not self._closed and not self._finished:
            w.cancelled += 1
        close(self)

    monkeypatch.setattr(SidecarClient, "open_model", spy_open)
    monkeypatch.setattr(SidecarClient, "close_model", spy_close)
    monkeypatch.setattr(_loader._LoadStream, "_place", spy_place)
    monkeypatch.setattr(_loader._Requests, "send", spy_send)
    monkeypatch.setattr(_loader._LoadStream, "close", spy_close_stream)
    return w
