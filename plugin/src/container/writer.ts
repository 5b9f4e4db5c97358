// Writing CryptoTensors files tensor by tensor with bounded memory: the header's size is fixed before
// any data is written (every base64 field has a length known in advance), data is streamed into its
// final place, and the real header (tags, digests, signature) is written last over the placeholder.

import { createHash, randomBytes } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { CryptoTensorsError } from "../errors.js";
import { createSealer, NONCE_BYTES, TAG_BYTES, sealInto, type AeadAlgorithm } from "../crypto/aead.js";
import { chunkCount, chunkNonceInto, counterFits, DEFAULT_CHUNK_BYTES } from "../crypto/chunked.js";
import { generateDek, wrapKey } from "../crypto/wrap.js";
import { ed25519Sign } from "../crypto/signature.js";
import { encodeBase64 } from "../crypto/base64.js";
import type { TensorInfo } from "../format/header.js";
import { encodeHeader, serializeHeaderJson } from "../format/serialize.js";
import type { EncryptionKey, SigningKey } from "../keys/jwk.js";
import { readAll, writeAll } from "../io/files.js";
import {
  CRYPTO_KEYS_KEY,
  DEFAULT_POLICY,
  DIGESTS_KEY,
  ENCRYPTION_KEY,
  POLICY_KEY,
  RESERVED_KEYS,
  SIGNATURE_KEY,
  serializeCryptoKeys,
  serializeDigests,
  serializeEncryption,
  serializePolicy,
  type KeyRef,
  type Policy,
  type TensorCryptoEntry,
} from "./reserved.js";
import { signedMessage } from "./signing.js";

/** Bytes read per I/O call (rounded to whole chunks). */
export const IO_PIECE_BYTES = 16 * 1024 * 1024;

export interface CryptoLayout {
  version: "1" | "2";
  chunkBytes: number | undefined;
  enc: KeyRef;
  sign: KeyRef;
  alg: AeadAlgorithm;
}

export function keyRefOf(key: EncryptionKey | SigningKey): KeyRef {
  return key.kind === "enc"
    ? { kty: "oct", alg: key.alg, kid: key.kid, jku: key.jku }
    : { kty: "okp", alg: "ed25519", kid: key.kid, jku: key.jku };
}

/** User metadata as the reference keeps it: everything but its reserved keys (and our digest key). */
export function userMetadataForOutput(metadata: ReadonlyMap<string, string> | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of metadata ?? []) {
    if (!(RESERVED_KEYS as readonly string[]).includes(k) && k !== DIGESTS_KEY) out.set(k, v);
  }
  return out;
}

/** Fresh per-tensor crypto material with placeholder (zero) tags of the right size. */
export function newTensorEntry(
  layout: CryptoLayout,
  masterKey: Uint8Array,
  byteLength: number,
): { entry: TensorCryptoEntry; dek: Uint8Array } {
  const dek = generateDek(layout.alg);
  const wrapped = wrapKey(layout.alg, masterKey, dek);
  if (layout.chunkBytes === undefined) {
    // The reference writes empty IV and tag for an empty v1 tensor (no AEAD call).
    const iv = byteLength === 0 ? new Uint8Array(0) : new Uint8Array(randomBytes(NONCE_BYTES));
    return { entry: { scheme: "monolithic", wrapped, iv, tag: new Uint8Array(byteLength === 0 ? 0 : TAG_BYTES) }, dek };
  }
  const count = chunkCount(byteLength, layout.chunkBytes);
  let baseIv: Uint8Array;
  do
    baseIv = new Uint8Array(randomBytes(NONCE_BYTES)); // redraw rather than overflow the counter (§3.5)
  while (!counterFits(baseIv, count));
  return { entry: { scheme: "chunked", wrapped, baseIv, tags: new Uint8Array(count * TAG_BYTES) }, dek };
}

export interface HeaderParts {
  userMetadata: ReadonlyMap<string, string>;
  layout: CryptoLayout;
  encryption: ReadonlyMap<string, TensorCryptoEntry>;
  policy: Policy;
  digests: ReadonlyMap<string, Uint8Array> | undefined;
  tensors: readonly TensorInfo[];
}

/** Builds the full metadata map (without the signature). */
function metadataOf(p: HeaderParts): Map<string, string> {
  const md = new Map(p.userMetadata);
  md.set(
    CRYPTO_KEYS_KEY,
    serializeCryptoKeys({ version: p.layout.version, chunkBytes: p.layout.chunkBytes, enc: p.layout.enc, sign: p.layout.sign }),
  );
  md.set(ENCRYPTION_KEY, serializeEncryption(p.encryption));
  md.set(POLICY_KEY, serializePolicy(p.policy));
  if (p.digests?.size) md.set(DIGESTS_KEY, serializeDigests(p.digests));
  return md;
}

/** Signs and encodes the header (prefix + padded JSON). */
export function buildSignedHeader(p: HeaderParts, signKey: SigningKey): Uint8Array {
  if (!signKey.d)
    throw new CryptoTensorsError("ERR_CT_KEY_INVALID", 'the signing key has no private part ("d"): pass sign.jwk, not sign.pub.jwk');
  const md = metadataOf(p);
  const signature = ed25519Sign(signKey.d, signedMessage(md, p.tensors));
  md.set(SIGNATURE_KEY, encodeBase64(signature));
  return encodeHeader(serializeHeaderJson(md, p.tensors));
}

/** Same length as {@link buildSignedHeader} will produce once tags and digests are known. */
export function placeholderHeader(p: HeaderParts): Uint8Array {
  const md = metadataOf(p);
  md.set(SIGNATURE_KEY, encodeBase64(new Uint8Array(64)));
  return encodeHeader(serializeHeaderJson(md, p.tensors));
}

/** Encrypts `length` bytes read from `src` at `srcPos` into `dst` at `dstPos`, filling the entry's tags. */
export async function encryptTensorData(
  src: FileHandle,
  srcPos: number,
  dst: FileHandle,
  dstPos: number,
  length: number,
  alg: AeadAlgorithm,
  dek: Uint8Array,
  entry: TensorCryptoEntry,
  chunkBytes: number | undefined,
  onBytes: (n: number) => void,
): Promise<void> {
  if (entry.scheme === "monolithic") {
    if (length === 0) return;
    const cipher = createSealer(alg, dek, entry.iv);
    const buf = new Uint8Array(Math.min(IO_PIECE_BYTES, length));
    for (let off = 0; off < length; off += buf.length) {
      const piece = buf.subarray(0, Math.min(buf.length, length - off));
      await readAll(src, piece, srcPos + off);
      const ct = cipher.update(piece);
      await writeAll(dst, ct, dstPos + off);
      onBytes(piece.length);
    }
    cipher.final();
    entry.tag.set(cipher.getAuthTag());
    return;
  }
  const chunk = chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const nonce = new Uint8Array(NONCE_BYTES);
  if (length === 0) {
    entry.tags.set(sealInto(alg, dek, entry.baseIv, new Uint8Array(0), new Uint8Array(0)), 0);
    return;
  }
  const pieceBytes = Math.max(chunk, Math.floor(IO_PIECE_BYTES / chunk) * chunk);
  const buf = new Uint8Array(Math.min(pieceBytes, length));
  let index = 0;
  for (let off = 0; off < length; off += buf.length) {
    const piece = buf.subarray(0, Math.min(buf.length, length - off));
    await readAll(src, piece, srcPos + off);
    for (let c = 0; c < piece.length; c += chunk, index++) {
      const part = piece.subarray(c, Math.min(piece.length, c + chunk));
      entry.tags.set(sealInto(alg, dek, chunkNonceInto(entry.baseIv, index, nonce), part, part), index * TAG_BYTES);
    }
    await writeAll(dst, piece, dstPos + off);
    onBytes(piece.length);
  }
}

/** Copies plaintext bytes, returning their SHA-256. */
export async function copyTensorData(
  src: FileHandle,
  srcPos: number,
  dst: FileHandle,
  dstPos: number,
  length: number,
  onBytes: (n: number) => void,
): Promise<Uint8Array> {
  const hash = createHash("sha256");
  const buf = new Uint8Array(Math.min(IO_PIECE_BYTES, Math.max(length, 1)));
  for (let off = 0; off < length; off += buf.length) {
    const piece = buf.subarray(0, Math.min(buf.length, length - off));
    await readAll(src, piece, srcPos + off);
    hash.update(piece);
    await writeAll(dst, piece, dstPos + off);
    onBytes(piece.length);
  }
  return new Uint8Array(hash.digest());
}

export { DEFAULT_POLICY };
