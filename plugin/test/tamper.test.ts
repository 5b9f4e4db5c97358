// Tamper matrix: encrypt sample files (v1, v2 with several chunks per tensor, partially encrypted), apply one
// class of hostile modification to a copy of the bytes, then open with CryptoTensorsReader and read every
// tensor. Each case must fail with the right CryptoTensorsError code at the right stage and never hand out
// data: `readTensorInto`'s buffer (pre-filled with a non-zero pattern) must be all zeros after a failure.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CryptoTensorsReader, type OpenOptions } from "../src/container/reader.js";
import { encryptFile } from "../src/container/encrypt-file.js";
import { CRYPTO_KEYS_KEY, DIGESTS_KEY, ENCRYPTION_KEY, POLICY_KEY, SIGNATURE_KEY, serializePolicy } from "../src/container/reserved.js";
import { decodeBase64, encodeBase64 } from "../src/crypto/base64.js";
import type { CryptoTensorsErrorCode } from "../src/errors.js";
import type { TensorInfo } from "../src/format/header.js";
import { TrustStore } from "../src/keys/trust.js";
import { REGO_PYTHON_ENV } from "../src/policy.js";
import { expectCode, newEncryptionKey, newSigningKey, sampleTensors, tempDir, writePlainSafetensors } from "./helpers.js";
import {
  assembleText,
  dissect,
  editEncryptionField,
  editInner,
  flipBase64,
  flipDataByte,
  tamper,
  tensorOf,
  type Dissected,
} from "./hostile-files.js";

// A non-default policy must be refused, not evaluated by a Rego engine configured in the environment.
delete process.env[REGO_PYTHON_ENV];

const dir = tempDir("ctensors-tamper-");
const key = newEncryptionKey("aes256gcm", "enc-1");
const signKey = newSigningKey("sign-1");
const trust = new TrustStore([signKey]);
const victimOptions = (): OpenOptions => ({ keys: [key], trust });

/** 9216 bytes: 10 chunks of CHUNK (the last one 216 bytes) in the v2 file. */
const Q = "model.layers.0.self_attn.q_proj.weight";
/** F16[96,48], also 9216 bytes: used to swap offsets with Q. */
const UP = "model.layers.0.mlp.up_proj.weight";
/** A tensor left in plaintext in the partially encrypted file. */
const NORM = "model.norm.weight";
const CHUNK = 1000;

let plain: Map<string, Uint8Array>;
const fixtures = {} as Record<"v1" | "v2" | "partial" | "partialNoDigest", Uint8Array>;

beforeAll(async () => {
  const src = join(dir, "plain.safetensors");
  plain = writePlainSafetensors(src, sampleTensors());
  const make = async (name: keyof typeof fixtures, options: Partial<Parameters<typeof encryptFile>[2]>) => {
    const out = join(dir, `${name}.safetensors`);
    await encryptFile(src, out, { key, signKey, ...options });
    fixtures[name] = new Uint8Array(readFileSync(out));
  };
  await make("v1", { formatVersion: 1 });
  await make("v2", { formatVersion: 2, chunkBytes: CHUNK });
  await make("partial", { formatVersion: 2, chunkBytes: CHUNK, tensors: ["model.layers.*"] });
  await make("partialNoDigest", { formatVersion: 2, chunkBytes: CHUNK, tensors: ["model.layers.*"], plaintextDigests: false });
});

// ---------------------------------------------------------------------------------------------------
// Hostile-file construction: hostile-files.ts

/** The header JSON text with tensors and metadata members in a chosen order and optional whitespace. */
function headerText(f: Dissected, options: { tensorOrder: TensorInfo[]; metadataKeys: string[]; pretty: boolean }): string {
  const nl = options.pretty ? "\n" : "";
  const ind = (n: number) => (options.pretty ? " ".repeat(n) : "");
  const sep = options.pretty ? ": " : ":";
  const comma = options.pretty ? " , " : ",";
  const md = options.metadataKeys.map((k) => `${nl}${ind(4)}${JSON.stringify(k)}${sep}${JSON.stringify(f.metadata.get(k))}`).join(",");
  const entries = options.tensorOrder.map(
    (t) =>
      `${nl}${ind(2)}${JSON.stringify(t.name)}${sep}{ ${nl}${ind(4)}"data_offsets"${sep}[ ${t.begin}${comma}${t.end} ]${comma}` +
      `"shape"${sep}[${t.shape.join(comma)}]${comma}\t"dtype"${sep}${JSON.stringify(t.dtype)} }`,
  );
  const members = [...entries, `${nl}${ind(2)}"__metadata__"${sep}{${md}${nl}${ind(2)}}`];
  return `${ind(1)}{${members.join(",")}${nl}}${nl}\t`;
}

// ---------------------------------------------------------------------------------------------------
// Opening and reading

type Outcome =
  | { stage: "open"; error: unknown }
  | { stage: "read"; failures: { tensor: string; error: unknown; outAllZero: boolean }[]; data: Map<string, Uint8Array> };

let fileCounter = 0;

/** Writes `bytes` to a fresh file, opens it and reads every tensor with readTensorInto. */
async function openAndReadAll(bytes: Uint8Array, options: OpenOptions = victimOptions()): Promise<Outcome> {
  const path = join(dir, `case-${++fileCounter}.safetensors`);
  writeFileSync(path, bytes);
  let reader: CryptoTensorsReader;
  try {
    reader = await CryptoTensorsReader.open(path, options);
  } catch (error) {
    return { stage: "open", error };
  }
  const failures: { tensor: string; error: unknown; outAllZero: boolean }[] = [];
  const data = new Map<string, Uint8Array>();
  try {
    for (const t of reader.tensors) {
      const out = new Uint8Array(t.end - t.begin).fill(0xa5);
      try {
        await reader.readTensorInto(t.name, out);
        data.set(t.name, out);
      } catch (error) {
        failures.push({ tensor: t.name, error, outAllZero: out.every((b) => b === 0) });
      }
    }
  } finally {
    await reader.close();
  }
  return { stage: "read", failures, data };
}

/** The file must be refused when opened: no reader, no data. */
async function expectRefusedAtOpen(bytes: Uint8Array, code: CryptoTensorsErrorCode, options?: OpenOptions): Promise<void> {
  const outcome = await openAndReadAll(bytes, options);
  expect(outcome.stage, `expected ${code} at open`).toBe("open");
  expectCode((outcome as { error: unknown }).error, code);
}

/**
 * The file opens (the header is authentic) but reading `tensor` must fail with `code`, leaving the caller's
 * buffer zeroed; every other tensor still reads back as the original plaintext.
 */
async function expectRefusedAtRead(bytes: Uint8Array, tensor: string, code: CryptoTensorsErrorCode, options?: OpenOptions): Promise<void> {
  const outcome = await openAndReadAll(bytes, options);
  if (outcome.stage === "open") throw new Error(`expected ${code} when reading ${tensor}, but open failed: ${String(outcome.error)}`);
  expect(outcome.failures.map((f) => f.tensor)).toEqual([tensor]);
  const [failure] = outcome.failures;
  expectCode(failure!.error, code);
  expect(failure!.outAllZero, "the output buffer must be zeroed after a failed read").toBe(true);
  expect(outcome.data.has(tensor)).toBe(false);
  for (const [name, bytesRead] of outcome.data) expect(Buffer.from(bytesRead), name).toEqual(Buffer.from(plain.get(name)!));
}

// ---------------------------------------------------------------------------------------------------

describe("fixtures are sound (so every failure below is caused by the tampering)", () => {
  for (const name of ["v1", "v2", "partial", "partialNoDigest"] as const) {
    it(`${name} opens and every tensor reads back as the plaintext`, async () => {
      const outcome = await openAndReadAll(fixtures[name]);
      expect(outcome.stage).toBe("read");
      if (outcome.stage !== "read") return;
      expect(outcome.failures).toEqual([]);
      expect(outcome.data.size).toBe(plain.size);
      for (const [n, bytes] of plain) expect(Buffer.from(outcome.data.get(n)!), n).toEqual(Buffer.from(bytes));
    });
  }

  it("the v2 fixture splits the victim tensor into 10 chunks and the partial one leaves tensors in plaintext", () => {
    const v2 = dissect(fixtures.v2);
    const q = tensorOf(v2, Q);
    expect(q.end - q.begin).toBe(9216);
    expect(JSON.parse(v2.metadata.get(CRYPTO_KEYS_KEY)!).chunk_size).toBe(CHUNK);
    expect(decodeBase64(JSON.parse(v2.metadata.get(ENCRYPTION_KEY)!)[Q].tags)!.length).toBe(16 * 10);
    const partial = dissect(fixtures.partial);
    expect(Object.keys(JSON.parse(partial.metadata.get(ENCRYPTION_KEY)!)).sort()).toEqual([UP, Q].sort());
    expect(Object.keys(JSON.parse(partial.metadata.get(DIGESTS_KEY)!).tensors)).toContain(NORM);
  });
});

describe.each(["v1", "v2"] as const)("%s: header modified without re-signing → ERR_CT_SIGNATURE_INVALID", (version) => {
  it("a __metadata__ user value changed", async () => {
    const bytes = tamper(fixtures[version], (f) => {
      expect(f.metadata.get("format")).toBe("pt");
      f.metadata.set("format", "np");
    });
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("a __metadata__ user entry added", async () => {
    const bytes = tamper(fixtures[version], (f) => f.metadata.set("license", "mit"));
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("a tensor's shape changed (same byte size)", async () => {
    const bytes = tamper(fixtures[version], (f) => {
      tensorOf(f, Q).shape = [96, 24];
    });
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("a tensor's dtype changed (same byte size)", async () => {
    const bytes = tamper(fixtures[version], (f) => {
      tensorOf(f, Q).dtype = "I32";
    });
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("data_offsets swapped between two same-size tensors", async () => {
    const bytes = tamper(fixtures[version], (f) => {
      const a = tensorOf(f, Q);
      const b = tensorOf(f, UP);
      expect(a.end - a.begin).toBe(b.end - b.begin);
      [a.begin, a.end, b.begin, b.end] = [b.begin, b.end, a.begin, a.end];
    });
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("a data tag flipped in __encryption__ (the header changes, so the signature fails first)", async () => {
    const field = version === "v1" ? "tag" : "tags";
    const bytes = tamper(fixtures[version], (f) => editEncryptionField(f, Q, field, (b) => flipBase64(b, 0)));
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("__policy__ replaced by a non-default policy", async () => {
    const bytes = tamper(fixtures[version], (f) =>
      f.metadata.set(POLICY_KEY, serializePolicy({ local: "package model\nallow = false", remote: "package model\nallow = true" })),
    );
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("signature replaced by 64 random bytes of valid base64", async () => {
    const bytes = tamper(fixtures[version], (f) =>
      f.metadata.set(SIGNATURE_KEY, encodeBase64(new Uint8Array(64).map((_, i) => (i * 37 + 11) & 0xff))),
    );
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("signature replaced by garbage that is not base64", async () => {
    const bytes = tamper(fixtures[version], (f) => f.metadata.set(SIGNATURE_KEY, "!!not*base64!!"));
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("signature truncated to 32 bytes", async () => {
    const bytes = tamper(fixtures[version], (f) =>
      f.metadata.set(SIGNATURE_KEY, encodeBase64(decodeBase64(f.metadata.get(SIGNATURE_KEY)!)!.subarray(0, 32))),
    );
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });
});

describe("ciphertext modified (the header stays authentic) → ERR_CT_DECRYPTION_FAILED at read", () => {
  const cases: [string, number][] = [
    ["first chunk", 0],
    ["a middle chunk", 5 * CHUNK + 17],
    ["the last (short) chunk", 9215],
  ];
  for (const [where, offset] of cases) {
    it(`v2: one byte flipped in ${where}`, async () => {
      const bytes = tamper(fixtures.v2, (f) => flipDataByte(f, Q, offset));
      await expectRefusedAtRead(bytes, Q, "ERR_CT_DECRYPTION_FAILED");
    });
  }

  it("v1: one byte flipped in a monolithic tensor", async () => {
    const bytes = tamper(fixtures.v1, (f) => flipDataByte(f, Q, 4000));
    await expectRefusedAtRead(bytes, Q, "ERR_CT_DECRYPTION_FAILED");
  });

  it("v2: two same-size ciphertexts swapped in the data section", async () => {
    const bytes = tamper(fixtures.v2, (f) => {
      const a = tensorOf(f, Q);
      const b = tensorOf(f, UP);
      const qBytes = f.data.slice(a.begin, a.end);
      f.data.copyWithin(a.begin, b.begin, b.end);
      f.data.set(qBytes, b.begin);
    });
    const outcome = await openAndReadAll(bytes);
    expect(outcome.stage).toBe("read");
    if (outcome.stage !== "read") return;
    expect(outcome.failures.map((x) => x.tensor).sort()).toEqual([Q, UP].sort());
    for (const failure of outcome.failures) {
      expectCode(failure.error, "ERR_CT_DECRYPTION_FAILED");
      expect(failure.outAllZero).toBe(true);
    }
  });
});

describe("crypto fields modified and re-signed", () => {
  const attacker = newSigningKey("attacker");
  const attackerReusingKid = newSigningKey("sign-1");

  for (const version of ["v1", "v2"] as const) {
    const field = version === "v1" ? "tag" : "tags";

    it(`${version}: data tag flipped, re-signed by the attacker's own key (not trusted) → ERR_CT_UNTRUSTED_SIGNER`, async () => {
      const bytes = tamper(
        fixtures[version],
        (f) => {
          editEncryptionField(f, Q, field, (b) => flipBase64(b, 0));
          editInner(f, CRYPTO_KEYS_KEY, (doc) => {
            doc.sign.kid = attacker.kid;
          });
        },
        attacker,
      );
      await expectRefusedAtOpen(bytes, "ERR_CT_UNTRUSTED_SIGNER");
    });

    it(`${version}: data tag flipped, re-signed by an attacker key claiming the trusted kid → ERR_CT_SIGNATURE_INVALID`, async () => {
      const bytes = tamper(fixtures[version], (f) => editEncryptionField(f, Q, field, (b) => flipBase64(b, 0)), attackerReusingKid);
      await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
    });

    it(`${version}: data tag flipped, re-signed with the real signing key (bug / insider) → ERR_CT_DECRYPTION_FAILED at read`, async () => {
      const bytes = tamper(fixtures[version], (f) => editEncryptionField(f, Q, field, (b) => flipBase64(b, 0)), signKey);
      await expectRefusedAtRead(bytes, Q, "ERR_CT_DECRYPTION_FAILED");
    });

    it(`${version}: wrapped_key modified, re-signed with the real key → ERR_CT_DECRYPTION_FAILED at open`, async () => {
      const bytes = tamper(fixtures[version], (f) => editEncryptionField(f, Q, "wrapped_key", (b) => flipBase64(b, 7, 3)), signKey);
      await expectRefusedAtOpen(bytes, "ERR_CT_DECRYPTION_FAILED");
    });

    it(`${version}: key_tag modified, re-signed with the real key → ERR_CT_DECRYPTION_FAILED at open`, async () => {
      const bytes = tamper(fixtures[version], (f) => editEncryptionField(f, Q, "key_tag", (b) => flipBase64(b, 15, 7)), signKey);
      await expectRefusedAtOpen(bytes, "ERR_CT_DECRYPTION_FAILED");
    });
  }

  it("v2: the tag of a middle chunk flipped, re-signed with the real key → ERR_CT_DECRYPTION_FAILED at read", async () => {
    const bytes = tamper(fixtures.v2, (f) => editEncryptionField(f, Q, "tags", (b) => flipBase64(b, 16 * 5 + 3)), signKey);
    await expectRefusedAtRead(bytes, Q, "ERR_CT_DECRYPTION_FAILED");
  });

  it("v2: the base_iv changed, re-signed with the real key → ERR_CT_DECRYPTION_FAILED at read", async () => {
    const bytes = tamper(fixtures.v2, (f) => editEncryptionField(f, Q, "base_iv", (b) => flipBase64(b, 11)), signKey);
    await expectRefusedAtRead(bytes, Q, "ERR_CT_DECRYPTION_FAILED");
  });

  it("v2: two tensors' __encryption__ entries swapped (same size), re-signed with the real key → ERR_CT_DECRYPTION_FAILED", async () => {
    const bytes = tamper(
      fixtures.v2,
      (f) => {
        const enc = JSON.parse(f.metadata.get(ENCRYPTION_KEY)!) as Record<string, unknown>;
        [enc[Q], enc[UP]] = [enc[UP], enc[Q]];
        f.metadata.set(ENCRYPTION_KEY, JSON.stringify(enc));
      },
      signKey,
    );
    const outcome = await openAndReadAll(bytes);
    expect(outcome.stage).toBe("read");
    if (outcome.stage !== "read") return;
    expect(outcome.failures.map((x) => x.tensor).sort()).toEqual([Q, UP].sort());
    for (const failure of outcome.failures) {
      expectCode(failure.error, "ERR_CT_DECRYPTION_FAILED");
      expect(failure.outAllZero).toBe(true);
    }
  });
});

describe.each(["v1", "v2"] as const)("%s: reserved entries (re-signed with the real key so only the structure is at fault)", (version) => {
  for (const reserved of [CRYPTO_KEYS_KEY, POLICY_KEY]) {
    it(`${reserved} missing → ERR_CT_FORMAT`, async () => {
      const bytes = tamper(fixtures[version], (f) => expect(f.metadata.delete(reserved)).toBe(true), signKey);
      await expectRefusedAtOpen(bytes, "ERR_CT_FORMAT");
    });
  }

  it(`${SIGNATURE_KEY} missing → ERR_CT_FORMAT`, async () => {
    const bytes = tamper(fixtures[version], (f) => expect(f.metadata.delete(SIGNATURE_KEY)).toBe(true));
    await expectRefusedAtOpen(bytes, "ERR_CT_FORMAT");
  });

  it(`${ENCRYPTION_KEY} removed: the file reads as plain safetensors and returns ciphertext (the documented downgrade)`, async () => {
    const original = dissect(fixtures[version]);
    const bytes = tamper(fixtures[version], (f) => expect(f.metadata.delete(ENCRYPTION_KEY)).toBe(true));
    const outcome = await openAndReadAll(bytes);
    expect(outcome.stage).toBe("read");
    if (outcome.stage !== "read") return;
    expect(outcome.failures).toEqual([]);
    const q = tensorOf(original, Q);
    const returned = Buffer.from(outcome.data.get(Q)!);
    expect(returned).toEqual(Buffer.from(original.data.subarray(q.begin, q.end)));
    expect(returned).not.toEqual(Buffer.from(plain.get(Q)!));
  });

  it(`${ENCRYPTION_KEY} removed, opened with requireEncrypted → ERR_CT_NOT_CONFIDENTIAL`, async () => {
    const bytes = tamper(fixtures[version], (f) => f.metadata.delete(ENCRYPTION_KEY));
    await expectRefusedAtOpen(bytes, "ERR_CT_NOT_CONFIDENTIAL", { ...victimOptions(), requireEncrypted: true });
  });

  it(`version "3" → ERR_CT_UNSUPPORTED`, async () => {
    const bytes = tamper(
      fixtures[version],
      (f) =>
        editInner(f, CRYPTO_KEYS_KEY, (doc) => {
          doc.version = "3";
        }),
      signKey,
    );
    await expectRefusedAtOpen(bytes, "ERR_CT_UNSUPPORTED");
  });

  it("chunk_size 0 → ERR_CT_FORMAT", async () => {
    const bytes = tamper(
      fixtures[version],
      (f) =>
        editInner(f, CRYPTO_KEYS_KEY, (doc) => {
          doc.chunk_size = 0;
        }),
      signKey,
    );
    await expectRefusedAtOpen(bytes, "ERR_CT_FORMAT");
  });

  it(`sign "kty":"OKP" (JOSE spelling) in the header → ERR_CT_FORMAT`, async () => {
    const bytes = tamper(
      fixtures[version],
      (f) =>
        editInner(f, CRYPTO_KEYS_KEY, (doc) => {
          expect(doc.sign.kty).toBe("okp");
          doc.sign.kty = "OKP";
        }),
      signKey,
    );
    await expectRefusedAtOpen(bytes, "ERR_CT_FORMAT");
  });

  for (const local of ["package model\nallow = false", "package model\nallow := true"]) {
    it(`non-default policy ${JSON.stringify(local)} → ERR_CT_POLICY_UNSUPPORTED`, async () => {
      const bytes = tamper(fixtures[version], (f) => f.metadata.set(POLICY_KEY, serializePolicy({ local, remote: local })), signKey);
      await expectRefusedAtOpen(bytes, "ERR_CT_POLICY_UNSUPPORTED");
    });
  }

  it("non-default policy evaluated by an engine that denies it → ERR_CT_POLICY_DENIED", async () => {
    const seen: string[] = [];
    const local = "package model\nallow = false";
    const bytes = tamper(fixtures[version], (f) => f.metadata.set(POLICY_KEY, serializePolicy({ local, remote: local })), signKey);
    await expectRefusedAtOpen(bytes, "ERR_CT_POLICY_DENIED", {
      ...victimOptions(),
      policyEngine: async (rego) => (seen.push(rego), false),
    });
    expect(seen).toEqual([local]);
  });
});

describe.each(["v1", "v2"] as const)("%s: the victim's keys and trust", (version) => {
  it("wrong master key (same kid, different bytes) → ERR_CT_DECRYPTION_FAILED at open", async () => {
    const wrong: EncryptionKey = newEncryptionKey("aes256gcm", key.kid);
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_DECRYPTION_FAILED", { keys: [wrong], trust });
  });

  it("master key of another algorithm (same kid) → ERR_CT_KEY_INVALID", async () => {
    const wrongAlg: EncryptionKey = newEncryptionKey("chacha20poly1305", key.kid);
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_KEY_INVALID", { keys: [wrongAlg], trust });
  });

  it("no master key for the file's kid → ERR_CT_KEY_NOT_FOUND", async () => {
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_KEY_NOT_FOUND", { keys: [newEncryptionKey("aes256gcm", "other-kid")], trust });
  });

  it("wrong signer: a different trusted key with the same kid → ERR_CT_SIGNATURE_INVALID", async () => {
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_SIGNATURE_INVALID", {
      keys: [key],
      trust: new TrustStore([newSigningKey(signKey.kid)]),
    });
  });

  it("the trusted keys have another kid → ERR_CT_UNTRUSTED_SIGNER", async () => {
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_UNTRUSTED_SIGNER", {
      keys: [key],
      trust: new TrustStore([newSigningKey("someone-else")]),
    });
  });

  it("no trust at all → ERR_CT_UNTRUSTED_SIGNER", async () => {
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_UNTRUSTED_SIGNER", { keys: [key] });
  });

  it("an empty trust store → ERR_CT_UNTRUSTED_SIGNER", async () => {
    await expectRefusedAtOpen(fixtures[version], "ERR_CT_UNTRUSTED_SIGNER", { keys: [key], trust: new TrustStore([]) });
  });
});

describe.each(["v1", "v2"] as const)("%s: file length", (version) => {
  it("trailing bytes appended → ERR_CT_FORMAT", async () => {
    const bytes = new Uint8Array(fixtures[version].length + 8);
    bytes.set(fixtures[version]);
    await expectRefusedAtOpen(bytes, "ERR_CT_FORMAT");
  });

  it("one trailing byte → ERR_CT_FORMAT", async () => {
    const bytes = new Uint8Array(fixtures[version].length + 1);
    bytes.set(fixtures[version]);
    await expectRefusedAtOpen(bytes, "ERR_CT_FORMAT");
  });

  it("truncated by one byte → ERR_CT_FORMAT", async () => {
    await expectRefusedAtOpen(fixtures[version].slice(0, -1), "ERR_CT_FORMAT");
  });

  it("truncated inside the header → ERR_CT_FORMAT", async () => {
    await expectRefusedAtOpen(fixtures[version].slice(0, 200), "ERR_CT_FORMAT");
  });

  it("truncated inside the length prefix → ERR_CT_FORMAT", async () => {
    await expectRefusedAtOpen(fixtures[version].slice(0, 5), "ERR_CT_FORMAT");
  });
});

describe("partially encrypted file", () => {
  it("a plaintext tensor modified → ERR_CT_INTEGRITY at read (signed digest)", async () => {
    const bytes = tamper(fixtures.partial, (f) => flipDataByte(f, NORM, 100));
    await expectRefusedAtRead(bytes, NORM, "ERR_CT_INTEGRITY");
  });

  it("the digest entry removed → ERR_CT_SIGNATURE_INVALID", async () => {
    const bytes = tamper(fixtures.partial, (f) => expect(f.metadata.delete(DIGESTS_KEY)).toBe(true));
    await expectRefusedAtOpen(bytes, "ERR_CT_SIGNATURE_INVALID");
  });

  it("an encrypted tensor modified → ERR_CT_DECRYPTION_FAILED at read", async () => {
    const bytes = tamper(fixtures.partial, (f) => flipDataByte(f, UP, 9000));
    await expectRefusedAtRead(bytes, UP, "ERR_CT_DECRYPTION_FAILED");
  });

  it("opened with requireEncrypted → ERR_CT_NOT_CONFIDENTIAL", async () => {
    await expectRefusedAtOpen(fixtures.partial, "ERR_CT_NOT_CONFIDENTIAL", { ...victimOptions(), requireEncrypted: true });
  });

  it("without plaintext digests a modified plaintext tensor is returned as is, and reported as unauthenticated", async () => {
    const bytes = tamper(fixtures.partialNoDigest, (f) => flipDataByte(f, NORM, 100));
    const outcome = await openAndReadAll(bytes);
    expect(outcome.stage).toBe("read");
    if (outcome.stage !== "read") return;
    expect(outcome.failures).toEqual([]);
    const expected = new Uint8Array(plain.get(NORM)!);
    expected[100]! ^= 0x01;
    expect(Buffer.from(outcome.data.get(NORM)!)).toEqual(Buffer.from(expected));
    const path = join(dir, "no-digest.safetensors");
    writeFileSync(path, bytes);
    const reader = await CryptoTensorsReader.open(path, victimOptions());
    try {
      expect(reader.unauthenticatedTensors()).toContain(NORM);
      expect(reader.unauthenticatedTensors()).not.toContain(Q);
    } finally {
      await reader.close();
    }
  });
});

describe.each(["v1", "v2", "partial"] as const)("%s: canonicalization (the signature covers content, not formatting)", (version) => {
  it("tensor entries and metadata members reordered in the JSON text → still verifies and decrypts", async () => {
    const f = dissect(fixtures[version]);
    const json = headerText(f, { tensorOrder: [...f.tensors].reverse(), metadataKeys: [...f.metadata.keys()].reverse(), pretty: false });
    const bytes = assembleText(json, f.data);
    expect(Buffer.from(bytes)).not.toEqual(Buffer.from(fixtures[version]));
    const outcome = await openAndReadAll(bytes);
    expect(outcome.stage).toBe("read");
    if (outcome.stage !== "read") return;
    expect(outcome.failures).toEqual([]);
    for (const [n, b] of plain) expect(Buffer.from(outcome.data.get(n)!), n).toEqual(Buffer.from(b));
  });

  it("extra whitespace in the header JSON (re-padded) → still verifies and decrypts", async () => {
    const f = dissect(fixtures[version]);
    const json = headerText(f, { tensorOrder: f.tensors, metadataKeys: [...f.metadata.keys()], pretty: true });
    expect(json).toMatch(/\n {2}"/);
    const bytes = assembleText(json, f.data);
    expect(bytes.length).toBeGreaterThan(fixtures[version].length);
    const outcome = await openAndReadAll(bytes);
    expect(outcome.stage).toBe("read");
    if (outcome.stage !== "read") return;
    expect(outcome.failures).toEqual([]);
    for (const [n, b] of plain) expect(Buffer.from(outcome.data.get(n)!), n).toEqual(Buffer.from(b));
  });

  it("reordered and re-spaced, but with one metadata value changed → still ERR_CT_SIGNATURE_INVALID", async () => {
    const f = dissect(fixtures[version]);
    f.metadata.set("format", "pT");
    const json = headerText(f, { tensorOrder: [...f.tensors].reverse(), metadataKeys: [...f.metadata.keys()], pretty: true });
    await expectRefusedAtOpen(assembleText(json, f.data), "ERR_CT_SIGNATURE_INVALID");
  });
});
