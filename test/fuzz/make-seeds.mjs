// Writes the fuzzers' seed corpus into test/fuzz/seeds/ (committed; rerun only to change it):
// one small plaintext tensor set, encrypted by our writer (v1 and v2, the three AEAD algorithms, a
// partially encrypted file with and without plaintext digests) and by the reference `cryptotensors`
// Python package (.venv, driven through test/interop/ref_tool.py), plus the keys (test-only) and the
// SHA-256 of every plaintext tensor, which the oracle compares against whatever a reader accepts.
// Needs `npm run build` (it imports plugin/dist) and `npm run setup` (.venv).
//   node test/fuzz/make-seeds.mjs

import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { encryptFile, publicKeyOf, toJwk } from "../../plugin/dist/index.js";
import { ed25519PublicKey } from "../../plugin/dist/crypto/signature.js";
import { encodeHeader, layoutTensors, serializeHeaderJson } from "../../plugin/dist/format/serialize.js";
import { tensorByteLength } from "../../plugin/dist/format/dtype.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const out = join(here, "seeds");
const tmp = mkdtempSync(join(tmpdir(), "ct-seeds-"));
mkdirSync(out, { recursive: true });

// Small on purpose: mutations hit every part of the file often. "w" spans several 32-byte chunks.
const TENSORS = [
  { name: "model.w", dtype: "F32", shape: [4, 8] },
  { name: "model.b", dtype: "BF16", shape: [6] },
  { name: "10", dtype: "U8", shape: [5] },
  { name: "2", dtype: "I64", shape: [1, 2] },
  { name: "empty", dtype: "F32", shape: [0, 3] },
  { name: "norm", dtype: "F16", shape: [3] },
];
const CHUNK = 32;

const data = new Map(TENSORS.map((t) => [t.name, new Uint8Array(randomBytes(Number(tensorByteLength(t.dtype, t.shape))))]));
const infos = layoutTensors(TENSORS);
const header = encodeHeader(serializeHeaderJson(new Map([["format", "pt"]]), infos));
const plain = new Uint8Array(header.length + (infos.at(-1)?.end ?? 0));
plain.set(header, 0);
for (const i of infos) plain.set(data.get(i.name), header.length + i.begin);
const plainPath = join(out, "plain.safetensors");
writeFileSync(plainPath, plain);

const keyBytes = { aes256gcm: 32, aes128gcm: 16, chacha20poly1305: 32 };
const encKeys = Object.fromEntries(
  Object.entries(keyBytes).map(([alg, n]) => [alg, { kind: "enc", alg, k: new Uint8Array(randomBytes(n)), kid: `fuzz-${alg}` }]),
);
const d = new Uint8Array(randomBytes(32));
const signKey = { kind: "sign", x: ed25519PublicKey(d), d, kid: "fuzz-signer" };

const keysDir = join(out, "keys");
mkdirSync(keysDir, { recursive: true });
for (const [alg, k] of Object.entries(encKeys)) writeFileSync(join(keysDir, `enc-${alg}.jwk`), JSON.stringify(toJwk(k)));
writeFileSync(join(keysDir, "sign.jwk"), JSON.stringify(toJwk(signKey)));
writeFileSync(join(keysDir, "sign.pub.jwk"), JSON.stringify(toJwk(publicKeyOf(signKey), "reference", false)));

const ours = [
  ["ts-v1-aes256gcm", { key: encKeys.aes256gcm, formatVersion: 1 }],
  ["ts-v2-aes128gcm", { key: encKeys.aes128gcm, formatVersion: 2, chunkBytes: CHUNK }],
  ["ts-v2-chacha20poly1305", { key: encKeys.chacha20poly1305, formatVersion: 2, chunkBytes: CHUNK }],
  ["ts-v2-partial", { key: encKeys.aes256gcm, formatVersion: 2, chunkBytes: CHUNK, tensors: ["model.*"] }],
  [
    "ts-v2-partial-nodigest",
    { key: encKeys.aes256gcm, formatVersion: 2, chunkBytes: CHUNK, tensors: ["model.*"], plaintextDigests: false },
  ],
];
for (const [name, options] of ours) await encryptFile(plainPath, join(out, `${name}.safetensors`), { signKey, ...options });

const python = join(root, ".venv", "bin", "python");
const refTool = join(root, "test", "interop", "ref_tool.py");
const ref = [
  ["ref-v1-aes256gcm", "aes256gcm", ["--version", "1"]],
  ["ref-v2-aes128gcm", "aes128gcm", ["--version", "2", "--chunk-size", String(CHUNK)]],
  ["ref-v2-chacha20poly1305", "chacha20poly1305", ["--version", "2", "--chunk-size", String(CHUNK)]],
  ["ref-v2-partial", "aes256gcm", ["--version", "2", "--chunk-size", String(CHUNK), "--tensors", "model.w,model.b"]],
];
for (const [name, alg, args] of ref) {
  execFileSync(
    python,
    [
      refTool,
      "write",
      "--plain",
      plainPath,
      "--out",
      join(out, `${name}.safetensors`),
      "--enc-key",
      join(keysDir, `enc-${alg}.jwk`),
      "--sign-key",
      join(keysDir, "sign.jwk"),
      ...args,
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
}

const expected = Object.fromEntries([...data].map(([n, b]) => [n, createHash("sha256").update(b).digest("hex")]));
writeFileSync(join(out, "expected.json"), `${JSON.stringify({ tensors: TENSORS, sha256: expected }, null, 2)}\n`);
rmSync(tmp, { recursive: true, force: true });
console.log(`seeds written to ${out}`);
