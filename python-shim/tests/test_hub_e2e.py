"""A Hub model served by repo id, end to end, with the real programs: `ctensors push` uploads a
freshly encrypted tiny Llama; `ctensors serve`, starting from an empty HF cache, serves `acme/tiny`;
this package's transformers loader generates exactly the plaintext model's tokens. The Python
`huggingface_hub` client then downloads the same files from the server, and reads the cache the
sidecar wrote with `local_files_only=True` (no network).

huggingface.co cannot be reached from here: the Hub is the repo's local development server
(`ctensors dev-hub`), a stand-in that both Hub clients talk to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import transformers
from conftest import Sidecar, bitwise_equal, cli, encrypt, keygen, make_tiny_model, require_cli, start_dev_hub, start_sidecar, stop_process
from huggingface_hub import hf_hub_download, snapshot_download
from safetensors.torch import load_file as st_load_file

import ctensors
from ctensors._api import model_source
from ctensors.errors import CryptoTensorsError
from ctensors.transformers import from_pretrained

pytestmark = pytest.mark.e2e

TOKEN = "hf_python_e2e_token"
REPO = "acme/tiny"


@dataclass
class Hub:
    root: Path
    url: str
    socket: str
    cache: Path
    plain: Path
    enc: Path
    commit: str


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    require_cli()
    root = Path(tempfile.mkdtemp(prefix="cth-", dir="/tmp"))
    hub_proc: subprocess.Popen[bytes] | None = None
    sidecar: Sidecar | None = None
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    try:
        hub_proc, url = start_dev_hub(root, TOKEN, base)
        env = {**base, "HF_ENDPOINT": url, "HF_TOKEN": TOKEN, "HF_HOME": str(root / "hf-home"), "HF_HUB_CACHE": str(root / "cache")}

        keys = keygen(root / "keys")
        encrypt(make_tiny_model(root / "plain"), root / "enc", keys)
        commit = json.loads(cli("push", root / "enc", REPO, "--json", env=env))["commit"]
        sidecar = start_sidecar(root, "--key", keys.enc, "--trust", keys.sign_pub, env=env)
        assert not (root / "cache").exists(), "the sidecar starts from an empty cache"
        yield Hub(root, url, sidecar.socket, root / "cache", root / "plain", root / "enc", commit)
    finally:
        if sidecar is not None:
            sidecar.stop()
        stop_process(hub_proc)
        shutil.rmtree(root, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_transformers_by_repo_id_generates_like_the_plaintext_model(hub: Hub) -> None:
    model = from_pretrained(REPO, socket=hub.socket)
    plain = transformers.AutoModelForCausalLM.from_pretrained(hub.plain)
    prompt = torch.tensor([[1, 2, 3, 4, 5]])
    want = plain.generate(prompt, max_new_tokens=20, do_sample=False)
    got = model.generate(prompt, max_new_tokens=20, do_sample=False)
    assert got.tolist() == want.tolist()
    # The snapshot the sidecar downloaded holds the ciphertext files, not plaintext.
    snap = hub.cache / "models--acme--tiny" / "snapshots" / hub.commit
    shards = sorted(p.name for p in hub.enc.glob("*.safetensors"))
    assert shards and sorted(p.name for p in snap.glob("*.safetensors")) == shards
    for name in shards:
        assert _sha256(snap / name) == _sha256(hub.enc / name)
        assert _sha256(snap / name) != _sha256(hub.plain / name)


def test_load_file_and_safe_open_by_repo_id(hub: Hub) -> None:
    loaded = ctensors.load_file(REPO, socket=hub.socket)
    want: dict[str, torch.Tensor] = {}
    for shard in sorted(hub.plain.glob("*.safetensors")):
        want.update(st_load_file(shard))
    assert sorted(loaded) == sorted(want)
    assert all(bitwise_equal(loaded[n], want[n]) for n in want)
    with ctensors.safe_open(f"{REPO}@main", socket=hub.socket) as f:
        assert f.commit == hub.commit
        assert f.local_path == str(hub.cache / "models--acme--tiny" / "snapshots" / hub.commit)
    with ctensors.safe_open(str(hub.enc), socket=hub.socket) as f:
        assert f.commit is None


def test_unknown_repo_is_a_clear_error(hub: Hub) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file("acme/missing", socket=hub.socket)
    assert info.value.code == "ERR_CT_HUB"
    assert "acme/missing" in info.value.message


def test_huggingface_hub_downloads_the_same_files_and_reads_our_cache_offline(hub: Hub) -> None:
    # The Python Hub client against the same server, into a cache of its own.
    theirs = Path(snapshot_download(REPO, cache_dir=hub.root / "py-cache", endpoint=hub.url, token=TOKEN))
    assert theirs.name == hub.commit
    for path in hub.enc.iterdir():
        assert _sha256(theirs / path.name) == _sha256(path), path.name
    # The cache the sidecar wrote, read by huggingface_hub without the network.
    config = hf_hub_download(REPO, "config.json", cache_dir=hub.cache, local_files_only=True)
    assert Path(config).read_bytes() == (hub.enc / "config.json").read_bytes()
    shard = hf_hub_download(REPO, "model-00001-of-00003.safetensors", cache_dir=hub.cache, local_files_only=True)
    assert _sha256(Path(shard)) == _sha256(hub.enc / "model-00001-of-00003.safetensors")
    offline = snapshot_download(REPO, cache_dir=hub.cache, local_files_only=True)
    assert Path(offline) == hub.cache / "models--acme--tiny" / "snapshots" / hub.commit


def test_model_source_prefers_a_local_path_over_a_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert model_source("acme/tiny") == "acme/tiny"
    assert model_source("acme/tiny@v1.0") == "acme/tiny@v1.0"
    (tmp_path / "acme" / "tiny").mkdir(parents=True)
    assert model_source("acme/tiny") == str(tmp_path / "acme" / "tiny")
    assert model_source("not a repo") == str(tmp_path / "not a repo")
    assert model_source("a/b/c") == str(tmp_path / "a" / "b" / "c")


def test_revision_argument_is_honoured(hub: Hub) -> None:
    with ctensors.safe_open(REPO, revision=hub.commit, socket=hub.socket) as f:
        assert f.commit == hub.commit
    model = from_pretrained(REPO, revision=hub.commit, socket=hub.socket)
    assert model.config.name_or_path == REPO
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(REPO, revision="no-such-branch", socket=hub.socket)
    assert info.value.code == "ERR_CT_HUB" and "no-such-branch" in info.value.message


def test_hf_upload_without_xet_disabled_says_how_to_upload(hub: Hub) -> None:
    # huggingface_hub uploads LFS files through Xet whenever hf_xet is installed, with no fallback to
    # LFS; hf_xet asks for the token itself and shows only the status: 501 Not Implemented.
    # HF_HUB_DISABLE_XET=1 is what it needs (docs/dev-hub.md).
    hf = Path(sys.executable).with_name("hf")
    (hub.root / "up").mkdir(exist_ok=True)
    (hub.root / "up" / "notes.bin").write_text("hello\n")  # .bin: an LFS file, the kind Xet would carry
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env = {**base, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(hub.root / "hf-cli-home")}
    args = [str(hf), "upload", "acme/cli-upload", str(hub.root / "up"), "."]
    first = subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode != 0
    assert "501 Not Implemented" in first.stderr and "xet-write-token" in first.stderr, first.stderr
    second = subprocess.run(args, check=False, env={**env, "HF_HUB_DISABLE_XET": "1"}, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    path = hf_hub_download("acme/cli-upload", "notes.bin", cache_dir=hub.root / "cli-cache", endpoint=hub.url, token=TOKEN)
    assert Path(path).read_text() == "hello\n"
