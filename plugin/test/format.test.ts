// Unit tests for the safetensors layer: header parsing and validation (src/format/header.ts), the strict
// JSON parser (src/format/json.ts) and the canonical serializer / writer layout (src/format/serialize.ts).
// Spec: docs/format.md §1.1–§1.5.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readHeader } from "../src/container/reader.js";
import { CryptoTensorsError } from "../src/errors.js";
import { DTYPES, type Dtype } from "../src/format/dtype.js";
import { MAX_HEADER_BYTES, parseHeader, parseHeaderPrefix } from "../src/format/header.js";
import { JsonNumber, JsonObject, parseJson, toSafeInteger, type JsonValue } from "../src/format/json.js";
import { compareUtf8, encodeHeader, layoutTensors, serializeHeaderJson } from "../src/format/serialize.js";
import { plainSafetensorsBytes, rejection, tempDir, thrown } from "./helpers.js";

const enc = new TextEncoder();
const bytes = (...b: number[]) => new Uint8Array(b);
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

function expectFormatError(err: unknown, message: string | RegExp): void {
  expect(err).toBeInstanceOf(CryptoTensorsError);
  expect((err as CryptoTensorsError).code).toBe("ERR_CT_FORMAT");
  expect((err as CryptoTensorsError).category).toBe("format");
  expect((err as Error).message).toMatch(message);
}

/** parseHeader over a header given as literal JSON text, with `dataBytes` bytes of data after it. */
function parseText(json: string, dataBytes = 0): ReturnType<typeof parseHeader> {
  const header = enc.encode(json);
  return parseHeader(header, 8 + header.length + dataBytes);
}

function expectHeaderError(json: string, message: string | RegExp, dataBytes = 0): void {
  expectFormatError(
    thrown(() => parseText(json, dataBytes)),
    message,
  );
}

const T = (dtype: string, shape: string, offsets: string) => `{"dtype":"${dtype}","shape":${shape},"data_offsets":${offsets}}`;

// ------------------------------------------------------------------------------------------------

describe("parseHeaderPrefix", () => {
  it("reads N as u64 little-endian", () => {
    expect(parseHeaderPrefix(bytes(0x98, 0, 0, 0, 0, 0, 0, 0))).toBe(152);
    expect(parseHeaderPrefix(bytes(0x00, 0x01, 0, 0, 0, 0, 0, 0))).toBe(256);
    // Only the first 8 bytes count, and a view with a non-zero byteOffset is read at its own offset.
    const backing = bytes(0xff, 0xff, 0x10, 0x02, 0, 0, 0, 0, 0, 0, 0xee);
    expect(parseHeaderPrefix(backing.subarray(2))).toBe(0x0210);
  });

  it("header too small: fewer than 8 bytes", () => {
    expectFormatError(
      thrown(() => parseHeaderPrefix(bytes(8, 0, 0, 0, 0, 0, 0))),
      /header too small/,
    );
    expectFormatError(
      thrown(() => parseHeaderPrefix(new Uint8Array(0))),
      /header too small/,
    );
  });

  it("header too large: N > 100_000_000 (the reference's MAX_HEADER_SIZE)", () => {
    expect(MAX_HEADER_BYTES).toBe(100_000_000);
    // 100_000_000 = 0x05F5E100 is the largest accepted value.
    expect(parseHeaderPrefix(bytes(0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0))).toBe(100_000_000);
    expectFormatError(
      thrown(() => parseHeaderPrefix(bytes(0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0))),
      /header too large: 100000001 bytes/,
    );
    // N with the high bits set must not be truncated to a small number.
    expectFormatError(
      thrown(() => parseHeaderPrefix(bytes(0x08, 0, 0, 0, 0, 0, 0, 0x80))),
      /header too large/,
    );
    expectFormatError(
      thrown(() => parseHeaderPrefix(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))),
      /header too large: 18446744073709551615/,
    );
  });
});

describe("readHeader (file-level prefix checks)", () => {
  const dir = tempDir();
  let n = 0;
  const file = (content: Uint8Array): string => {
    const path = join(dir, `f${n++}.safetensors`);
    writeFileSync(path, content);
    return path;
  };

  it("header too small: a 7-byte file", async () => {
    expectFormatError(await rejection(readHeader(file(bytes(2, 0, 0, 0, 0, 0, 0)))), /header too small/);
  });

  it("N beyond the end of the file", async () => {
    // N = 16, but only 2 header bytes follow the prefix.
    const err = await rejection(readHeader(file(concat(bytes(16, 0, 0, 0, 0, 0, 0, 0), enc.encode("{}")))));
    expectFormatError(err, /invalid header length 16: the file has only 10 bytes/);
  });

  it("header too large, checked before anything is allocated", async () => {
    const err = await rejection(readHeader(file(concat(bytes(0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0), enc.encode("{}")))));
    expectFormatError(err, /header too large/);
  });

  it("a minimal valid file parses; a trailing byte or a truncated data section does not", async () => {
    // N = 8: `{"a":{…}}` is longer, so build it exactly: header text + padding.
    const json = `{"t":${T("U8", "[2]", "[0,2]")}}`;
    const padded = json + " ".repeat((8 - (json.length % 8)) % 8);
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(padded.length), true);
    const good = concat(prefix, enc.encode(padded), bytes(7, 9));
    const { header, crypto, fileBytes } = await readHeader(file(good));
    expect(crypto).toBeNull();
    expect(fileBytes).toBe(good.length);
    expect(header.tensors.map((t) => [t.name, t.begin, t.end])).toEqual([["t", 0, 2]]);
    expectFormatError(await rejection(readHeader(file(concat(good, bytes(0))))), /1 trailing bytes after the last tensor/);
    expectFormatError(await rejection(readHeader(file(good.subarray(0, good.length - 1)))), /file is truncated/);
  });
});

describe("parseHeader: accepted headers", () => {
  it("parses metadata, tensors, offsets, and computes the layout fields", () => {
    const json = `{"__metadata__":{"format":"pt"},"w":${T("F32", "[2,3]", "[12,36]")},"b":${T("F32", "[3]", "[0,12]")}}`;
    const h = parseText(json, 36);
    expect(h.headerBytes).toBe(enc.encode(json).length);
    expect(h.dataStart).toBe(8 + h.headerBytes);
    expect(h.dataBytes).toBe(36);
    expect(h.metadata).toEqual(new Map([["format", "pt"]]));
    expect(h.tensors).toEqual([
      { name: "b", dtype: "F32", shape: [3], begin: 0, end: 12 },
      { name: "w", dtype: "F32", shape: [2, 3], begin: 12, end: 36 },
    ]);
    expect(h.byName.get("w")).toBe(h.tensors[1]);
  });

  it("tolerates whitespace and space padding around the object, unknown tensor members, null metadata", () => {
    const h = parseText(
      ` \n\t{ "x" : {"extra":[{"deep":null}],"dtype":"U8","shape":[ 4 ],"data_offsets":[0,4]} , "__metadata__" : null }      `,
      4,
    );
    expect(h.metadata).toBeNull();
    expect(h.tensors.map((t) => t.name)).toEqual(["x"]);
  });

  it("an empty header and an empty data section", () => {
    const h = parseText("{}");
    expect(h.tensors).toEqual([]);
    expect(h.dataBytes).toBe(0);
    expect(h.metadata).toBeNull();
    expect(parseText(`{"__metadata__":{}}`).metadata).toEqual(new Map());
  });

  it("integer-like tensor names keep header order (JSON.parse would reorder them)", () => {
    // All three are zero-length at offset 0, so only the order of appearance can decide.
    const json = `{"10":${T("U8", "[0]", "[0,0]")},"2":${T("U8", "[0]", "[0,0]")},"0":${T("U8", "[0]", "[0,0]")}}`;
    expect(Object.keys(JSON.parse(json) as object)).toEqual(["0", "2", "10"]); // the trap
    expect(parseText(json).tensors.map((t) => t.name)).toEqual(["10", "2", "0"]);
  });

  it("integer-like metadata keys keep header order", () => {
    const h = parseText(`{"__metadata__":{"10":"a","2":"b","0":"c","x":"d"}}`);
    expect([...h.metadata!.keys()]).toEqual(["10", "2", "0", "x"]);
  });

  it("offset ties keep their order of appearance, whatever the names", () => {
    const z = T("F32", "[0]", "[4,4]");
    const a = T("U8", "[4]", "[0,4]");
    expect(parseText(`{"b":${z},"a":${z},"first":${a}}`, 4).tensors.map((t) => t.name)).toEqual(["first", "b", "a"]);
    expect(parseText(`{"a":${z},"first":${a},"b":${z}}`, 4).tensors.map((t) => t.name)).toEqual(["first", "a", "b"]);
    // A zero-length tensor at offset 0 sorts before the non-empty tensor that starts there.
    expect(parseText(`{"big":${a},"e":${T("I64", "[0,3]", "[0,0]")}}`, 4).tensors.map((t) => t.name)).toEqual(["e", "big"]);
  });

  it("tensors named like Object.prototype members are ordinary tensors", () => {
    const h = parseText(`{"__proto__":${T("U8", "[1]", "[0,1]")},"constructor":${T("U8", "[1]", "[1,2]")}}`, 2);
    expect(h.tensors.map((t) => t.name)).toEqual(["__proto__", "constructor"]);
    expect(h.byName.get("__proto__")?.end).toBe(1);
  });

  it("every dtype with its bit size (§1.4)", () => {
    const bits: Record<Dtype, number> = {
      BOOL: 8,
      F4: 4,
      F6_E2M3: 6,
      F6_E3M2: 6,
      U8: 8,
      I8: 8,
      F8_E5M2: 8,
      F8_E4M3: 8,
      F8_E8M0: 8,
      I16: 16,
      U16: 16,
      F16: 16,
      BF16: 16,
      I32: 32,
      U32: 32,
      F32: 32,
      C64: 64,
      F64: 64,
      I64: 64,
      U64: 64,
    };
    let offset = 0;
    const members: string[] = [];
    for (const d of DTYPES) {
      const size = bits[d]; // 8 elements → `size` bytes
      members.push(`"t_${d}":${T(d, "[2,4]", `[${offset},${offset + size}]`)}`);
      offset += size;
    }
    const h = parseText(`{${members.join(",")}}`, offset);
    expect(h.tensors.map((t) => t.dtype)).toEqual([...DTYPES]);
  });

  it("sub-byte dtypes are accepted when the total is whole bytes (F4 × 2, F6 × 4)", () => {
    expect(parseText(`{"a":${T("F4", "[2,3]", "[0,3]")}}`, 3).dataBytes).toBe(3);
    expect(parseText(`{"a":${T("F6_E2M3", "[4]", "[0,3]")}}`, 3).dataBytes).toBe(3);
  });

  it("the largest safe integer is accepted in shapes and offsets", () => {
    const h = parseHeader(enc.encode(`{"a":${T("U8", "[9007199254740991]", "[0,9007199254740991]")}}`));
    expect(h.tensors[0]!.shape).toEqual([9007199254740991]);
    expect(h.dataBytes).toBe(9007199254740991);
  });
});

describe("parseHeader: each error class is ERR_CT_FORMAT with a helpful message", () => {
  it("invalid UTF-8 (bad byte, overlong, UTF-16 surrogate, truncated sequence)", () => {
    const cases = [
      bytes(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d), // {"\xff":1}
      bytes(0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d), // overlong "/"
      bytes(0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d), // CESU-8 encoded U+D800
      bytes(0x7b, 0x22, 0xe2, 0x82, 0x22, 0x3a, 0x31, 0x7d), // truncated "€"
    ];
    for (const header of cases)
      expectFormatError(
        thrown(() => parseHeader(header)),
        /header is not valid UTF-8/,
      );
  });

  it("invalid JSON", () => {
    expectHeaderError(`{"a":`, /invalid header JSON: unexpected end/);
    expectHeaderError(`{'a':1}`, /invalid header JSON: expected a string key/);
    expectHeaderError(`{"a":${T("U8", "[0]", "[0,0]")},}`, /invalid header JSON: expected a string key/);
    expectHeaderError(`{"a" ${T("U8", "[0]", "[0,0]")}}`, /invalid header JSON: expected ':'/);
    expectHeaderError(`{} {}`, /invalid header JSON: trailing characters/);
    expectHeaderError(`{}\u0000`, /invalid header JSON: trailing characters/); // NUL padding is not whitespace
    expectHeaderError(`\uFEFF{}`, /invalid header JSON: unexpected character/); // a BOM is not allowed (nor by serde)
    expectHeaderError(``, /invalid header JSON: unexpected end/);
  });

  it("the header JSON is not an object", () => {
    for (const json of [`[]`, `"x"`, `42`, `null`, `true`]) expectHeaderError(json, /header JSON is not an object/);
  });

  it("__metadata__ is not an object of strings", () => {
    expectHeaderError(`{"__metadata__":{"format":1}}`, /__metadata__ value for "format" is not a string/);
    expectHeaderError(`{"__metadata__":{"a":"x","b":{"c":"d"}}}`, /__metadata__ value for "b" is not a string/);
    expectHeaderError(`{"__metadata__":{"n":null}}`, /__metadata__ value for "n" is not a string/);
    expectHeaderError(`{"__metadata__":["x"]}`, /__metadata__ must be an object of strings/);
    expectHeaderError(`{"__metadata__":"x"}`, /__metadata__ must be an object of strings/);
  });

  it("a tensor entry that is not an object", () => {
    expectHeaderError(`{"a":[1,2]}`, /tensor "a": entry is not an object/);
  });

  it("unknown dtype (exact, case-sensitive spelling), missing dtype", () => {
    expectHeaderError(`{"a":${T("F128", "[1]", "[0,16]")}}`, /tensor "a": unknown dtype "F128"/, 16);
    expectHeaderError(`{"a":${T("f32", "[1]", "[0,4]")}}`, /tensor "a": unknown dtype "f32"/, 4);
    expectHeaderError(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, /tensor "a": unknown dtype null/, 1);
    expectHeaderError(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,1]}}`, /tensor "a": unknown dtype/, 1);
  });

  it("shape: not an array, non-integer, negative, unsafe (> 2^53), exponent, string", () => {
    expectHeaderError(`{"a":${T("U8", "4", "[0,4]")}}`, /tensor "a": shape must be an array/, 4);
    for (const dim of ["1.5", "4.0", "-1", "1e2", "9007199254740992", "9007199254740993", "18446744073709551615", `"4"`, "null"]) {
      expectHeaderError(`{"a":${T("U8", `[${dim}]`, "[0,4]")}}`, /tensor "a": shape must hold non-negative safe integers/, 4);
    }
  });

  it("data_offsets: wrong arity, non-integer, negative, unsafe (> 2^53)", () => {
    for (const offsets of ["[0]", "[0,4,8]", "[]", `"0,4"`, "null"]) {
      expectHeaderError(`{"a":${T("U8", "[4]", offsets)}}`, /tensor "a": data_offsets must be \[begin, end\]/, 4);
    }
    for (const offsets of ["[0,4.0]", "[0.5,4]", "[-4,0]", "[0,9007199254740993]", "[9007199254740992,9007199254740996]", "[0,4e0]"]) {
      expectHeaderError(`{"a":${T("U8", "[4]", offsets)}}`, /tensor "a": data_offsets must be non-negative safe integers/, 4);
    }
  });

  it("non-contiguous offsets: first tensor not at 0, gap, overlap, end before begin", () => {
    expectHeaderError(`{"a":${T("U8", "[4]", "[4,8]")}}`, /invalid offsets for tensor "a": data must be contiguous from 0/, 8);
    expectHeaderError(`{"a":${T("U8", "[4]", "[0,4]")},"b":${T("U8", "[4]", "[5,9]")}}`, /invalid offsets for tensor "b"/, 9);
    expectHeaderError(`{"a":${T("U8", "[8]", "[0,8]")},"b":${T("U8", "[8]", "[4,12]")}}`, /invalid offsets for tensor "b"/, 12);
    expectHeaderError(`{"a":${T("U8", "[4]", "[0,4]")},"b":${T("U8", "[4]", "[0,4]")}}`, /invalid offsets for tensor "b"/, 4);
    expectHeaderError(`{"a":${T("U8", "[4]", "[0,4]")},"b":${T("U8", "[0]", "[4,0]")}}`, /invalid offsets for tensor/, 4);
  });

  it("offsets span ≠ dtype × shape", () => {
    expectHeaderError(`{"a":${T("F32", "[2]", "[0,4]")}}`, /tensor "a": offsets span 4 bytes but F32\[2\] needs 8/, 4);
    expectHeaderError(`{"a":${T("U8", "[0]", "[0,1]")}}`, /tensor "a": offsets span 1 bytes but U8\[0\] needs 0/, 1);
    expectHeaderError(`{"a":${T("BF16", "[]", "[0,4]")}}`, /needs 2/, 4); // a scalar is one element
    // Hostile shape: the element count overflows 2^64 but must still be compared exactly.
    expectHeaderError(`{"a":${T("U8", "[4294967296,4294967296,4294967296]", "[0,0]")}}`, /needs 79228162514264337593543950336/);
  });

  it("F4 / F6 element counts that are not whole bytes (MisalignedSlice)", () => {
    expectHeaderError(`{"a":${T("F4", "[3]", "[0,2]")}}`, /tensor "a": F4 × shape is not a whole number of bytes/, 2);
    expectHeaderError(`{"a":${T("F4", "[1,1]", "[0,1]")}}`, /not a whole number of bytes/, 1);
    expectHeaderError(`{"a":${T("F6_E3M2", "[2]", "[0,2]")}}`, /tensor "a": F6_E3M2 × shape is not a whole number of bytes/, 2);
  });

  it("trailing bytes after the data, truncated data (file length must be exactly 8 + N + data)", () => {
    const json = `{"a":${T("U8", "[4]", "[0,4]")}}`;
    expect(parseText(json, 4).dataBytes).toBe(4);
    expectHeaderError(json, /file has 1 trailing bytes after the last tensor/, 5);
    expectHeaderError(json, /file has 96 trailing bytes/, 100);
    expectHeaderError(json, /file is truncated: \d+ bytes, the header describes \d+/, 3);
    expectHeaderError(json, /file is truncated/, -8 - enc.encode(json).length); // fileBytes 0
    // Without a file length only the header itself is checked.
    expect(parseHeader(enc.encode(json)).dataBytes).toBe(4);
  });

  it("duplicate keys (top level, __metadata__, inside a tensor entry)", () => {
    const a = T("U8", "[2]", "[0,2]");
    expectHeaderError(`{"a":${a},"a":${a}}`, /duplicate key "a"/, 2);
    expectHeaderError(`{"__metadata__":{},"__metadata__":{}}`, /duplicate key "__metadata__"/);
    expectHeaderError(`{"__metadata__":{"k":"1","k":"2"}}`, /duplicate key "k"/);
    expectHeaderError(`{"a":{"dtype":"U8","dtype":"I8","shape":[2],"data_offsets":[0,2]}}`, /duplicate key "dtype"/, 2);
    // Escaped and raw spellings of the same key are the same key.
    expectHeaderError(`{"a":${a},"\\u0061":${a}}`, /duplicate key "a"/, 2);
  });
});

// ------------------------------------------------------------------------------------------------

/** Plain-JS view of a parsed value (numbers as raw text) for structural comparisons. */
function plain(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return { num: v.raw };
  if (v instanceof JsonObject) return v.entries.map(([k, x]) => [k, plain(x)]);
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

describe("parseJson", () => {
  const jsonError = (text: string, message: string | RegExp) =>
    expectFormatError(
      thrown(() => parseJson(text)),
      message,
    );

  it("decodes every escape", () => {
    expect(parseJson(String.raw`"\"\\\/\b\f\n\r\t\u0041\u00e9\u00E9\u20ac"`)).toBe('"\\/\b\f\n\r\tAéé€');
    expect(parseJson(String.raw`"\u0000x"`)).toBe("\u0000x");
    expect(parseJson(`"raw é 😀 \u007f /"`)).toBe("raw é 😀 \u007f /");
  });

  it("decodes surrogate pairs (either hex case)", () => {
    expect(parseJson(String.raw`"\ud83d\ude00"`)).toBe("😀");
    expect(parseJson(String.raw`"\uD83D\uDE00!"`)).toBe("😀!");
    expect(parseJson(String.raw`"\udbff\udfff"`)).toBe("\u{10ffff}");
  });

  it("rejects lone surrogates", () => {
    jsonError(String.raw`"\ud83d"`, /lone surrogate/);
    jsonError(String.raw`"\ud83dx"`, /lone surrogate/);
    jsonError(String.raw`"\ud83d\u0041"`, /lone surrogate/);
    jsonError(String.raw`"\ud83d\ud83d"`, /lone surrogate/);
    jsonError(String.raw`"\ude00"`, /lone surrogate/);
    jsonError(String.raw`"\ude00\ud83d"`, /lone surrogate/);
  });

  it("rejects invalid escapes, raw control characters and unterminated strings", () => {
    jsonError(String.raw`"\x41"`, /invalid escape/);
    jsonError(String.raw`"\'"`, /invalid escape/);
    jsonError(String.raw`"\u12"`, /invalid \\u escape/);
    jsonError(String.raw`"\u12g4"`, /invalid \\u escape/);
    jsonError(`"a\u0001b"`, /control character in string/);
    jsonError(`"a\nb"`, /control character in string/);
    jsonError(`"abc`, /unterminated string/);
    jsonError(`"abc\\`, /invalid escape|unterminated/);
  });

  it("keeps numbers as their exact source text", () => {
    const v = parseJson(`[9007199254740993,1.50,-0,1E+2,123456789012345678901234567890,0,-12.5e-3]`);
    expect(plain(v)).toEqual(
      ["9007199254740993", "1.50", "-0", "1E+2", "123456789012345678901234567890", "0", "-12.5e-3"].map((num) => ({ num })),
    );
  });

  it("toSafeInteger accepts only non-negative safe integers written as plain integers", () => {
    const num = (raw: string) => new JsonNumber(raw);
    expect(toSafeInteger(num("0"))).toBe(0);
    expect(toSafeInteger(num("42"))).toBe(42);
    expect(toSafeInteger(num("9007199254740991"))).toBe(9007199254740991);
    for (const raw of ["9007199254740992", "9007199254740993", "-1", "1.0", "1e3", "01"]) expect(toSafeInteger(num(raw))).toBeUndefined();
    expect(toSafeInteger("5")).toBeUndefined();
    expect(toSafeInteger(undefined)).toBeUndefined();
  });

  it("rejects malformed numbers and literals", () => {
    for (const text of ["01", "1.", ".5", "+1", "-", "1e", "1e+", "NaN", "Infinity", "-Infinity", "0x10"]) {
      expect(
        thrown(() => parseJson(text)),
        text,
      ).toBeInstanceOf(CryptoTensorsError);
    }
    for (const text of ["tru", "nul", "fals", "True", "undefined"]) jsonError(text, /unexpected/);
  });

  it("keeps object member order and rejects duplicate members", () => {
    const v = parseJson(`{"10":1,"2":2,"0":3,"b":4,"a":5}`) as JsonObject;
    expect(v.entries.map(([k]) => k)).toEqual(["10", "2", "0", "b", "a"]);
    expect(v.get("2")).toEqual(new JsonNumber("2"));
    expect(v.has("z")).toBe(false);
    jsonError(`{"a":1,"b":2,"a":3}`, /duplicate key "a"/);
    // __proto__ is a plain key, not a prototype assignment.
    const p = parseJson(`{"__proto__":{"x":1}}`) as JsonObject;
    expect(p.entries.map(([k]) => k)).toEqual(["__proto__"]);
  });

  it("structure, whitespace and trailing characters", () => {
    expect(plain(parseJson(` \t\r\n{"a":[true,false,null,{"b":[]}],"c":{}} \n`))).toEqual([
      ["a", [true, false, null, [["b", []]]]],
      ["c", []],
    ]);
    jsonError(`[1,2`, /unexpected end|expected ',' or '\]'/);
    jsonError(`[1 2]`, /expected ',' or '\]'/);
    jsonError(`{"a":1 "b":2}`, /expected ',' or '}'/);
    jsonError(`[1],`, /trailing characters/);
    jsonError(`\u00a0[]`, /unexpected character/); // only JSON whitespace is skipped
  });

  it("nesting limit is serde_json's: 127 levels parse, 128 are refused", () => {
    // serde_json starts with remaining_depth = 128 and fails when a container brings it to 0, so the
    // reference accepts at most 127 nested arrays/objects (the header object itself counts as one).
    const arrays = (n: number) => "[".repeat(n) + "]".repeat(n);
    expect(() => parseJson(arrays(127))).not.toThrow();
    jsonError(arrays(128), /nesting too deep/);
    const objects = (n: number) => `{"a":`.repeat(n - 1) + "{}" + "}".repeat(n - 1);
    expect(() => parseJson(objects(127))).not.toThrow();
    jsonError(objects(128), /nesting too deep/);
    // Scalars at depth 127 are fine (only containers count).
    expect(() => parseJson("[".repeat(127) + "1" + "]".repeat(127))).not.toThrow();
    // And a header nested that deep inside an ignored tensor member is refused like the reference does.
    const deep = "[".repeat(126) + "]".repeat(126); // + header object + tensor object = 128 levels
    expectHeaderError(`{"a":{"x":${deep},"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, /nesting too deep/);
  });

  it("hostile nesting throws CryptoTensorsError, never a stack overflow", () => {
    const err = thrown(() => parseJson("[".repeat(200_000)));
    expectFormatError(err, /nesting too deep/);
    expectFormatError(
      thrown(() => parseJson(`{"a":`.repeat(100_000))),
      /nesting too deep/,
    );
  });

  it("the error message names what was parsed and where", () => {
    expectFormatError(
      thrown(() => parseJson(`{"a":}`, "__policy__")),
      /^invalid __policy__: unexpected character "}" at character 5$/,
    );
  });
});

// ------------------------------------------------------------------------------------------------

describe("canonical serializer", () => {
  it("sorts metadata keys by UTF-8 bytes, not UTF-16 code units", () => {
    const keys = ["b", "A", "__x__", "é", "😀", "\uE000"];
    const expected = ["A", "__x__", "b", "é", "\uE000", "😀"];
    expect([...keys].sort(compareUtf8)).toEqual(expected);
    expect([...keys].sort()).not.toEqual(expected); // JS's default order puts 😀 (D83D…) before U+E000
    const json = serializeHeaderJson(new Map(keys.map((k) => [k, "v"])), []);
    expect(json).toBe(`{"__metadata__":{"A":"v","__x__":"v","b":"v","é":"v","\uE000":"v","😀":"v"}}`);
  });

  it("orders the reserved keys as the reference does (§1.3)", () => {
    const keys = ["format", "__signature__", "__policy__", "__encryption__", "__crypto_keys__", "Format"];
    expect([...keys].sort(compareUtf8)).toEqual(["Format", "__crypto_keys__", "__encryption__", "__policy__", "__signature__", "format"]);
    expect(compareUtf8("a", "a")).toBe(0);
    expect(compareUtf8("a", "ab")).toBeLessThan(0);
    expect(compareUtf8("\u{10000}", "\uFFFF")).toBeGreaterThan(0);
  });

  it("escapes strings exactly like serde_json", () => {
    const value = `q"b\\s\nn\u0001\u001f\b\f\r\t\u007f/é😀\u2028`;
    const json = serializeHeaderJson(new Map([['k"\n', value]]), []);
    // `\u0001` and `\u001f` in lowercase hex; DEL, '/', U+2028 and non-ASCII raw.
    expect(json).toBe(`{"__metadata__":{"k\\"\\n":"q\\"b\\\\s\\nn\\u0001\\u001f\\b\\f\\r\\t\u007f/é😀\u2028"}}`);
    expect(Buffer.from(json).includes(0x7f)).toBe(true);
    expect(json).not.toMatch(/\\u007f|\\\/|\\u00e9|\\u2028/i);
  });

  it("escapes tensor names too, and writes members in the order dtype, shape, data_offsets", () => {
    const json = serializeHeaderJson(null, [{ name: `a"/\u0001é`, dtype: "I16", shape: [2, 0, 3], begin: 7, end: 7 }]);
    expect(json).toBe(`{"a\\"/\\u0001é":{"dtype":"I16","shape":[2,0,3],"data_offsets":[7,7]}}`);
  });

  it("empty metadata still emits __metadata__:{}, absent metadata emits nothing", () => {
    expect(serializeHeaderJson(new Map(), [])).toBe(`{"__metadata__":{}}`);
    expect(serializeHeaderJson(null, [])).toBe(`{}`);
    expect(serializeHeaderJson(null, [{ name: "s", dtype: "U8", shape: [], begin: 0, end: 1 }])).toBe(
      `{"s":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}`,
    );
  });

  it("writes integers as plain decimals, even large safe ones", () => {
    const json = serializeHeaderJson(null, [{ name: "x", dtype: "U8", shape: [9007199254740991], begin: 0, end: 9007199254740991 }]);
    expect(json).toBe(`{"x":{"dtype":"U8","shape":[9007199254740991],"data_offsets":[0,9007199254740991]}}`);
  });

  it("pads with spaces to a multiple of 8 and prefixes N as u64 little-endian", () => {
    for (let len = 1; len <= 24; len++) {
      const json = "{" + "x".repeat(len - 1);
      const out = encodeHeader(json);
      const n = Number(new DataView(out.buffer, out.byteOffset).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      expect(n).toBe(Math.ceil(len / 8) * 8);
      expect(out.length).toBe(8 + n);
      expect(Buffer.from(out.subarray(8, 8 + len)).toString()).toBe(json);
      expect([...out.subarray(8 + len)].every((b) => b === 0x20)).toBe(true);
    }
    // Padding counts UTF-8 bytes, not UTF-16 units: "é" is 2 bytes, "😀" is 4.
    expect(encodeHeader('{"é😀"').length).toBe(8 + 16); // 9 bytes → 16
    expect(encodeHeader('{"é"}').length).toBe(8 + 8); // 6 bytes → 8
  });

  it("refuses to encode a header over the 100 MB limit", () => {
    expectFormatError(
      thrown(() => encodeHeader("x".repeat(MAX_HEADER_BYTES + 1))),
      /over the 100000000-byte limit/,
    );
  });

  it("round trip: serialize → parse → serialize is the identity", () => {
    const md = new Map([
      ["format", "pt"],
      ["10", "x"],
      ["é", '"q"'],
    ]);
    const tensors = layoutTensors([
      { name: "z", dtype: "U8", shape: [3] },
      { name: "10", dtype: "F16", shape: [2, 2] },
      { name: "2", dtype: "F16", shape: [0] },
      { name: "é", dtype: "I64", shape: [1] },
    ]);
    const json = serializeHeaderJson(md, tensors);
    const parsed = parseHeader(enc.encode(json));
    expect(serializeHeaderJson(parsed.metadata, parsed.tensors)).toBe(json);
  });
});

describe("layoutTensors (reference writer order, §1.5)", () => {
  it("sorts by dtype descending in enum order, offsets contiguous", () => {
    const specs = DTYPES.map((d) => ({ name: `t${d}`, dtype: d, shape: [8] }));
    // Input in a scrambled order (every 7th of 20, 7 and 20 coprime).
    const out = layoutTensors(specs.map((_, i) => specs[(i * 7) % specs.length]!));
    expect(out.map((t) => t.dtype)).toEqual([...DTYPES].reverse());
    let cursor = 0;
    for (const t of out) {
      expect(t.begin).toBe(cursor);
      cursor = t.end;
    }
    // 8 elements each: 8+4+6+6+8+8+3·8 + 4·16 + 3·32 + 4·64 bytes.
    expect(cursor).toBe(480);
    expect(out.find((t) => t.dtype === "F4")!.end - out.find((t) => t.dtype === "F4")!.begin).toBe(4);
    expect(out.find((t) => t.dtype === "F6_E3M2")!.end - out.find((t) => t.dtype === "F6_E3M2")!.begin).toBe(6);
    expect(out.find((t) => t.dtype === "U64")!.begin).toBe(0);
  });

  it("breaks dtype ties by name in UTF-8 byte order", () => {
    const names = ["b", "A", "__x__", "é", "😀", "\uE000", "10", "2"];
    const out = layoutTensors(names.map((name) => ({ name, dtype: "F32" as const, shape: [1] })));
    expect(out.map((t) => t.name)).toEqual(["10", "2", "A", "__x__", "b", "é", "\uE000", "😀"]);
    expect(out.map((t) => [t.begin, t.end])).toEqual(names.map((_, i) => [4 * i, 4 * i + 4]));
  });

  it("mixes dtype and name order", () => {
    const out = layoutTensors([
      { name: "a", dtype: "U8", shape: [1] },
      { name: "b", dtype: "BF16", shape: [1] },
      { name: "a16", dtype: "F16", shape: [1] },
      { name: "c", dtype: "I64", shape: [1] },
      { name: "0", dtype: "BF16", shape: [1] },
    ]);
    expect(out.map((t) => t.name)).toEqual(["c", "0", "b", "a16", "a"]);
    expect(out.map((t) => t.end)).toEqual([8, 10, 12, 14, 15]);
  });

  it("copies shapes (no aliasing of the caller's arrays)", () => {
    const shape = [2];
    const out = layoutTensors([{ name: "a", dtype: "U8", shape }]);
    shape[0] = 99;
    expect(out[0]!.shape).toEqual([2]);
  });

  it("separates adjacent zero-length tensors so that no two share an offset", () => {
    const out = layoutTensors([
      { name: "a", dtype: "F32", shape: [0] },
      { name: "b", dtype: "F32", shape: [3, 0] },
      { name: "c", dtype: "F32", shape: [2] },
      { name: "d", dtype: "I64", shape: [1] },
    ]);
    // Reference order would be d, a, b, c (a and b both at offset 8); empties are spread between the others.
    expect(out.map((t) => [t.name, t.begin, t.end])).toEqual([
      ["a", 0, 0],
      ["d", 0, 8],
      ["b", 8, 8],
      ["c", 8, 16],
    ]);
    for (let i = 1; i < out.length; i++) expect(out[i]!.begin === out[i]!.end && out[i - 1]!.begin === out[i - 1]!.end).toBe(false);
    // The reader recovers exactly this order, so the canonical (signed) bytes are stable.
    const json = serializeHeaderJson(null, out);
    const parsed = parseHeader(enc.encode(json));
    expect(parsed.tensors.map((t) => t.name)).toEqual(["a", "d", "b", "c"]);
    expect(serializeHeaderJson(null, parsed.tensors)).toBe(json);
  });

  it("keeps the reference order when there are too many empty tensors to separate", () => {
    const out = layoutTensors([
      { name: "e1", dtype: "U8", shape: [0] },
      { name: "e2", dtype: "U8", shape: [0] },
      { name: "e3", dtype: "U8", shape: [0] },
      { name: "f", dtype: "U8", shape: [1] },
    ]);
    expect(out.map((t) => t.name)).toEqual(["e1", "e2", "e3", "f"]);
    expect(out.map((t) => t.begin)).toEqual([0, 0, 0, 0]);
  });

  it("leaves non-adjacent empty tensors alone", () => {
    const out = layoutTensors([
      { name: "a", dtype: "U8", shape: [0] },
      { name: "b", dtype: "U8", shape: [1] },
      { name: "c", dtype: "U8", shape: [0] },
    ]);
    expect(out.map((t) => t.name)).toEqual(["a", "b", "c"]);
  });

  it("rejects a layout that is not whole bytes with a TypeError", () => {
    expect(() => layoutTensors([{ name: "f4", dtype: "F4", shape: [3] }])).toThrow(TypeError);
  });
});

describe("golden header bytes, derived by hand from the spec", () => {
  it("§9's tensors with format=pt, unencrypted: N = 152, one space of padding", () => {
    // Writer order: both F32 → by name: bias [0,12], weight [12,36].
    // JSON is 151 bytes: 32 for `{"__metadata__":{"format":"pt"},`, 57 for the bias member and its comma,
    // 62 for the weight member and the closing brace → padded to 152 = 0x98.
    const bias = new Uint8Array(12).fill(0xb1);
    const weight = new Uint8Array(24).map((_, i) => i);
    const { bytes: file } = plainSafetensorsBytes(
      [
        { name: "weight", dtype: "F32", shape: [2, 3], data: weight },
        { name: "bias", dtype: "F32", shape: [3], data: bias },
      ],
      { format: "pt" },
    );
    const expectedJson =
      `{"__metadata__":{"format":"pt"},"bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},` +
      `"weight":{"dtype":"F32","shape":[2,3],"data_offsets":[12,36]}}`;
    expect(expectedJson.length).toBe(151);
    const expected = concat(bytes(0x98, 0, 0, 0, 0, 0, 0, 0), enc.encode(expectedJson + " "), bias, weight);
    expect(Buffer.from(file).toString("hex")).toBe(Buffer.from(expected).toString("hex"));
  });

  it("mixed dtypes, non-ASCII and escaped metadata: N = 216, seven spaces", () => {
    // Writer order: I64 "é" [0,8], F16 "10" [8,12], U8 "x" [12,15]. The JSON is 209 UTF-8 bytes
    // ("é" is 2 bytes, `\"` is 2) → padded to 216 = 0xD8.
    const e = bytes(1, 2, 3, 4, 5, 6, 7, 8);
    const ten = bytes(0xa, 0xb, 0xc, 0xd);
    const x = bytes(0xf0, 0xf1, 0xf2);
    const { bytes: file } = plainSafetensorsBytes(
      [
        { name: "x", dtype: "U8", shape: [3], data: x },
        { name: "é", dtype: "I64", shape: [1], data: e },
        { name: "10", dtype: "F16", shape: [2, 1], data: ten },
      ],
      { é: 'a"b', format: "pt" },
    );
    const expectedJson =
      `{"__metadata__":{"format":"pt","é":"a\\"b"},` +
      `"é":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},` +
      `"10":{"dtype":"F16","shape":[2,1],"data_offsets":[8,12]},` +
      `"x":{"dtype":"U8","shape":[3],"data_offsets":[12,15]}}`;
    expect(enc.encode(expectedJson).length).toBe(209);
    const expected = concat(bytes(0xd8, 0, 0, 0, 0, 0, 0, 0), enc.encode(expectedJson + "       "), e, ten, x);
    expect(Buffer.from(file).toString("hex")).toBe(Buffer.from(expected).toString("hex"));
    // And the reader takes it apart again.
    const h = parseHeader(file.subarray(8, 8 + 216), file.length);
    expect(h.tensors.map((t) => t.name)).toEqual(["é", "10", "x"]);
    expect(h.metadata).toEqual(
      new Map([
        ["format", "pt"],
        ["é", 'a"b'],
      ]),
    );
  });
});
