// Protocol Buffers at the wire level, just enough to take ONNX initializers apart and put them back
// byte for byte. A message is kept as its list of fields in their original order; fields that are
// not touched keep their original bytes, and lengths are written as minimal varints (what every
// protobuf encoder writes), so parse → serialize is the identity on real ONNX files.

import { CryptoTensorsError } from "../errors.js";

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

export interface WireField {
  no: number;
  wire: number;
  /** The whole field as it appeared (tag included), for unchanged fields. */
  raw: Uint8Array;
  /** The value: the payload of a LEN field, or the varint / fixed bytes. */
  value: Uint8Array;
}

function bad(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_FORMAT", `not a valid ONNX file: ${message}`);
}

/** Reads a varint at `pos`; returns [value, next position]. Values above 2^53 are refused. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw bad("truncated varint");
    const b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (!Number.isSafeInteger(value)) throw bad("varint too large");
      return [value, pos];
    }
    scale *= 128;
  }
  throw bad("varint longer than 10 bytes");
}

export function encodeVarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`cannot encode ${value} as a varint`);
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** Splits a message into its fields. */
export function parseMessage(buf: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    if (no === 0) throw bad("field number 0");
    let valueStart = afterTag;
    let end: number;
    switch (wire) {
      case WIRE_VARINT:
        end = readVarint(buf, afterTag)[1];
        break;
      case WIRE_I64:
        end = afterTag + 8;
        break;
      case WIRE_I32:
        end = afterTag + 4;
        break;
      case WIRE_LEN: {
        const [len, p] = readVarint(buf, afterTag);
        valueStart = p;
        end = p + len;
        break;
      }
      default:
        throw bad(`unsupported wire type ${wire}`);
    }
    if (end > buf.length) throw bad("truncated field");
    fields.push({ no, wire, raw: buf.subarray(start, end), value: buf.subarray(valueStart, end) });
    pos = end;
  }
  return fields;
}

/** A LEN field with a new payload. */
export function lenField(no: number, payload: Uint8Array): WireField {
  const tag = encodeVarint(no * 8 + WIRE_LEN);
  const len = encodeVarint(payload.length);
  const raw = new Uint8Array(tag.length + len.length + payload.length);
  raw.set(tag, 0);
  raw.set(len, tag.length);
  raw.set(payload, tag.length + len.length);
  return { no, wire: WIRE_LEN, raw, value: raw.subarray(tag.length + len.length) };
}

export function serializeMessage(fields: readonly WireField[]): Uint8Array {
  const out = new Uint8Array(fields.reduce((n, f) => n + f.raw.length, 0));
  let pos = 0;
  for (const f of fields) {
    out.set(f.raw, pos);
    pos += f.raw.length;
  }
  return out;
}

export function varintValue(f: WireField): number {
  if (f.wire !== WIRE_VARINT) throw bad(`field ${f.no} is not a varint`);
  return readVarint(f.value, 0)[0];
}

const decoder = new TextDecoder("utf-8", { fatal: true });

export function stringValue(f: WireField): string {
  if (f.wire !== WIRE_LEN) throw bad(`field ${f.no} is not a string`);
  try {
    return decoder.decode(f.value);
  } catch {
    throw bad(`field ${f.no} is not UTF-8`);
  }
}

/** Values of a repeated int64 field, packed or not. */
export function repeatedVarints(fields: readonly WireField[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire === WIRE_VARINT) out.push(varintValue(f));
    else if (f.wire === WIRE_LEN) {
      for (let p = 0; p < f.value.length; ) {
        const [v, next] = readVarint(f.value, p);
        out.push(v);
        p = next;
      }
    } else throw bad(`field ${no} has wire type ${f.wire}`);
  }
  return out;
}
