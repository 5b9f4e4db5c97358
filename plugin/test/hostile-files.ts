// Building hostile files for tests: split a file into its parsed header and data, edit them, reassemble
// (optionally re-signing, as an attacker holding some signing key would).

import { expect } from "vitest";
import { ENCRYPTION_KEY, SIGNATURE_KEY } from "../src/container/reserved.js";
import { signedMessage } from "../src/container/signing.js";
import { decodeBase64, encodeBase64 } from "../src/crypto/base64.js";
import { ed25519Sign } from "../src/crypto/signature.js";
import { HEADER_PREFIX_BYTES, parseHeader, parseHeaderPrefix, type TensorInfo } from "../src/format/header.js";
import { encodeHeader, serializeHeaderJson } from "../src/format/serialize.js";
import type { SigningKey } from "../src/keys/jwk.js";

export interface Dissected {
  metadata: Map<string, string>;
  /** In data order. */
  tensors: TensorInfo[];
  /** The data section, untouched. */
  data: Uint8Array;
}

/** Splits a file into its parsed header and its data section. */
export function dissect(bytes: Uint8Array): Dissected {
  const n = parseHeaderPrefix(bytes.subarray(0, HEADER_PREFIX_BYTES));
  const header = parseHeader(bytes.subarray(HEADER_PREFIX_BYTES, HEADER_PREFIX_BYTES + n), bytes.length);
  return {
    metadata: new Map(header.metadata ?? []),
    tensors: header.tensors.map((t) => ({ ...t, shape: [...t.shape] })),
    data: bytes.slice(header.dataStart),
  };
}

/** Prefix + header JSON text (padded to a multiple of 8 with spaces) + data. */
export function assembleText(json: string, data: Uint8Array): Uint8Array {
  const header = encodeHeader(json);
  const out = new Uint8Array(header.length + data.length);
  out.set(header, 0);
  out.set(data, header.length);
  return out;
}

/** Re-serialises canonically (tensors sorted by offset, as a writer would). */
export function assemble(f: Dissected): Uint8Array {
  const tensors = [...f.tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  return assembleText(serializeHeaderJson(f.metadata, tensors), f.data);
}

/** Replaces `__signature__` with a fresh signature by `by` over the (edited) header: what an attacker, or an insider, would do. */
export function resign(f: Dissected, by: SigningKey): Dissected {
  const tensors = [...f.tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  const metadata = new Map(f.metadata);
  metadata.set(SIGNATURE_KEY, encodeBase64(ed25519Sign(by.d!, signedMessage(metadata, tensors))));
  return { ...f, metadata, tensors };
}

/** Edits a copy of the file (the callback mutates the dissected header/data), optionally re-signing it. */
export function tamper(bytes: Uint8Array, edit: (f: Dissected) => void, signer?: SigningKey): Uint8Array {
  const f = dissect(bytes);
  edit(f);
  return assemble(signer ? resign(f, signer) : f);
}

/** Edits one reserved inner JSON document (`__crypto_keys__`, `__policy__`…) through JSON.parse/stringify. */
export function editInner(f: Dissected, name: string, edit: (doc: Record<string, any>) => void): void {
  const doc = JSON.parse(f.metadata.get(name)!) as Record<string, any>;
  edit(doc);
  f.metadata.set(name, JSON.stringify(doc));
}

/** Flips one bit of one byte of a base64 value. */
export function flipBase64(b64: string, byteIndex: number, bit = 0): string {
  const bytes = decodeBase64(b64)!;
  expect(byteIndex).toBeLessThan(bytes.length);
  const copy = new Uint8Array(bytes);
  copy[byteIndex]! ^= 1 << bit;
  return encodeBase64(copy);
}

/**
 * Replaces one field of one tensor's `__encryption__` entry in place in the inner JSON text (textual
 * replacement of a unique random base64 value, so nothing else in the string changes).
 */
export function editEncryptionField(f: Dissected, tensor: string, field: string, change: (b64: string) => string): void {
  const text = f.metadata.get(ENCRYPTION_KEY)!;
  const old = (JSON.parse(text) as Record<string, Record<string, string>>)[tensor]![field]!;
  expect(text.split(`"${old}"`)).toHaveLength(2); // the value occurs exactly once
  f.metadata.set(ENCRYPTION_KEY, text.replace(`"${old}"`, `"${change(old)}"`));
}

export function tensorOf(f: Dissected, name: string): TensorInfo {
  const t = f.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return t;
}

/** Flips one bit of the byte at `offset` within tensor `name`'s stored bytes. */
export function flipDataByte(f: Dissected, name: string, offset: number): void {
  const t = tensorOf(f, name);
  expect(offset).toBeLessThan(t.end - t.begin);
  f.data[t.begin + offset]! ^= 0x01;
}
