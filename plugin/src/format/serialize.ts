// Canonical header serialisation, byte-identical to the reference (docs/format.md §1.3, §1.5):
// compact JSON, `__metadata__` first with keys in UTF-8 byte order, tensors in data order with members
// dtype, shape, data_offsets; padded with spaces to a multiple of 8. The same bytes (without
// `__signature__` and padding) are what the Ed25519 signature covers.

import { dtypeRank, type Dtype } from "./dtype.js";
import { tensorByteLength } from "./dtype.js";
import { HEADER_PREFIX_BYTES, MAX_HEADER_BYTES, type TensorInfo } from "./header.js";
import { CryptoTensorsError } from "../errors.js";

const encoder = new TextEncoder();

const utf8 = new TextEncoder();

/** Compares strings by their UTF-8 bytes (Rust `String` order), not by UTF-16 code units. */
export function compareUtf8(a: string, b: string): number {
  if (typeof Buffer !== "undefined") return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
  // Browsers (no Buffer): the same byte order.
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** The compact canonical header JSON. `tensors` must already be in data order. */
export function serializeHeaderJson(metadata: ReadonlyMap<string, string> | null, tensors: readonly TensorInfo[]): string {
  const parts: string[] = [];
  if (metadata) {
    const keys = [...metadata.keys()].sort(compareUtf8);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata.get(k))}`).join(",")}}`);
  }
  for (const t of tensors) {
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(",")}],"data_offsets":[${t.begin},${t.end}]}`,
    );
  }
  return `{${parts.join(",")}}`;
}

/** 8-byte little-endian length prefix + the JSON padded with spaces to a multiple of 8. */
export function encodeHeader(json: string): Uint8Array {
  const body = encoder.encode(json);
  const padded = Math.ceil(body.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new CryptoTensorsError(
      "ERR_CT_FORMAT",
      `header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit (a larger chunk size makes it smaller)`,
      { option: "chunkBytes" },
    );
  }
  const out = new Uint8Array(HEADER_PREFIX_BYTES + padded).fill(0x20, HEADER_PREFIX_BYTES);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(body, HEADER_PREFIX_BYTES);
  return out;
}

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
}

/**
 * Orders tensors as the reference writer does (dtype descending in enum order, then name ascending) and
 * assigns contiguous offsets. Zero-length tensors are moved so that no two share an offset when
 * possible: the reference orders such ties randomly when it verifies, so adjacent empty tensors make
 * its signature check fail at random (docs/format.md §11.2 item 10).
 * @throws TypeError when a shape is not a whole number of bytes
 */
export function layoutTensors(specs: readonly TensorSpec[]): TensorInfo[] {
  const sorted = [...specs].sort((a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || compareUtf8(a.name, b.name));
  const sized = sorted.map((s) => {
    const n = tensorByteLength(s.dtype, s.shape);
    if (n === undefined) throw new TypeError(`tensor ${s.name}: ${s.dtype}${JSON.stringify(s.shape)} is not a whole number of bytes`);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new TypeError(`tensor ${s.name} is too large`);
    return { spec: s, bytes: Number(n) };
  });
  const ordered = separateEmptyTensors(sized);
  let offset = 0;
  return ordered.map(({ spec, bytes }) => {
    const info: TensorInfo = { name: spec.name, dtype: spec.dtype, shape: [...spec.shape], begin: offset, end: offset + bytes };
    offset += bytes;
    return info;
  });
}

function separateEmptyTensors<T extends { bytes: number }>(items: T[]): T[] {
  const hasAdjacentEmpties = items.some((t, i) => i > 0 && t.bytes === 0 && items[i - 1]!.bytes === 0);
  if (!hasAdjacentEmpties) return items;
  const empties = items.filter((t) => t.bytes === 0);
  const full = items.filter((t) => t.bytes !== 0);
  // Each non-empty tensor can separate two empty ones; one empty tensor may also lead.
  if (empties.length > full.length + 1) return items;
  const out: T[] = [];
  for (let i = 0; i < full.length + 1; i++) {
    if (i < empties.length) out.push(empties[i]!);
    if (i < full.length) out.push(full[i]!);
  }
  return out;
}
