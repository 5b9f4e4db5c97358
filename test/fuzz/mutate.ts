// Mutators (fast-check arbitraries) that turn seed files into hostile inputs. Three layers:
// - bytes: bit flips, interesting bytes and 64-bit integers, deletions, insertions, duplications,
//   truncation (what a corrupted download or a blind attacker produces);
// - header text: a number or string token of the JSON header replaced by an interesting one, the
//   8-byte length prefix fixed up so the change reaches the parser;
// - header structure: the header parsed (inner JSON documents such as __crypto_keys__ too), one value
//   replaced, removed or added at a random path, serialised again, optionally re-signed with the
//   trusted key (what an insider with the signing key, or a bug in a writer, produces).
// Every mutation is a plain record, so fast-check can shrink a failing input to a small one.

import fc from "fast-check";

const INTERESTING_BYTES = [
  0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x39, 0x20, 0x0a, 0xc0, 0xed,
];
const INTERESTING_U64 = [
  0n,
  1n,
  7n,
  8n,
  0x7fn,
  0xffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  100_000_000n,
  100_000_001n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
];
export const INTERESTING_NUMBERS = [
  "0",
  "1",
  "-1",
  "7",
  "8",
  "12",
  "16",
  "31",
  "32",
  "33",
  "255",
  "65535",
  "2147483647",
  "2147483648",
  "4294967295",
  "4294967296",
  "9007199254740991",
  "9007199254740992",
  "18446744073709551615",
  "18446744073709551616",
  "1e3",
  "0.5",
  "-0",
  "1e309",
  "00",
  "01",
  "1E2",
];
export const INTERESTING_STRINGS = [
  "",
  "F32",
  "F4",
  "F8_E8M0",
  "BOOL",
  "U8",
  "C64",
  "__metadata__",
  "\u0000",
  "\u001b]0;pwned\u0007",
  "A".repeat(4096),
  "{}",
  "[]",
  "null",
  "1",
  "2",
  "0",
  "AAAA",
  "AAAAAAAAAAAAAAAA",
  "AAAAAAAAAAAAAAAAAAAAAA==",
  "=",
  "aes256gcm",
  "aes128gcm",
  "chacha20poly1305",
  "ed25519",
  "oct",
  "okp",
  "file:///etc/passwd",
  "file://",
  "../../x",
  "package model\nallow = false",
  "package model\nallow = true",
  "model.w",
  "empty",
  "é\uE000😀",
];

export type ByteOp =
  | { op: "flip"; at: number; bit: number }
  | { op: "byte"; at: number; value: number }
  | { op: "u64"; at: number; value: bigint }
  | { op: "delete"; at: number; length: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "copy"; from: number; to: number; length: number }
  | { op: "truncate"; at: number };

const pos = fc.nat({ max: 1 << 20 });
export const byteOpArb: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("flip" as const), at: pos, bit: fc.nat({ max: 7 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("byte" as const),
      at: pos,
      value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat({ max: 255 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("u64" as const),
      at: pos,
      value: fc.oneof(fc.constantFrom(...INTERESTING_U64), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), at: pos, length: fc.integer({ min: 1, max: 64 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("insert" as const), at: pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("copy" as const), from: pos, to: pos, length: fc.integer({ min: 1, max: 256 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("truncate" as const), at: pos }) },
);

export function applyByteOp(b: Uint8Array, m: ByteOp): Uint8Array {
  if (b.length === 0 && m.op !== "insert") return b;
  const at = (n: number, len = b.length) => (len === 0 ? 0 : n % len);
  switch (m.op) {
    case "flip": {
      const o = b.slice();
      o[at(m.at)]! ^= 1 << m.bit;
      return o;
    }
    case "byte": {
      const o = b.slice();
      o[at(m.at)] = m.value;
      return o;
    }
    case "u64": {
      const o = b.slice();
      const i = at(m.at);
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigUint64(0, m.value, true);
      o.set(v.subarray(0, Math.min(8, o.length - i)), i);
      return o;
    }
    case "delete": {
      const i = at(m.at);
      return concat(b.subarray(0, i), b.subarray(i + m.length));
    }
    case "insert": {
      const i = at(m.at, b.length + 1);
      return concat(b.subarray(0, i), m.bytes, b.subarray(i));
    }
    case "copy": {
      const f = at(m.from);
      const t = at(m.to);
      const o = b.slice();
      o.set(b.subarray(f, f + Math.min(m.length, b.length - t)), t);
      return o;
    }
    case "truncate":
      return b.subarray(0, at(m.at));
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const latin1 = new TextDecoder("latin1");

/** The header region of a safetensors file, or null when the prefix does not describe one. */
export function splitFile(file: Uint8Array): { json: Uint8Array; data: Uint8Array } | null {
  if (file.length < 8) return null;
  const n = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(file.length - 8)) return null;
  return { json: file.subarray(8, 8 + Number(n)), data: file.subarray(8 + Number(n)) };
}

/** Prefix (N, little-endian) + header bytes + data. */
export function joinFile(json: Uint8Array, data: Uint8Array): Uint8Array {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
  return concat(prefix, json, data);
}

export interface TextOp {
  kind: "number" | "string";
  index: number;
  replacement: string;
}

export const textOpArb: fc.Arbitrary<TextOp> = fc.oneof(
  fc.record({
    kind: fc.constant("number" as const),
    index: fc.nat(),
    replacement: fc.oneof(fc.constantFrom(...INTERESTING_NUMBERS), fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String)),
  }),
  fc.record({
    kind: fc.constant("string" as const),
    index: fc.nat(),
    replacement: fc.oneof(fc.constantFrom(...INTERESTING_STRINGS), fc.string({ maxLength: 12 })).map((s) => JSON.stringify(s)),
  }),
);

const NUMBER_TOKEN = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const STRING_TOKEN = /"(?:[^"\\]|\\.)*"/g;

/** Replaces one token of the header JSON text (byte-exact elsewhere) and fixes the length prefix. */
export function applyTextOp(file: Uint8Array, m: TextOp): Uint8Array {
  const parts = splitFile(file);
  if (!parts) return file;
  const text = latin1.decode(parts.json);
  const tokens = [...text.matchAll(m.kind === "number" ? NUMBER_TOKEN : STRING_TOKEN)];
  if (!tokens.length) return file;
  const t = tokens[m.index % tokens.length]!;
  const replaced = text.slice(0, t.index) + m.replacement + text.slice(t.index + t[0].length);
  return joinFile(new Uint8Array(Buffer.from(replaced, "latin1")), parts.data);
}

/** One structural edit of the parsed header: a path chosen by index among all paths, then an action. */
export interface TreeOp {
  path: number;
  action: "replace" | "remove" | "add";
  value: unknown;
  key: string;
}

const jsonLeafArb = fc.oneof(
  fc.constantFrom(...INTERESTING_STRINGS),
  fc.constantFrom(...INTERESTING_NUMBERS.filter((n) => !/[eE.]|^-0$|^0\d/.test(n))).map((n) => Number(n)),
  fc.constantFrom(null, true, false, [], {}, [0], [0, 0], [1, 0], [-1, 5], [0, 2 ** 53], ["F32"], [[]]),
  fc.integer(),
  fc.string({ maxLength: 8 }),
);
export const treeOpArb: fc.Arbitrary<TreeOp> = fc.record({
  path: fc.nat(),
  action: fc.constantFrom("replace" as const, "replace" as const, "remove" as const, "add" as const),
  value: jsonLeafArb,
  key: fc.oneof(
    fc.constantFrom(
      "dtype",
      "shape",
      "data_offsets",
      "__metadata__",
      "__signature__",
      "__encryption__",
      "__crypto_keys__",
      "__policy__",
      "__ctensors_digests__",
      "version",
      "chunk_size",
      "enc",
      "sign",
      "alg",
      "kid",
      "jku",
      "iv",
      "tag",
      "tags",
      "base_iv",
      "wrapped_key",
      "x",
      "local",
      "remote",
    ),
    fc.string({ maxLength: 6 }),
  ),
});

type Json = unknown;
/** Values of __metadata__ that hold JSON documents are edited as documents (marked so they are re-encoded as strings). */
const INNER = Symbol("inner");
interface Inner {
  [INNER]: true;
  doc: Json;
}

function expandInner(v: Json): Json {
  if (typeof v === "string" && /^[{[]/.test(v)) {
    try {
      return { [INNER]: true, doc: expandInner(JSON.parse(v)) } as Inner;
    } catch {
      return v;
    }
  }
  if (Array.isArray(v)) return v.map(expandInner);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expandInner(x)]));
  return v;
}

function collapse(v: Json): Json {
  if (v && typeof v === "object" && INNER in (v as object)) return JSON.stringify(collapse((v as Inner).doc));
  if (Array.isArray(v)) return v.map(collapse);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, collapse(x)]));
  return v;
}

/** Every container (object or array) in the tree, with its parent slot. */
function containers(root: Json): Json[] {
  const out: Json[] = [];
  const walk = (v: Json) => {
    const inner = v && typeof v === "object" && INNER in (v as object) ? (v as Inner).doc : v;
    if (inner && typeof inner === "object") {
      out.push(inner);
      for (const x of Object.values(inner as object)) walk(x);
    }
  };
  walk(root);
  return out;
}

/** Applies structural edits to the header JSON; returns null when the header is not JSON (nothing to edit). */
export function applyTreeOps(file: Uint8Array, ops: readonly TreeOp[]): { file: Uint8Array; json: Record<string, unknown> } | null {
  const parts = splitFile(file);
  if (!parts) return null;
  let root: Json;
  try {
    root = expandInner(JSON.parse(Buffer.from(parts.json).toString("utf8")));
  } catch {
    return null;
  }
  for (const op of ops) {
    const all = containers(root);
    if (!all.length) break;
    const c = all[op.path % all.length] as Record<string, Json> | Json[];
    const keys = Object.keys(c);
    const key = Array.isArray(c)
      ? String(keys.length ? op.path % keys.length : 0)
      : keys.length && op.action !== "add"
        ? keys[op.path % keys.length]!
        : op.key;
    if (op.action === "remove") {
      if (Array.isArray(c)) c.splice(Number(key), 1);
      else delete c[key];
    } else {
      (c as Record<string, Json>)[key] = structuredClone(op.value); // constants are shared: never insert one twice
    }
  }
  const json = collapse(root) as Record<string, unknown>;
  const text = JSON.stringify(json);
  return { file: joinFile(new Uint8Array(Buffer.from(text, "utf8")), parts.data), json };
}
