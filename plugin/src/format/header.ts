// Parse and validate a safetensors header, with the reference's checks in its order
// (docs/format.md §1.1–§1.2): size prefix, cap, UTF-8, JSON, entries, contiguous offsets,
// dtype × shape = byte length, and the file length exactly 8 + N + data length (no trailing bytes).

import { formatError } from "../errors.js";
import { isDtype, tensorByteLength, type Dtype } from "./dtype.js";
import { JsonObject, parseJson, toSafeInteger, type JsonValue } from "./json.js";
import { quote } from "./printable.js";

export const HEADER_PREFIX_BYTES = 8;
/** The reference's MAX_HEADER_SIZE. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N: the length of the JSON header region (padding included). */
  headerBytes: number;
  /** File offset of the data section: 8 + N. */
  dataStart: number;
  /** Length of the data section (end of the last tensor). */
  dataBytes: number;
  /** `__metadata__` in order of appearance, or null when absent. */
  metadata: Map<string, string> | null;
  /** Tensors in data order (ascending offsets; ties keep their order of appearance). */
  tensors: TensorInfo[];
  byName: Map<string, TensorInfo>;
}

/** Reads N from the 8-byte little-endian prefix. @throws ERR_CT_FORMAT */
export function parseHeaderPrefix(prefix: Uint8Array): number {
  if (prefix.length < HEADER_PREFIX_BYTES) throw formatError("header too small: the file is shorter than 8 bytes");
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    // A text file (config.json, a README) given by mistake reads as an absurd length: say what it is.
    const text = prefix.subarray(0, 8).every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d);
    throw formatError(
      `header too large: ${n} bytes (the limit is ${MAX_HEADER_BYTES}): not a safetensors file` +
        (text
          ? ` (it begins with text, ${JSON.stringify(new TextDecoder().decode(prefix.subarray(0, 8)))}: a JSON or other text file?)`
          : ""),
    );
  }
  return Number(n);
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Parses the N header bytes (without the prefix). When `fileBytes` is given, the total file length is
 * checked against the offsets.
 * @throws ERR_CT_FORMAT
 */
export function parseHeader(header: Uint8Array, fileBytes?: number): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(header);
  } catch {
    throw formatError("header is not valid UTF-8");
  }
  const root = parseJson(text, "header JSON");
  if (!(root instanceof JsonObject)) throw formatError("header JSON is not an object");

  let metadata: Map<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [key, value] of root.entries) {
    if (key === "__metadata__") {
      metadata = parseMetadata(value);
    } else {
      tensors.push(parseTensorEntry(key, value));
    }
  }

  // Stable sort: ties (zero-length tensors at the same offset) keep their order of appearance,
  // which is the order the reference writer emitted them in.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);

  let cursor = 0;
  for (const t of tensors) {
    if (t.begin !== cursor || t.end < t.begin) {
      throw formatError(`invalid offsets for tensor ${quote(t.name)}: data must be contiguous from 0`);
    }
    const size = tensorByteLength(t.dtype, t.shape);
    if (size === undefined) {
      throw formatError(`tensor ${quote(t.name)}: ${t.dtype} × shape is not a whole number of bytes`);
    }
    if (size !== BigInt(t.end - t.begin)) {
      throw formatError(`tensor ${quote(t.name)}: offsets span ${t.end - t.begin} bytes but ${t.dtype}${quote(t.shape)} needs ${size}`);
    }
    cursor = t.end;
  }

  const headerBytes = header.length;
  const dataStart = HEADER_PREFIX_BYTES + headerBytes;
  if (fileBytes !== undefined && dataStart + cursor !== fileBytes) {
    throw formatError(
      fileBytes < dataStart + cursor
        ? `file is truncated: ${fileBytes} bytes, the header describes ${dataStart + cursor}`
        : `file has ${fileBytes - (dataStart + cursor)} trailing bytes after the last tensor`,
    );
  }

  return {
    headerBytes,
    dataStart,
    dataBytes: cursor,
    metadata,
    tensors,
    byName: new Map(tensors.map((t) => [t.name, t])),
  };
}

function parseMetadata(value: JsonValue): Map<string, string> | null {
  if (value === null) return null;
  if (!(value instanceof JsonObject)) throw formatError("__metadata__ must be an object of strings");
  const out = new Map<string, string>();
  for (const [k, v] of value.entries) {
    if (typeof v !== "string") throw formatError(`__metadata__ value for ${quote(k)} is not a string`);
    out.set(k, v);
  }
  return out;
}

function parseTensorEntry(name: string, value: JsonValue): TensorInfo {
  const where = `tensor ${quote(name)}`;
  if (!(value instanceof JsonObject)) throw formatError(`${where}: entry is not an object`);
  const dtype = value.get("dtype");
  if (typeof dtype !== "string" || !isDtype(dtype)) {
    throw formatError(`${where}: unknown dtype ${quote(dtype ?? null)}`);
  }
  const shape = value.get("shape");
  if (!Array.isArray(shape)) throw formatError(`${where}: shape must be an array`);
  const dims = shape.map((d) => {
    const n = toSafeInteger(d);
    if (n === undefined) throw formatError(`${where}: shape must hold non-negative safe integers`);
    return n;
  });
  const offsets = value.get("data_offsets");
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw formatError(`${where}: data_offsets must be [begin, end]`);
  }
  const [begin, end] = offsets.map((o) => {
    const n = toSafeInteger(o);
    if (n === undefined) throw formatError(`${where}: data_offsets must be non-negative safe integers`);
    return n;
  }) as [number, number];
  return { name, dtype, shape: dims, begin, end };
}
