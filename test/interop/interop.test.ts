// Interop with the REAL reference implementation (PyPI cryptotensors 0.2.3, installed in .venv by
// `npm test`), in both directions, driven through test/interop/ref_tool.py. Also byte-level checks on
// files the reference wrote: our canonical serialiser reproduces its header bytes, re-signing with its
// key reproduces its signature bit for bit, and re-encrypting with its recorded IVs reproduces its
// ciphertext and tags.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CryptoTensorsReader, readHeader } from "../../plugin/src/container/reader.js";
import { encryptFile } from "../../plugin/src/container/encrypt-file.js";
import { rewrapFile } from "../../plugin/src/container/rewrap-file.js";
import { signedMessageOf } from "../../plugin/src/container/signing.js";
import { sealInto, TAG_BYTES, type AeadAlgorithm } from "../../plugin/src/crypto/aead.js";
import { chunkCount, chunkNonce } from "../../plugin/src/crypto/chunked.js";
import { ed25519Sign } from "../../plugin/src/crypto/signature.js";
import { unwrapKey } from "../../plugin/src/crypto/wrap.js";
import { encodeHeader, serializeHeaderJson } from "../../plugin/src/format/serialize.js";
import { publicKeyOf, toJwk, type EncryptionKey, type SigningKey } from "../../plugin/src/keys/jwk.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import {
  REPO_ROOT,
  VENV_PYTHON,
  newEncryptionKey,
  newSigningKey,
  sampleTensors,
  tempDir,
  writePlainSafetensors,
  type PlainTensor,
} from "../../plugin/test/helpers.js";

const run = promisify(execFile);
const REF_TOOL = join(REPO_ROOT, "test", "interop", "ref_tool.py");
const ALGS: AeadAlgorithm[] = ["aes256gcm", "aes128gcm", "chacha20poly1305"];
const EMPTY_SHA = createHash("sha256").update(Buffer.alloc(0)).digest("hex");

interface RefResult {
  ok: boolean;
  error_type?: string;
  message?: string;
  tensors?: Record<string, { dtype: string; shape: number[]; sha256: string }>;
  metadata?: Record<string, string> | null;
  zero_elem_fallback?: string[];
}

async function ref(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RefResult> {
  try {
    const { stdout } = await run(VENV_PYTHON, [REF_TOOL, ...args], { env, maxBuffer: 64 << 20 });
    return JSON.parse(stdout) as RefResult;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (e.code === 3 && e.stdout) return JSON.parse(e.stdout) as RefResult;
    throw new Error(`ref_tool failed: ${e.stderr ?? err}`);
  }
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function writeKeys(dir: string, tag: string, enc: EncryptionKey, sign: SigningKey): { enc: string; sign: string; pub: string } {
  const paths = { enc: join(dir, `${tag}-enc.jwk`), sign: join(dir, `${tag}-sign.jwk`), pub: join(dir, `${tag}-sign.pub.jwk`) };
  writeFileSync(paths.enc, JSON.stringify(toJwk(enc)));
  writeFileSync(paths.sign, JSON.stringify(toJwk(sign)));
  writeFileSync(paths.pub, JSON.stringify(toJwk(publicKeyOf(sign), "reference", false)));
  return paths;
}

/** Tensors the reference (through torch) can write and read: every torch-backed dtype family. */
function interopTensors(): PlainTensor[] {
  return [
    ...sampleTensors(),
    { name: "big.multi_chunk", dtype: "F32", shape: [1000] }, // 4000 bytes: many 64-byte chunks
    { name: "scalar", dtype: "F64", shape: [] },
    { name: "c64", dtype: "C64", shape: [3] },
    { name: "i16", dtype: "I16", shape: [2, 3] },
    { name: "i32", dtype: "I32", shape: [7] },
  ];
}

describe("ctensors → reference", () => {
  const dir = tempDir("ct-interop-");
  const plain = join(dir, "plain.safetensors");
  const data = writePlainSafetensors(plain, interopTensors());

  const cases: { version: 1 | 2; alg: AeadAlgorithm; chunk?: number; partial: boolean }[] = [];
  for (const alg of ALGS) {
    cases.push({ version: 1, alg, partial: false }, { version: 2, alg, partial: false }, { version: 2, alg, chunk: 64, partial: false });
  }
  cases.push({ version: 2, alg: "aes256gcm", chunk: 64, partial: true }, { version: 1, alg: "chacha20poly1305", partial: true });

  for (const c of cases) {
    it(`the reference reads our v${c.version} ${c.alg}${c.chunk ? ` chunk ${c.chunk}` : ""}${c.partial ? " partial" : ""} file`, async () => {
      const tag = `${c.version}-${c.alg}-${c.chunk ?? "d"}-${c.partial}`;
      const key = newEncryptionKey(c.alg, `enc-${tag}`);
      const signKey = newSigningKey(`sign-${tag}`);
      const keys = writeKeys(dir, tag, key, signKey);
      const out = join(dir, `ours-${tag}.safetensors`);
      const selected = c.partial ? ["model.layers.*", "empty", "big.multi_chunk"] : undefined;
      await encryptFile(plain, out, { key, signKey, formatVersion: c.version, chunkBytes: c.chunk, tensors: selected });
      const res = await ref(["read", "--in", out, "--enc-key", keys.enc, "--sign-key", keys.pub]);
      expect(res.ok, res.message).toBe(true);
      expect(res.metadata).toEqual({ format: "pt" });
      expect(Object.keys(res.tensors!).sort()).toEqual([...data.keys()].sort());
      for (const [name, bytes] of data) expect(res.tensors![name]!.sha256, name).toBe(sha(bytes));
      // Reference bug: its torch path cannot materialise an ENCRYPTED 0-element tensor
      // ("both buffer length (0) and count (-1) must not be 0"); ref_tool records the fallback.
      expect(res.zero_elem_fallback).toEqual(["empty"]);
    });
  }

  it("the reference finds our keys through CRYPTOTENSOR_KEYS and its key registry (by kid)", async () => {
    const key = newEncryptionKey("aes256gcm", "env-enc");
    const signKey = newSigningKey("env-sign");
    const keys = writeKeys(dir, "env", key, signKey);
    const out = join(dir, "ours-env.safetensors");
    await encryptFile(plain, out, { key, signKey });
    for (const via of ["env", "registry"]) {
      const res = await ref(["read", "--in", out, "--enc-key", keys.enc, "--sign-key", keys.pub, "--keys-via", via]);
      expect(res.ok, `${via}: ${res.message}`).toBe(true);
      expect(res.tensors!["big.multi_chunk"]!.sha256).toBe(sha(data.get("big.multi_chunk")!));
    }
  });

  it("the reference refuses our file with a wrong key or a wrong signer", async () => {
    const key = newEncryptionKey();
    const signKey = newSigningKey();
    const keys = writeKeys(dir, "good", key, signKey);
    const other = writeKeys(dir, "other", newEncryptionKey(), newSigningKey());
    const out = join(dir, "ours-neg.safetensors");
    await encryptFile(plain, out, { key, signKey });
    const wrongKey = await ref(["read", "--in", out, "--enc-key", other.enc, "--sign-key", keys.pub]);
    expect(wrongKey.ok).toBe(false);
    const wrongSigner = await ref(["read", "--in", out, "--enc-key", keys.enc, "--sign-key", other.pub]);
    expect(wrongSigner.ok).toBe(false);
    expect(wrongSigner.message).toMatch(/[Ss]ignature/);
  });

  it("the reference rewraps our file and we read the result with the new keys", async () => {
    const key = newEncryptionKey("aes256gcm", "old");
    const signKey = newSigningKey("old-sign");
    const newKey = newEncryptionKey("aes256gcm", "new");
    const newSign = newSigningKey("new-sign");
    const a = writeKeys(dir, "rw-old", key, signKey);
    const b = writeKeys(dir, "rw-new", newKey, newSign);
    const ours = join(dir, "ours-rw.safetensors");
    const rewrapped = join(dir, "ours-rw-by-ref.safetensors");
    await encryptFile(plain, ours, { key, signKey, chunkBytes: 64 });
    const res = await ref([
      "rewrap",
      "--in",
      ours,
      "--out",
      rewrapped,
      "--old-enc-key",
      a.enc,
      "--old-sign-key",
      a.pub,
      "--new-enc-key",
      b.enc,
      "--new-sign-key",
      b.sign,
    ]);
    expect(res.ok, res.message).toBe(true);
    const reader = await CryptoTensorsReader.open(rewrapped, { keys: [newKey], trust: new TrustStore([newSign]) });
    try {
      for (const [name, bytes] of data) expect(sha(await reader.readTensor(name)), name).toBe(sha(bytes));
    } finally {
      await reader.close();
    }
    // The old key no longer opens it: by kid it is not even a candidate, and under the new kid it fails.
    await expect(CryptoTensorsReader.open(rewrapped, { keys: [key], trust: new TrustStore([newSign]) })).rejects.toMatchObject({
      code: "ERR_CT_KEY_NOT_FOUND",
    });
    await expect(
      CryptoTensorsReader.open(rewrapped, { keys: [{ ...key, kid: "new" }], trust: new TrustStore([newSign]) }),
    ).rejects.toMatchObject({ code: "ERR_CT_DECRYPTION_FAILED" });
  });
});

describe("reference → ctensors", () => {
  const dir = tempDir("ct-interop-ref-");
  const plain = join(dir, "plain.safetensors");
  const data = writePlainSafetensors(plain, interopTensors());

  const cases: { version: 1 | 2; alg: AeadAlgorithm; chunk?: number; partial: boolean }[] = [];
  for (const alg of ALGS) {
    cases.push({ version: 1, alg, partial: false }, { version: 2, alg, partial: false }, { version: 2, alg, chunk: 16, partial: false });
  }
  cases.push({ version: 2, alg: "aes128gcm", chunk: 1024, partial: true }, { version: 1, alg: "aes256gcm", partial: true });

  for (const c of cases) {
    it(`we read, verify and reproduce the reference's v${c.version} ${c.alg}${c.chunk ? ` chunk ${c.chunk}` : ""}${c.partial ? " partial" : ""} file bit for bit`, async () => {
      const tag = `${c.version}-${c.alg}-${c.chunk ?? "d"}-${c.partial}`;
      const key = newEncryptionKey(c.alg, `renc-${tag}`);
      const signKey = newSigningKey(`rsign-${tag}`);
      const keys = writeKeys(dir, `r${tag}`, key, signKey);
      const out = join(dir, `ref-${tag}.safetensors`);
      const args = [
        "write",
        "--plain",
        plain,
        "--out",
        out,
        "--enc-key",
        keys.enc,
        "--sign-key",
        keys.sign,
        "--version",
        String(c.version),
      ];
      if (c.chunk) args.push("--chunk-size", String(c.chunk));
      if (c.partial) args.push("--tensors", "model.layers.0.self_attn.q_proj.weight,empty,big.multi_chunk,mask");
      const res = await ref(args);
      expect(res.ok, res.message).toBe(true);

      // (a) verify with the pinned signer key and decrypt every tensor to the known plaintext.
      const reader = await CryptoTensorsReader.open(out, { keys: [key], trust: new TrustStore([publicKeyOf(signKey)]) });
      try {
        for (const [name, bytes] of data) expect(sha(await reader.readTensor(name)), name).toBe(sha(bytes));
        expect(reader.crypto!.encryption.size).toBe(c.partial ? 4 : data.size);
      } finally {
        await reader.close();
      }

      const fileBytes = readFileSync(out);
      const { header, crypto } = await readHeader(out);
      // (b) our canonical serialiser reproduces the reference's header bytes exactly (padding included).
      const ours = encodeHeader(serializeHeaderJson(header.metadata, header.tensors));
      expect(Buffer.from(ours).equals(fileBytes.subarray(0, header.dataStart))).toBe(true);
      // (c) re-signing the canonical message with the same seed reproduces the signature bit for bit.
      expect(Buffer.from(ed25519Sign(signKey.d!, signedMessageOf(header))).equals(Buffer.from(crypto!.signature))).toBe(true);
      // (d) unwrap each DEK and re-encrypt with the recorded IVs: same ciphertext and tags.
      for (const [name, e] of crypto!.encryption) {
        const t = header.byName.get(name)!;
        const pt = data.get(name)!;
        const ct = fileBytes.subarray(header.dataStart + t.begin, header.dataStart + t.end);
        const dek = unwrapKey(c.alg, key.k, e.wrapped);
        const out2 = new Uint8Array(pt.length);
        if (e.scheme === "monolithic") {
          if (pt.length === 0) {
            expect([e.iv.length, e.tag.length]).toEqual([0, 0]); // the reference's empty v1 tensor
            continue;
          }
          const tagBytes = sealInto(c.alg, dek, e.iv, pt, out2);
          expect(Buffer.from(tagBytes).equals(Buffer.from(e.tag)), name).toBe(true);
        } else {
          const chunk = crypto!.keys.chunkBytes!;
          const tags = new Uint8Array(chunkCount(pt.length, chunk) * TAG_BYTES);
          for (let i = 0; i * chunk < Math.max(pt.length, 1); i++) {
            const part = pt.subarray(i * chunk, Math.min(pt.length, (i + 1) * chunk));
            tags.set(sealInto(c.alg, dek, chunkNonce(e.baseIv, i), part, out2.subarray(i * chunk, i * chunk + part.length)), i * TAG_BYTES);
          }
          expect(Buffer.from(tags).equals(Buffer.from(e.tags)), name).toBe(true);
        }
        expect(Buffer.from(out2).equals(ct), name).toBe(true);
      }
    });
  }

  it("we rewrap a reference file and the reference reads it with the new keys", async () => {
    const key = newEncryptionKey("chacha20poly1305", "r-old");
    const signKey = newSigningKey("r-old-sign");
    const newKey = newEncryptionKey("chacha20poly1305", "r-new");
    const newSign = newSigningKey("r-new-sign");
    const a = writeKeys(dir, "rrw-old", key, signKey);
    const b = writeKeys(dir, "rrw-new", newKey, newSign);
    const refFile = join(dir, "ref-rw.safetensors");
    const copy = join(dir, "ref-rw-copy.safetensors");
    expect(
      (await ref(["write", "--plain", plain, "--out", refFile, "--enc-key", a.enc, "--sign-key", a.sign, "--chunk-size", "100"])).ok,
    ).toBe(true);
    copyFileSync(refFile, copy);
    const rewrapped = join(dir, "ref-rw-by-us.safetensors");
    await rewrapFile(copy, rewrapped, { oldKeys: [key], trust: new TrustStore([signKey]), newKey, signKey: newSign });
    const res = await ref(["read", "--in", rewrapped, "--enc-key", b.enc, "--sign-key", b.pub]);
    expect(res.ok, res.message).toBe(true);
    for (const [name, bytes] of data) expect(res.tensors![name]!.sha256, name).toBe(name === "empty" ? EMPTY_SHA : sha(bytes));
    expect((await ref(["read", "--in", rewrapped, "--enc-key", a.enc, "--sign-key", b.pub])).ok).toBe(false);
    // Data section untouched by rewrap.
    const before = await readHeader(refFile);
    const after = await readHeader(rewrapped);
    expect(readFileSync(refFile).subarray(before.header.dataStart).equals(readFileSync(rewrapped).subarray(after.header.dataStart))).toBe(
      true,
    );
  });

  it("a file signed with the reference's fixed integration key verifies with that key and no other", async () => {
    // Keys from the reference's integration tests (integration-tests/utils/write_jwk.py), reused so a
    // third party can reproduce this case.
    const key: EncryptionKey = {
      kind: "enc",
      alg: "aes256gcm",
      k: Buffer.from("L+xl38kCEteXk+6Tm1mzu5JvFriVibzAsgpYX2WmAgA=", "base64"),
      kid: "integration",
    };
    const d = Buffer.from("uTKTjQL6pX1Tqb7Hpor4A1s+TdgHReQEITZWWAf7DIc=", "base64");
    const x = Buffer.from("xkqFcGjXCBMk75q0259N1ggRJsqc+FTAiXMuKX72fd8=", "base64");
    const signKey: SigningKey = { kind: "sign", x, d, kid: "integration" };
    const keys = writeKeys(dir, "integ", key, signKey);
    const out = join(dir, "ref-integ.safetensors");
    expect((await ref(["write", "--plain", plain, "--out", out, "--enc-key", keys.enc, "--sign-key", keys.sign])).ok).toBe(true);
    const { header, crypto } = await readHeader(out);
    expect(Buffer.from(ed25519Sign(d, signedMessageOf(header))).equals(Buffer.from(crypto!.signature))).toBe(true);
    await expect(
      CryptoTensorsReader.open(out, { keys: [key], trust: new TrustStore([newSigningKey("integration")]) }),
    ).rejects.toMatchObject({ code: "ERR_CT_SIGNATURE_INVALID" });
  });
});
