"""Signed releases seen from Python: the real sidecar (`ctensors serve`) refuses, with a typed
CryptoTensorsError naming the file, every attack on a release that the real CLI encrypted (mixed shards
of two releases with the same keys, a dropped shard with its index, an altered config, tokenizer or
chat template, a manifest signed by an untrusted key) and a rollback to an older release."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Keys, Sidecar, cli, encrypt, keygen, make_tiny_model, require_cli, start_sidecar

import ctensors
from ctensors.errors import CryptoTensorsError


@dataclass
class Env:
    root: Path
    sidecar: Sidecar
    rel1: Path
    rel2: Path
    keys: Keys
    stranger: Keys

    @property
    def socket(self) -> str:
        return self.sidecar.socket


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    require_cli()
    root = Path(tempfile.mkdtemp(prefix="ctr-", dir="/tmp"))
    server: Sidecar | None = None
    try:
        keys = keygen(root / "keys", "--kid", "publisher")
        stranger = keygen(root / "stranger", "--kid", "stranger")
        make_tiny_model(root / "plain-1")
        make_tiny_model(root / "plain-2", "--seed", "1")
        encrypt(root / "plain-1", root / "rel-1", keys, "--model-id", "org/tiny", "--release", "1")
        encrypt(root / "plain-2", root / "rel-2", keys, "--model-id", "org/tiny", "--release", "2")
        server = start_sidecar(root, "--key", keys.enc, "--trust", keys.sign_pub, "--release-state", root / "state" / "releases.json")
        yield Env(root, server, root / "rel-1", root / "rel-2", keys, stranger)
    finally:
        if server is not None:
            server.stop()
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
    release = ["--model-id", "org/tiny", "--release", "5", "--force"]
    cli("sign-release", resigned, "--sign-key", env.stranger.sign, "--trust", env.keys.sign_pub, *release)
    _refused(resigned, env, "ERR_CT_UNTRUSTED_SIGNER", "model.sig")


def test_rollback_to_an_older_release_is_refused(env: Env) -> None:
    assert ctensors.load_file(_copy(env.rel2, env), socket=env.socket)
    _refused(_copy(env.rel1, env), env, "ERR_CT_INTEGRITY", "rollback refused")
