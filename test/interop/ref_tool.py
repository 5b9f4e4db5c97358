#!/usr/bin/env python3
"""ref_tool.py - TEST-ONLY command-line oracle around the REAL CryptoTensors reference.

Used by the TypeScript (vitest) interop tests via a subprocess. It drives the PyPI
package `cryptotensors` (0.2.3, the reference implementation) and plain upstream
`safetensors`; it implements no cryptography itself. Never use it for real keys.

Subcommands (every run prints exactly one JSON document on stdout):
  write      --plain IN --out OUT --enc-key ENC.jwk --sign-key SIGN.jwk [--version 1|2]
             [--chunk-size N] [--tensors a,b] [--policy-local TEXT] [--policy-remote TEXT]
             -> {"ok":true,"header_len":N}
  read       --in FILE [--enc-key ENC.jwk] [--sign-key SIGN.jwk] [--keys-via direct|env|registry]
             -> {"ok":true,"tensors":{name:{"dtype","shape","sha256"}},"metadata":..,"reserved":..,
                 "zero_elem_fallback":[encrypted 0-element tensors the reference's torch path
                 cannot materialise (see cmd_read); hashed as empty]}
  rewrap     --in FILE --out FILE2 --old-enc-key A.jwk --old-sign-key S.jwk
             --new-enc-key B.jwk --new-sign-key S2.jwk          -> {"ok":true,"header_len":N}
  plain-read --in FILE   (upstream safetensors, no decryption; same output as read,
             "metadata" is the raw __metadata__ incl. reserved "__*" keys, "reserved" is null)
On an exception: {"ok":false,"error_type":<class name>,"message":<str>} and exit code 3.

Key files are JWKs in the reference spelling (standard padded base64):
  enc  {"kty":"oct","alg":"aes256gcm"|"aes128gcm"|"chacha20poly1305","k":..,"kid":..,"jku"?}
  sign {"kty":"okp","alg":"ed25519","x":..,"d"? (32-byte seed),"kid":..,"jku"?}
or a JWK set {"keys":[...]} (the first key of the needed kty is used).
Key modes for `read`: direct = safe_open(config={"enc_key","sign_key"}); env = JWK set in
$CRYPTOTENSOR_KEYS (if the header has a kid the JWK must carry the same kid; kid-less
header -> first key of the kty);
registry = register_direct_key_provider(keys=[...]) (every key needs a "kid").
In direct/registry modes an inherited $CRYPTOTENSOR_KEYS is removed for determinism.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys

JWK_FIELDS = ("alg", "kid", "jku", "k", "x", "d")  # what lib.rs pykeymaterial_from_dict reads


def load_jwk(path, kty):
    """Return the first JWK of type `kty` ("oct" | "okp") from a JWK or JWK-set file."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    keys = data["keys"] if isinstance(data, dict) and "keys" in data else (data if isinstance(data, list) else [data])
    for key in keys:
        if isinstance(key, dict) and key.get("kty", kty) == kty:
            return key
    raise ValueError(f"no JWK with kty={kty!r} in {path}")


def key_dict(path, kty):
    """Reference config dict (lib.rs pykeymaterial_from_dict): only known string fields.

    kty is ignored by the reference (role comes from enc_key/sign_key position); we keep
    it out. Missing "k" would silently generate a random enc key, so we refuse that.
    """
    jwk = load_jwk(path, kty)
    out = {f: jwk[f] for f in JWK_FIELDS if isinstance(jwk.get(f), str)}
    if kty == "oct" and "k" not in out:
        raise ValueError(f"enc JWK in {path} has no 'k'")
    if kty == "okp" and "x" not in out and "d" not in out:
        raise ValueError(f"sign JWK in {path} has neither 'x' nor 'd'")
    return out


def key_config(enc_path, sign_path):
    return {"enc_key": key_dict(enc_path, "oct"), "sign_key": key_dict(sign_path, "okp")}


def header_len(path):
    with open(path, "rb") as fh:
        return struct.unpack("<Q", fh.read(8))[0]


def tensor_bytes(t):
    """Raw little-endian bytes of a CPU tensor, unchanged (bf16, bool, complex, 0-dim, 0-elem)."""
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    if flat.dtype != torch.uint8:
        flat = flat.view(torch.uint8)
    return flat.numpy().tobytes()


def describe(f, name):
    t = f.get_tensor(name)
    return {"dtype": str(f.get_slice(name).get_dtype()), "shape": list(t.shape), "sha256": hashlib.sha256(tensor_bytes(t)).hexdigest()}


def cmd_write(a):
    import safetensors
    import safetensors.torch
    import cryptotensors.torch

    tensors = safetensors.torch.load_file(a.plain)
    with safetensors.safe_open(a.plain, framework="pt") as f:
        metadata = f.metadata()
    config = key_config(a.enc_key, a.sign_key)
    if a.version is not None:
        config["version"] = a.version
    if a.chunk_size is not None:
        config["chunk_size"] = a.chunk_size
    if a.tensors is not None:
        config["tensors"] = [n for n in a.tensors.split(",") if n]
    policy = {}
    if a.policy_local is not None:
        policy["local"] = a.policy_local
    if a.policy_remote is not None:
        policy["remote"] = a.policy_remote
    if policy:
        config["policy"] = policy
    cryptotensors.torch.save_file(tensors, a.out, metadata=metadata, config=config)
    return {"header_len": header_len(a.out)}


def cmd_read(a):
    via = a.keys_via
    if via != "env":
        os.environ.pop("CRYPTOTENSOR_KEYS", None)
    keys = []
    if a.enc_key:
        keys.append(("oct", a.enc_key))
    if a.sign_key:
        keys.append(("okp", a.sign_key))
    jwks = [dict(key_dict(p, kty), kty=kty) for kty, p in keys]
    if via == "env":
        os.environ["CRYPTOTENSOR_KEYS"] = json.dumps({"keys": jwks})
    import cryptotensors

    config = None
    if via == "direct" and keys:
        config = {("enc_key" if kty == "oct" else "sign_key"): key_dict(p, kty) for kty, p in keys}
    elif via == "registry" and jwks:
        cryptotensors.register_direct_key_provider(keys=jwks)
    out = {"tensors": {}, "zero_elem_fallback": []}
    with cryptotensors.safe_open(a.inp, framework="pt", config=config) as f:
        for n in f.keys():
            try:
                out["tensors"][n] = describe(f, n)
            except ValueError:
                # Reference quirk (0.2.3): get_tensor of an ENCRYPTED 0-element tensor raises
                # torch.frombuffer's ValueError ("both buffer length (0) and count (-1) must
                # not be 0") in create_tensor, i.e. after the reference's decryption step (its
                # decryption errors are SafetensorError). The data is empty by definition.
                sl = f.get_slice(n)
                shape = list(sl.get_shape())
                if 0 not in shape:
                    raise
                out["tensors"][n] = {"dtype": str(sl.get_dtype()), "shape": shape, "sha256": hashlib.sha256(b"").hexdigest()}
                out["zero_elem_fallback"].append(n)
        out["metadata"] = f.metadata()
        out["reserved"] = f.reserved_metadata() if hasattr(f, "reserved_metadata") else None
    return out


def cmd_rewrap(a):
    import cryptotensors

    os.environ.pop("CRYPTOTENSOR_KEYS", None)
    old = key_config(a.old_enc_key, a.old_sign_key)
    new = key_config(a.new_enc_key, a.new_sign_key)
    copied = os.path.abspath(a.inp) != os.path.abspath(a.out)
    if copied:
        shutil.copyfile(a.inp, a.out)
    # Signature (lib.rs): rewrap_file(filename, new_config, old_config=None) -> None, in place.
    try:
        cryptotensors.rewrap_file(a.out, new, old)
    except BaseException:
        if copied:  # do not leave a stale copy of the input behind as "output"
            os.remove(a.out)
        raise
    return {"header_len": header_len(a.out)}


def cmd_plain_read(a):
    import safetensors

    with safetensors.safe_open(a.inp, framework="pt") as f:
        return {"tensors": {n: describe(f, n) for n in f.keys()}, "metadata": f.metadata(), "reserved": None}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="encrypt a plain safetensors file with the reference")
    w.add_argument("--plain", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--enc-key", required=True)
    w.add_argument("--sign-key", required=True)
    w.add_argument("--version", metavar="1|2", help="passed through; the reference validates it")
    w.add_argument("--chunk-size", type=int)
    w.add_argument("--tensors", help="comma separated names to encrypt (default: all)")
    w.add_argument("--policy-local")
    w.add_argument("--policy-remote")
    w.set_defaults(fn=cmd_write)
    r = sub.add_parser("read", help="decrypt + hash every tensor with the reference")
    r.add_argument("--in", dest="inp", required=True)
    r.add_argument("--enc-key")
    r.add_argument("--sign-key")
    r.add_argument("--keys-via", choices=["direct", "env", "registry"], default="direct")
    r.set_defaults(fn=cmd_read)
    rw = sub.add_parser("rewrap", help="re-wrap DEKs with new keys via reference rewrap_file")
    rw.add_argument("--in", dest="inp", required=True)
    rw.add_argument("--out", required=True)
    for n in ("old-enc-key", "old-sign-key", "new-enc-key", "new-sign-key"):
        rw.add_argument("--" + n, required=True)
    rw.set_defaults(fn=cmd_rewrap)
    pr = sub.add_parser("plain-read", help="read with upstream safetensors (no decryption)")
    pr.add_argument("--in", dest="inp", required=True)
    pr.set_defaults(fn=cmd_plain_read)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        result = args.fn(args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        print(json.dumps({"ok": False, "error_type": type(e).__name__, "message": str(e)}))
        return 3
    print(json.dumps(dict({"ok": True}, **result), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
