// Property-based tests (fast-check): encrypt → open round trips over random tensor sets and settings, and
// fuzzing of the header parser (random bytes and mutations of valid headers must only ever produce a
// parsed header or a CryptoTensorsError, never another exception).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encryptFile } from "../src/container/encrypt-file.js";
import { CryptoTensorsReader } from "../src/container/reader.js";
import { AEAD_ALGORITHMS } from "../src/crypto/aead.js";
import { CryptoTensorsError } from "../src/errors.js";
import { DTYPES, tensorByteLength, type Dtype } from "../src/format/dtype.js";
import { parseHeader } from "../src/format/header.js";
import { JsonNumber, JsonObject, parseJson, type JsonValue } from "../src/format/json.js";
import { TrustStore } from "../src/keys/trust.js";
import { newEncryptionKey, newSigningKey, plainSafetensorsBytes, tempDir, type PlainTensor } from "./helpers.js";

// Names: integer-like, ASCII identifiers, and non-ASCII (2-, 3- and 4-byte UTF-8, incl. U+E000 vs astral).
// No glob metacharacters, so a name passed as an --tensors pattern selects exactly itself.
const nameArb = fc.oneof(
  fc.nat({ max: 120 }).map(String),
  fc.stringMatching(/^[a-z][a-z0-9._]{0,8}$/),
  fc
    .array(fc.constantFrom("a", "Z", "0", ".", "_", "é", "ß", "\uE000", "€", "😀", "𝔘", "中"), { minLength: 1, maxLength: 5 })
    .map((a) => a.join("")),
);

const shapeArb = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 3 });

const tensorArb = fc
  .record({ name: nameArb, dtype: fc.constantFrom(...DTYPES), shape: shapeArb })
  .filter((t) => tensorByteLength(t.dtype, t.shape) !== undefined); // F4/F6 only where whole bytes

const tensorSetArb = fc.uniqueArray(tensorArb, { minLength: 1, maxLength: 8, selector: (t) => t.name });

const caseArb = fc.record({
  tensors: tensorSetArb,
  version: fc.constantFrom(1 as const, 2 as const),
  chunkBytes: fc.integer({ min: 1, max: 64 }),
  alg: fc.constantFrom(...AEAD_ALGORITHMS),
  selectMask: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  metadata: fc.option(
    fc.dictionary(fc.constantFrom("format", "10", "2", "é", "note", "__x__"), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
    { nil: null },
  ),
});

describe("property: encryptFile → CryptoTensorsReader.open returns exactly the plaintext", () => {
  const dir = tempDir("ctensors-prop-");
  let n = 0;

  it("random tensor sets, dtypes, shapes, chunk sizes, versions, algorithms and encrypted subsets", async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ tensors, version, chunkBytes, alg, selectMask, metadata }) => {
        const id = n++;
        const plainPath = join(dir, `p${id}.safetensors`);
        const encPath = join(dir, `e${id}.safetensors`);
        const { bytes, data } = plainSafetensorsBytes(tensors as PlainTensor[], metadata);
        writeFileSync(plainPath, bytes);

        const chosen = tensors.filter((_, i) => selectMask[i]).map((t) => t.name);
        // An empty pattern list means "encrypt everything".
        const expectedEncrypted = new Set(chosen.length ? chosen : tensors.map((t) => t.name));
        const key = newEncryptionKey(alg, `enc-${id}`);
        const signKey = newSigningKey(`sign-${id}`);
        const result = await encryptFile(plainPath, encPath, {
          key,
          signKey,
          formatVersion: version,
          chunkBytes: version === 2 ? chunkBytes : undefined,
          tensors: chosen.length ? chosen : undefined,
        });
        expect(result.tensors).toBe(tensors.length);
        expect(result.encrypted).toBe(expectedEncrypted.size);

        const reader = await CryptoTensorsReader.open(encPath, { keys: [signKey, key], trust: new TrustStore([signKey]) });
        try {
          expect(reader.crypto?.keys.version).toBe(String(version));
          expect(reader.crypto?.keys.chunkBytes).toBe(version === 2 ? chunkBytes : undefined);
          expect(new Set(reader.tensors.map((t) => t.name))).toEqual(new Set(tensors.map((t) => t.name)));
          for (const t of tensors) {
            expect(reader.isEncrypted(t.name), t.name).toBe(expectedEncrypted.has(t.name));
            const info = reader.info(t.name);
            expect(info.dtype).toBe(t.dtype);
            expect(info.shape).toEqual(t.shape);
            const got = await reader.readTensor(t.name);
            expect(Buffer.from(got).equals(Buffer.from(data.get(t.name)!)), t.name).toBe(true);
          }
          const userMd = reader.userMetadata();
          const expectedMd = new Map(Object.entries(metadata ?? {}).filter(([k]) => !k.startsWith("__")));
          expect(userMd === null ? new Map() : userMd).toEqual(expectedMd);
        } finally {
          await reader.close();
        }
      }),
      { numRuns: 400 },
    );
  });
});

// ------------------------------------------------------------------------------------------------

/** parseHeader must either succeed or throw a CryptoTensorsError with code ERR_CT_FORMAT. */
function onlyFormatErrors(header: Uint8Array, fileBytes?: number): void {
  try {
    const h = parseHeader(header, fileBytes);
    // A parsed header is internally consistent.
    let cursor = 0;
    for (const t of h.tensors) {
      expect(t.begin).toBe(cursor);
      expect(BigInt(t.end - t.begin)).toBe(tensorByteLength(t.dtype, t.shape));
      cursor = t.end;
    }
    expect(h.dataBytes).toBe(cursor);
    if (fileBytes !== undefined) expect(fileBytes).toBe(8 + header.length + cursor);
  } catch (err) {
    if (!(err instanceof CryptoTensorsError)) throw err;
    expect(err.code).toBe("ERR_CT_FORMAT");
  }
}

const validHeaderArb = fc
  .record({
    tensors: tensorSetArb,
    md: fc.option(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 3 }), { nil: null }),
  })
  .map(({ tensors, md }) => {
    const { bytes } = plainSafetensorsBytes(
      tensors.map((t) => ({ ...t, data: new Uint8Array(Number(tensorByteLength(t.dtype as Dtype, t.shape))) })),
      md,
    );
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    return { header: bytes.slice(8, 8 + n), fileBytes: bytes.length };
  });

const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    byte: fc.constantFrom(0x00, 0x22, 0x2c, 0x2d, 0x30, 0x31, 0x39, 0x3a, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x65, 0x2e, 0xc3, 0xff),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.constantFrom("9", "0", "-", ".5", "e9", ",", '"', "\\u", "[", "{", "}", "]", "99999999999999999999", "é"),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);

type Mutation = { kind: string; at: number; bit?: number; byte?: number; text?: string; len?: number };

function mutate(header: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b = Buffer.from(header);
  for (const m of muts) {
    const at = b.length ? m.at % b.length : 0;
    switch (m.kind) {
      case "flip":
        if (b.length) b[at]! ^= 1 << m.bit!;
        break;
      case "set":
        if (b.length) b[at] = m.byte!;
        break;
      case "insert":
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.text!), b.subarray(at)]);
        break;
      case "delete":
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len!)]);
        break;
      case "truncate":
        b = b.subarray(0, at);
        break;
    }
  }
  return new Uint8Array(b);
}

describe("fuzz: parseHeader throws nothing but CryptoTensorsError", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.option(fc.nat({ max: 2000 }), { nil: undefined }), (header, fileBytes) => {
        onlyFormatErrors(header, fileBytes);
      }),
      { numRuns: 2000 },
    );
  });

  it("random JSON-ish text", () => {
    const token = fc.constantFrom(
      "{",
      "}",
      "[",
      "]",
      ",",
      ":",
      '"',
      "\\",
      '"dtype"',
      '"shape"',
      '"data_offsets"',
      '"__metadata__"',
      '"F32"',
      '"U8"',
      "0",
      "1",
      "4",
      "-1",
      "1e3",
      "null",
      "true",
      " ",
      "\\ud800",
      "é",
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 60 }), (tokens) => {
        onlyFormatErrors(new TextEncoder().encode(tokens.join("")));
      }),
      { numRuns: 2000 },
    );
  });

  it("valid headers parse and are self-consistent", () => {
    fc.assert(
      fc.property(validHeaderArb, ({ header, fileBytes }) => {
        const h = parseHeader(header, fileBytes);
        expect(8 + h.headerBytes + h.dataBytes).toBe(fileBytes);
      }),
      { numRuns: 300 },
    );
  });

  it("mutations of valid headers (bit flips, byte sets, inserts, deletes, truncation, wrong file length)", () => {
    fc.assert(
      fc.property(
        validHeaderArb,
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: -3, max: 3 }),
        ({ header, fileBytes }, muts, delta) => {
          const mutated = mutate(header, muts);
          onlyFormatErrors(mutated, fileBytes + (mutated.length - header.length) + delta);
          onlyFormatErrors(mutated);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

// ------------------------------------------------------------------------------------------------

/** Our parser's value as JSON.parse would return it (numbers converted, keys in an own-property object). */
function toPlain(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return Number(v.raw);
  if (v instanceof JsonObject) return Object.fromEntries(v.entries.map(([k, x]) => [k, toPlain(x)]));
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

describe("property: parseJson agrees with JSON.parse on valid JSON", () => {
  it("random JSON documents (unicode strings, escapes), max depth below serde's limit", () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 6, stringUnit: "binary" }), (text) => {
        expect(toPlain(parseJson(text))).toEqual(JSON.parse(text));
      }),
      { numRuns: 1000 },
    );
  });

  it("any well-formed string survives JSON.stringify → parseJson", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (s) => {
        expect(parseJson(JSON.stringify(s))).toBe(s);
      }),
      { numRuns: 1000 },
    );
  });

  it("random text never throws anything but CryptoTensorsError", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (s) => {
        try {
          parseJson(s);
        } catch (err) {
          if (!(err instanceof CryptoTensorsError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
