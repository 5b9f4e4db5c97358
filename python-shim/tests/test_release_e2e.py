"""Signed releases seen from Python: the real sidecar (`ctensors serve`) refuses, with a typed
CryptoTensorsError naming the file, every attack on a release that the real CLI encrypted (mixed shards
of two releases with the same keys, a dropped shard with its index, an altered config, tokenizer or
chat template, a manifest signed by an untrusted key) and a rollback to an older release."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import ctensors
from ctensors.errors import CryptoTensorsError

CLI = REPO_ROOT / "plugin" / "dist" / "cli" / "bin.js"


def _cli(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["node", str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@dataclass
class Env:
    root: Path
    socket: str
    rel1: Path
    rel2: Path
    keys: Path
    stranger: Path


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="ctr-", dir="/tmp"))
    server: subprocess.Popen[bytes] | None = None
    try:
        _cli("keygen", "--out", str(root / "keys"), "--kid", "publisher", cwd=root)
        _cli("keygen", "--out", str(root / "stranger"), "--kid", "stranger", cwd=root)
        make = [sys.executable, str(REPO_ROOT / "scripts" / "make_tiny_model.py")]
        subprocess.run([*make, str(root / "plain-1")], check=True, capture_output=True)
        subprocess.run([*make, str(root / "plain-2"), "--seed", "1"], check=True, capture_output=True)
        sign = ["--key", str(root / "keys" / "enc.jwk"), "--sign-key", str(root / "keys" / "sign.jwk"), "--model-id", "org/tiny"]
        _cli("encrypt", str(root / "plain-1"), str(root / "rel-1"), *sign, "--release", "1", cwd=root)
        _cli("encrypt", str(root / "plain-2"), str(root / "rel-2"), *sign, "--release", "2", cwd=root)
        sock_dir = root / "s"
        sock_dir.mkdir(mode=0o700)
        socket = str(sock_dir / "sidecar.sock")
        log = open(root / "sidecar.log", "wb")  # noqa: SIM115 -- closed with the process below
        server = subprocess.Popen(
            ["node", str(CLI), "serve", "--socket", socket, "--key", str(root / "keys" / "enc.jwk"),
             "--trust", str(root / "keys" / "sign.pub.jwk"), "--release-state", str(root / "state" / "releases.json")],
            cwd=root, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(socket + ".token"):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sidecar did not start:\n{(root / 'sidecar.log').read_text()}")
            time.sleep(0.1)
        yield Env(root, socket, root / "rel-1", root / "rel-2", root / "keys", root / "stranger")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


_copies = 0


def _copy(src: Path, env: Env) -> Path:
    global _copies
    _copies += 1
    dst = env.root / f"copy-{_copies}"
    shutil.copytree(src, dst)
    return dst


def _refused(path: Path, env: Env, code: str, names: str) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(path, socket=env.socket)
    assert info.value.code == code, info.value
    assert names in info.value.message, info.value.message


def _last_shard(root: Path) -> str:
    shards = sorted(p.name for p in root.glob("*.safetensors"))
    assert len(shards) >= 2, shards
    return shards[-1]


def test_a_signed_release_loads(env: Env) -> None:
    assert ctensors.load_file(_copy(env.rel2, env), socket=env.socket)


def test_mixed_shards_of_two_releases_are_refused(env: Env) -> None:
    mixed = _copy(env.rel2, env)
    shard = _last_shard(mixed)
    shutil.copyfile(env.rel1 / shard, mixed / shard)
    _refused(mixed, env, "ERR_CT_INTEGRITY", shard)


def test_a_dropped_shard_and_index_are_refused(env: Env) -> None:
    dropped = _copy(env.rel2, env)
    shard = _last_shard(dropped)
    (dropped / shard).unlink()
    (dropped / "model.safetensors.index.json").unlink()
    _refused(dropped, env, "ERR_CT_INTEGRITY", "is missing")


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
def test_altered_config_tokenizer_or_template_are_refused(env: Env, name: str) -> None:
    altered = _copy(env.rel2, env)
    path = altered / name
    if path.exists():
        path.write_bytes(path.read_bytes().replace(b"}", b', "injected": true}', 1) if name.endswith(".json") else b"{{ 'evil' }}")
    else:
        path.write_text("{{ 'an added chat template' }}")  # an added file is an extra file of the release
    _refused(altered, env, "ERR_CT_INTEGRITY", name)


def test_a_manifest_signed_by_an_untrusted_key_is_refused(env: Env) -> None:
    resigned = _copy(env.rel2, env)
    _cli("sign-release", str(resigned), "--sign-key", str(env.stranger / "sign.jwk"), "--trust", str(env.keys / "sign.pub.jwk"),
         "--model-id", "org/tiny", "--release", "5", "--force", cwd=env.root)
    _refused(resigned, env, "ERR_CT_UNTRUSTED_SIGNER", "model.sig")


def test_rollback_to_an_older_release_is_refused(env: Env) -> None:
    assert ctensors.load_file(_copy(env.rel2, env), socket=env.socket)
    _refused(_copy(env.rel1, env), env, "ERR_CT_INTEGRITY", "rollback refused")
