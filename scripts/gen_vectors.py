#!/usr/bin/env python3
"""Writes the shared test vectors in test/vectors/ with the REFERENCE implementation.

Run with the project's Python (it has the PyPI package `cryptotensors` 0.2.3 and numpy):

    .venv/bin/python scripts/gen_vectors.py [OUT_DIR]     # default: test/vectors

What it writes (test/vectors/README.md describes the layout and the manifest fields):
  keys/*.jwk         fixed keys, derived from labels (deterministic), in the reference's JWK spelling
  files/*.safetensors
                     files the reference wrote (v1 and v2 x AES-256-GCM / AES-128-GCM / ChaCha20-Poly1305,
                     partially encrypted, with an empty tensor, a plain file) and tampered copies of them
  manifest.json      one entry per case: file, keys, trusted signers, options, and the expected result
                     (SHA-256 of every plaintext tensor, or an ERR_CT_* code) and the reference's verdict

The keys and the plaintext are deterministic. The reference draws its data keys and IVs at random and
offers no way to inject them, so the files differ on every run: they were generated once and are
committed, and the manifest is regenerated with them. Running the script again is allowed (every test
still passes) but changes the committed bytes; only do it when adding cases.

Tampered files are byte edits of the good files made here (flipped ciphertext bytes, appended or cut
bytes, header members removed or changed with the header re-encoded); none of them is re-signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

import cryptotensors.numpy as ct_numpy

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "test" / "vectors"

ALGS = {"aes256gcm": 32, "aes128gcm": 16, "chacha20poly1305": 32}
SMALL_CHUNK = 64  # bytes: the 640-byte tensor spans 10 chunks
DEFAULT_POLICY = "package model\nallow = true"

# Ed25519 seeds are sha256("ctensors test vectors: <label>"); the public keys were derived from them
# once (RFC 8032 key generation; the JWK parser of the TypeScript tests re-derives x from d and refuses
# a mismatch, and the reference verifies the files' signatures with these x values).
SIGN_KEYS = {
    "sign": ("vec-sign", "wANYwxry4zxJ+gpsmftkHFtr2vZo3hOQ6txQqYegFoA="),
    "other-sign": ("vec-other-sign", "nqfHzwzxaT9FU1kwBgcWxjy7xgPvutHtB380JWS59tk="),
}


def derived(label: str, n: int) -> bytes:
    return hashlib.sha256(f"ctensors test vectors: {label}".encode()).digest()[:n]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_keys(out: Path) -> dict[str, dict[str, str]]:
    """All key files; returns {relative path: JWK}."""
    keys: dict[str, dict[str, str]] = {}
    for alg, n in ALGS.items():
        keys[f"keys/enc-{alg}.jwk"] = {"kty": "oct", "alg": alg, "k": b64(derived(f"enc-{alg}", n)), "kid": f"vec-enc-{alg}"}
    # Same kid as the real AES-256-GCM key, other bytes: a wrong master key.
    keys["keys/enc-aes256gcm-wrong.jwk"] = {
        "kty": "oct",
        "alg": "aes256gcm",
        "k": b64(derived("enc-aes256gcm-wrong", 32)),
        "kid": "vec-enc-aes256gcm",
    }
    for label, (kid, x) in SIGN_KEYS.items():
        keys[f"keys/{label}.jwk"] = {"kty": "okp", "alg": "ed25519", "x": x, "d": b64(derived(label, 32)), "kid": kid}
        keys[f"keys/{label}.pub.jwk"] = {"kty": "okp", "alg": "ed25519", "x": x, "kid": kid}
    (out / "keys").mkdir(parents=True, exist_ok=True)
    for rel, jwk in keys.items():
        write_json(out / rel, jwk)
    return keys


def plaintext() -> dict[str, np.ndarray]:
    """Small tensors of several dtypes, one of them empty and one a scalar (deterministic)."""
    rng = np.random.default_rng(20240617)
    return {
        "weight": rng.standard_normal((8, 20)).astype(np.float32),  # 640 bytes: 10 chunks of 64
        "bias": rng.standard_normal(20).astype(np.float16),  # 40 bytes: less than one chunk
        "ids": rng.integers(-(2**40), 2**40, size=3, dtype=np.int64),
        "mask": rng.integers(0, 2, size=5).astype(np.bool_),
        "scalar": np.array(3.25, dtype=np.float64),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


DTYPE_NAMES = {"float32": "F32", "float16": "F16", "int64": "I64", "bool": "BOOL", "float64": "F64"}


def expected_tensors(tensors: dict[str, np.ndarray], encrypted: set[str]) -> dict[str, Any]:
    return {
        name: {
            "dtype": DTYPE_NAMES[str(t.dtype)],
            "shape": list(t.shape),
            "encrypted": name in encrypted,
            "sha256": hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest(),
        }
        for name, t in sorted(tensors.items())
    }


# --- header surgery for the tampered files --------------------------------------------------------


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n].decode("utf-8")), data[8 + n :]


def join(header: dict[str, Any], body: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def edit_reserved(data: bytes, key: str, fn: Any) -> bytes:
    """Applies fn to the parsed inner JSON of __metadata__[key] (fn returns the new object, or None to drop the member)."""
    header, body = split(data)
    md = header["__metadata__"]
    value = fn(json.loads(md[key]) if key != "__signature__" else md[key])
    if value is None:
        del md[key]
    else:
        md[key] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return join(header, body)


def tensor_range(data: bytes, name: str) -> tuple[int, int]:
    header, _ = split(data)
    (n,) = struct.unpack("<Q", data[:8])
    begin, end = header[name]["data_offsets"]
    return 8 + n + begin, 8 + n + end


def flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


# --- the cases --------------------------------------------------------------------------------------


def main(out: Path = DEFAULT_OUT) -> int:
    if out.exists():
        for sub in ("keys", "files"):
            shutil.rmtree(out / sub, ignore_errors=True)
    (out / "files").mkdir(parents=True, exist_ok=True)
    keys = make_keys(out)
    tensors = plaintext()
    sign = keys["keys/sign.jwk"]
    cases: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}

    def reference_write(
        name: str,
        alg: str | None,
        *,
        version: str | None = None,
        chunk: int | None = None,
        only: list[str] | None = None,
        policy_local: str | None = None,
    ) -> bytes:
        path = out / "files" / f"{name}.safetensors"
        config: dict[str, Any] | None = None
        if alg is not None:
            enc = {f: v for f, v in keys[f"keys/enc-{alg}.jwk"].items() if f != "kty"}
            config = {"enc_key": enc, "sign_key": {f: v for f, v in sign.items() if f != "kty"}}
            if version is not None:
                config["version"] = version
            if chunk is not None:
                config["chunk_size"] = chunk
            if only is not None:
                config["tensors"] = only
            if policy_local is not None:
                config["policy"] = {"local": policy_local}
        ct_numpy.save_file(tensors, str(path), metadata={"format": "np"}, config=config)
        files[name] = path.read_bytes()
        return files[name]

    def good(name: str, alg: str | None, description: str, encrypted: set[str], **write: Any) -> None:
        reference_write(name, alg, **write)
        cases.append(
            {
                "name": name,
                "description": description,
                "file": f"files/{name}.safetensors",
                "keys": [f"keys/enc-{alg}.jwk"] if alg else [],
                "trust": ["keys/sign.pub.jwk"] if alg else [],
                "require_encrypted": False,
                "expect": {"ok": True, "tensors": expected_tensors(tensors, encrypted)},
                "reference": {"accepts": True},
            }
        )

    def bad(
        name: str,
        source: str,
        data: bytes,
        description: str,
        error: str,
        *,
        keys_: list[str] | None = None,
        trust: list[str] | None = None,
        require_encrypted: bool = False,
        reference_accepts: bool = False,
        error_with_rego: str | None = None,
        note: str | None = None,
        reference_error: str | None = None,
    ) -> None:
        src = next(c for c in cases if c["name"] == source)
        file = src["file"] if data == files[source] else f"files/{name}.safetensors"
        (out / file).write_bytes(data)
        expect: dict[str, Any] = {"ok": False, "error": error}
        if error_with_rego:
            expect["error_with_rego"] = error_with_rego
        case: dict[str, Any] = {
            "name": name,
            "description": description,
            "file": file,
            "derived_from": source,
            "keys": keys_ if keys_ is not None else src["keys"],
            "trust": trust if trust is not None else src["trust"],
            "require_encrypted": require_encrypted,
            "expect": expect,
            "reference": {"accepts": reference_accepts},
        }
        if note:
            case["reference"]["note"] = note
        if reference_error:
            case["reference"]["error"] = reference_error
        cases.append(case)

    everything = set(tensors)
    for alg in ALGS:
        good(
            f"v1-{alg}",
            alg,
            f"format v1 (monolithic), {alg}, every tensor encrypted (the empty one with empty iv and tag)",
            everything,
            version="1",
        )
        good(
            f"v2-{alg}",
            alg,
            f"format v2 (chunked, chunk_size {SMALL_CHUNK}), {alg}, every tensor encrypted",
            everything,
            version="2",
            chunk=SMALL_CHUNK,
        )
    good(
        "v2-aes256gcm-default-chunk",
        "aes256gcm",
        "format v2 with the reference's default chunk size (2 MiB, written as chunk_size)",
        everything,
    )
    good(
        "v1-aes256gcm-partial",
        "aes256gcm",
        "format v1, only `weight` and `empty` encrypted, the rest plaintext",
        {"weight", "empty"},
        version="1",
        only=["weight", "empty"],
    )
    good(
        "v2-chacha20poly1305-partial",
        "chacha20poly1305",
        "format v2 (chunk_size 64), only `weight` and `bias` encrypted",
        {"weight", "bias"},
        version="2",
        chunk=SMALL_CHUNK,
        only=["weight", "bias"],
    )
    good("plain", None, "a plain safetensors file (no encryption, no signature)", set())
    reference_write("v2-aes256gcm-policy-deny", "aes256gcm", version="2", chunk=SMALL_CHUNK, policy_local="package model\nallow = false")

    v1, v2, v2c = files["v1-aes256gcm"], files["v2-aes256gcm"], files["v2-chacha20poly1305"]
    w1, w2, wc = tensor_range(v1, "weight"), tensor_range(v2, "weight"), tensor_range(v2c, "weight")
    bad(
        "v1-aes256gcm-ciphertext-flipped",
        "v1-aes256gcm",
        flip(v1, (w1[0] + w1[1]) // 2),
        "one bit of the encrypted tensor `weight` flipped",
        "ERR_CT_DECRYPTION_FAILED",
        reference_error="Decryption",
    )
    bad(
        "v2-aes256gcm-last-chunk-flipped",
        "v2-aes256gcm",
        flip(v2, w2[1] - 1),
        "last byte of the last chunk of `weight` flipped",
        "ERR_CT_DECRYPTION_FAILED",
        reference_error="Decryption",
    )
    bad(
        "v2-chacha20poly1305-first-chunk-flipped",
        "v2-chacha20poly1305",
        flip(v2c, wc[0]),
        "first byte of the first chunk of `weight` flipped",
        "ERR_CT_DECRYPTION_FAILED",
        reference_error="Decryption",
    )
    bad(
        "v2-aes256gcm-wrong-master-key",
        "v2-aes256gcm",
        v2,
        "the right file opened with another key under the same kid",
        "ERR_CT_DECRYPTION_FAILED",
        reference_error="Decryption",
        keys_=["keys/enc-aes256gcm-wrong.jwk"],
    )
    bad(
        "v2-aes256gcm-untrusted-signer",
        "v2-aes256gcm",
        v2,
        "the right file, but the reader trusts only another signer",
        "ERR_CT_UNTRUSTED_SIGNER",
        reference_error="Signature verification failed",
        trust=["keys/other-sign.pub.jwk"],
    )

    def metadata_changed(data: bytes) -> bytes:
        header, body = split(data)
        header["__metadata__"]["format"] = "pt"
        return join(header, body)

    bad(
        "v1-aes128gcm-metadata-changed",
        "v1-aes128gcm",
        metadata_changed(files["v1-aes128gcm"]),
        "user metadata `format` changed from np to pt (a signed member)",
        "ERR_CT_SIGNATURE_INVALID",
        reference_error="Signature verification failed",
    )

    def tag_changed(enc: dict[str, Any]) -> dict[str, Any]:
        tags = bytearray(base64.b64decode(enc["weight"]["tags"]))
        tags[0] ^= 0x01
        enc["weight"]["tags"] = b64(bytes(tags))
        return enc

    bad(
        "v2-aes256gcm-tag-changed",
        "v2-aes256gcm",
        edit_reserved(v2, "__encryption__", tag_changed),
        "one bit of the first chunk tag of `weight` flipped in the header (the header is signed)",
        "ERR_CT_SIGNATURE_INVALID",
        reference_error="Signature verification failed",
    )
    bad(
        "v2-aes256gcm-trailing-bytes",
        "v2-aes256gcm",
        v2 + b"\0" * 8,
        "8 bytes appended after the last tensor",
        "ERR_CT_FORMAT",
        reference_error="incomplete metadata",
    )
    bad(
        "v2-aes256gcm-truncated",
        "v2-aes256gcm",
        v2[:-4],
        "the last 4 bytes cut off",
        "ERR_CT_FORMAT",
        reference_error="incomplete metadata",
    )
    bad(
        "v2-aes256gcm-header-too-large",
        "v2-aes256gcm",
        struct.pack("<Q", 100_000_001) + v2[8:],
        "header length prefix 100,000,001 (over the 100,000,000-byte limit)",
        "ERR_CT_FORMAT",
        reference_error="header too large",
    )

    def keys_edit(**changes: Any) -> Any:
        def fn(ck: dict[str, Any]) -> dict[str, Any]:
            for path, value in changes.items():
                target = ck
                parts = path.split("__")
                for p in parts[:-1]:
                    target = target[p]
                target[parts[-1]] = value
            return ck

        return fn

    bad(
        "v2-aes256gcm-version-3",
        "v2-aes256gcm",
        edit_reserved(v2, "__crypto_keys__", keys_edit(version="3")),
        '__crypto_keys__.version "3"',
        "ERR_CT_UNSUPPORTED",
        reference_error="UnsupportedVersion",
    )
    bad(
        "v2-aes256gcm-chunk-size-0",
        "v2-aes256gcm",
        edit_reserved(v2, "__crypto_keys__", keys_edit(chunk_size=0)),
        "__crypto_keys__.chunk_size 0",
        "ERR_CT_FORMAT",
        reference_error="chunk_size must be greater than 0",
    )
    bad(
        "v2-aes256gcm-kty-uppercase",
        "v2-aes256gcm",
        edit_reserved(v2, "__crypto_keys__", keys_edit(sign__kty="OKP")),
        '__crypto_keys__.sign.kty "OKP" (the JOSE spelling; the format requires lowercase "okp")',
        "ERR_CT_FORMAT",
        reference_error="unknown variant `OKP`",
    )
    bad(
        "v2-aes256gcm-no-policy",
        "v2-aes256gcm",
        edit_reserved(v2, "__policy__", lambda _: None),
        "__policy__ removed",
        "ERR_CT_FORMAT",
        reference_error="Missing __policy__",
    )
    bad(
        "v2-aes256gcm-no-signature",
        "v2-aes256gcm",
        edit_reserved(v2, "__signature__", lambda _: None),
        "__signature__ removed",
        "ERR_CT_FORMAT",
        reference_error="Missing __signature__",
    )
    bad(
        "v2-aes256gcm-encryption-stripped",
        "v2-aes256gcm",
        edit_reserved(v2, "__encryption__", lambda _: None),
        "__encryption__ removed: the file now reads as plain safetensors holding ciphertext (downgrade)",
        "ERR_CT_NOT_CONFIDENTIAL",
        require_encrypted=True,
        reference_accepts=True,
        note="the reference reads a file without __encryption__ as plain safetensors and returns the ciphertext bytes",
    )
    bad(
        "plain-required-encrypted",
        "plain",
        files["plain"],
        "a plain file opened with require-encrypted",
        "ERR_CT_NOT_CONFIDENTIAL",
        require_encrypted=True,
        reference_accepts=True,
        note="the reference has no require-encrypted mode",
    )
    bad(
        "v2-aes256gcm-policy-deny",
        "v2-aes256gcm",
        files["v2-aes256gcm-policy-deny"],
        "written by the reference with the policy `package model\\nallow = false`",
        "ERR_CT_POLICY_UNSUPPORTED",
        error_with_rego="ERR_CT_POLICY_DENIED",
        reference_error="Policy evaluation denied",
    )

    write_json(
        out / "manifest.json",
        {
            "description": "CryptoTensors test vectors written by the reference implementation (PyPI cryptotensors "
            f"{_reference_version()}) and tampered copies; see README.md",
            "generator": "scripts/gen_vectors.py",
            "cases": cases,
        },
    )
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(cases)} cases, {total} bytes, to {out}")
    return 0


def _reference_version() -> str:
    from importlib.metadata import version

    return version("cryptotensors")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
