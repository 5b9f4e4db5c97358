// The reserved `__metadata__` entries of a CryptoTensors header (docs/format.md §2),
// parsed strictly and serialised byte-for-byte as the reference writes them. Each value is a JSON
// document stored as a string, except `__signature__` (bare base64).

import { CryptoTensorsError, formatError } from "../errors.js";
import { parseAeadAlgorithm, NONCE_BYTES, TAG_BYTES, aeadKeyBytes, type AeadAlgorithm } from "../crypto/aead-params.js";
import { decodeBase64, encodeBase64 } from "../crypto/base64.js";
import { DEFAULT_CHUNK_BYTES } from "../crypto/chunked.js";
import type { WrappedKey } from "../crypto/wrap.js";
import { JsonObject, parseJson, toSafeInteger, type JsonValue } from "../format/json.js";
import { compareUtf8 } from "../format/serialize.js";
import { quote } from "../format/printable.js";

export const CRYPTO_KEYS_KEY = "__crypto_keys__";
export const ENCRYPTION_KEY = "__encryption__";
export const POLICY_KEY = "__policy__";
export const SIGNATURE_KEY = "__signature__";
/** Our extension: signed SHA-256 digests of tensors left in plaintext. Ignored (but signed) by the reference. */
export const DIGESTS_KEY = "__ctensors_digests__";
/** The keys the reference deletes from user metadata before writing its own. */
export const RESERVED_KEYS = [CRYPTO_KEYS_KEY, ENCRYPTION_KEY, POLICY_KEY, SIGNATURE_KEY] as const;

/** `enc` / `sign` entry: names a key, never holds key material. */
export interface KeyRef {
  kty: "oct" | "okp";
  /** Verbatim as written (the reference keeps the user's spelling). */
  alg: string;
  kid?: string | undefined;
  jku?: string | undefined;
}

export interface CryptoKeysEntry {
  version: "1" | "2";
  /** Chunk size when the data is chunked (v2); undefined for monolithic (v1). */
  chunkBytes: number | undefined;
  /** Whether `chunk_size` was present in the header (it is written only by v2 writers). */
  chunkSizeWritten: boolean;
  enc: KeyRef;
  sign: KeyRef;
  encAlg: AeadAlgorithm;
}

interface TensorCryptoBase {
  wrapped: WrappedKey;
}
export interface MonolithicEntry extends TensorCryptoBase {
  scheme: "monolithic";
  iv: Uint8Array;
  tag: Uint8Array;
}
export interface ChunkedEntry extends TensorCryptoBase {
  scheme: "chunked";
  baseIv: Uint8Array;
  tags: Uint8Array;
}
export type TensorCryptoEntry = MonolithicEntry | ChunkedEntry;

export interface Policy {
  local: string;
  remote: string;
}

/** The reference's default policy text (26 bytes). */
export const DEFAULT_POLICY_TEXT = "package model\nallow = true";
export const DEFAULT_POLICY: Policy = { local: DEFAULT_POLICY_TEXT, remote: DEFAULT_POLICY_TEXT };

// --- parse ---

function inner(metadata: ReadonlyMap<string, string>, key: string): JsonObject {
  const text = metadata.get(key);
  if (text === undefined) throw formatError(`encrypted file is missing ${key}`);
  const v = parseJson(text, key);
  if (!(v instanceof JsonObject)) throw formatError(`${key} is not a JSON object`);
  return v;
}

function str(obj: JsonObject, field: string, where: string, required: true): string;
function str(obj: JsonObject, field: string, where: string, required: false): string | undefined;
function str(obj: JsonObject, field: string, where: string, required: boolean): string | undefined {
  const v = obj.get(field);
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string") throw formatError(`${where}: "${field}" must be a string`);
  return v;
}

function b64(obj: JsonObject, field: string, where: string): Uint8Array {
  const text = str(obj, field, where, true);
  const bytes = decodeBase64(text);
  if (!bytes) throw formatError(`${where}: "${field}" is not canonical base64`);
  return bytes;
}

function keyRef(v: JsonValue | undefined, kty: "oct" | "okp", where: string): KeyRef {
  if (!(v instanceof JsonObject)) throw formatError(`${where} is missing`);
  const actual = str(v, "kty", where, true);
  if (actual !== kty) throw formatError(`${where}: "kty" must be "${kty}", found ${quote(actual)}`);
  const alg = str(v, "alg", where, true);
  if (!alg) throw formatError(`${where}: "alg" is empty`);
  return { kty, alg, kid: str(v, "kid", where, false), jku: str(v, "jku", where, false) };
}

/** Parses `__crypto_keys__`. @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED */
export function parseCryptoKeys(metadata: ReadonlyMap<string, string>): CryptoKeysEntry {
  const obj = inner(metadata, CRYPTO_KEYS_KEY);
  const version = obj.get("version");
  if (version === undefined) throw formatError(`${CRYPTO_KEYS_KEY}: "version" is missing`);
  if (version !== "1" && version !== "2") {
    throw new CryptoTensorsError(
      "ERR_CT_UNSUPPORTED",
      `unsupported CryptoTensors version ${quote(version)} (this reader knows "1" and "2")`,
    );
  }
  const rawChunk = obj.get("chunk_size");
  let chunkBytes: number | undefined;
  if (rawChunk !== undefined) {
    chunkBytes = toSafeInteger(rawChunk);
    if (!chunkBytes) throw formatError(`${CRYPTO_KEYS_KEY}: "chunk_size" must be a positive integer`);
  } else if (version === "2") {
    chunkBytes = DEFAULT_CHUNK_BYTES; // chunked iff chunk_size present or version "2" (§2.2)
  }
  const enc = keyRef(obj.get("enc"), "oct", `${CRYPTO_KEYS_KEY}.enc`);
  const sign = keyRef(obj.get("sign"), "okp", `${CRYPTO_KEYS_KEY}.sign`);
  const encAlg = parseAeadAlgorithm(enc.alg);
  if (!encAlg) throw new CryptoTensorsError("ERR_CT_UNSUPPORTED", `unsupported encryption algorithm ${quote(enc.alg)}`);
  if (sign.alg.toLowerCase() !== "ed25519") {
    throw new CryptoTensorsError("ERR_CT_UNSUPPORTED", `unsupported signature algorithm ${quote(sign.alg)}`);
  }
  return { version, chunkBytes, chunkSizeWritten: rawChunk !== undefined, enc, sign, encAlg };
}

/** Parses `__encryption__` for the given scheme. @throws ERR_CT_FORMAT */
export function parseEncryption(metadata: ReadonlyMap<string, string>, keys: CryptoKeysEntry): Map<string, TensorCryptoEntry> {
  const obj = inner(metadata, ENCRYPTION_KEY);
  const out = new Map<string, TensorCryptoEntry>();
  const keyBytes = aeadKeyBytes(keys.encAlg);
  for (const [name, v] of obj.entries) {
    const where = `${ENCRYPTION_KEY}[${quote(name)}]`;
    if (!(v instanceof JsonObject)) throw formatError(`${where} is not an object`);
    const wrapped: WrappedKey = {
      wrappedKey: b64(v, "wrapped_key", where),
      keyIv: b64(v, "key_iv", where),
      keyTag: b64(v, "key_tag", where),
    };
    if (wrapped.wrappedKey.length !== keyBytes || wrapped.keyIv.length !== NONCE_BYTES || wrapped.keyTag.length !== TAG_BYTES) {
      throw formatError(`${where}: wrapped key fields have the wrong length`);
    }
    if (keys.chunkBytes === undefined) {
      out.set(name, { scheme: "monolithic", wrapped, iv: b64(v, "iv", where), tag: b64(v, "tag", where) });
    } else {
      const baseIv = b64(v, "base_iv", where);
      if (baseIv.length !== NONCE_BYTES) throw formatError(`${where}: "base_iv" must be ${NONCE_BYTES} bytes`);
      out.set(name, { scheme: "chunked", wrapped, baseIv, tags: b64(v, "tags", where) });
    }
  }
  return out;
}

/** Parses `__policy__`; both members are required, as in the reference. @throws ERR_CT_FORMAT */
export function parsePolicy(metadata: ReadonlyMap<string, string>): Policy {
  const obj = inner(metadata, POLICY_KEY);
  return { local: str(obj, "local", POLICY_KEY, true), remote: str(obj, "remote", POLICY_KEY, true) };
}

/** Parses `__signature__` (64 bytes, standard base64). @throws ERR_CT_SIGNATURE_INVALID */
export function parseSignature(metadata: ReadonlyMap<string, string>): Uint8Array {
  const text = metadata.get(SIGNATURE_KEY);
  if (text === undefined) throw formatError(`encrypted file is missing ${SIGNATURE_KEY}`);
  const sig = decodeBase64(text);
  if (sig?.length !== 64)
    throw new CryptoTensorsError("ERR_CT_SIGNATURE_INVALID", "header signature is malformed (expected 64 bytes of base64)");
  return sig;
}

/** Parses our plaintext-digest extension, if present. @throws ERR_CT_FORMAT */
export function parseDigests(metadata: ReadonlyMap<string, string>): Map<string, Uint8Array> | undefined {
  if (!metadata.has(DIGESTS_KEY)) return undefined;
  const obj = inner(metadata, DIGESTS_KEY);
  if (obj.get("alg") !== "sha256") throw formatError(`${DIGESTS_KEY}: "alg" must be "sha256"`);
  const tensors = obj.get("tensors");
  if (!(tensors instanceof JsonObject)) throw formatError(`${DIGESTS_KEY}: "tensors" must be an object`);
  const out = new Map<string, Uint8Array>();
  for (const [name] of tensors.entries) {
    const d = b64(tensors, name, DIGESTS_KEY);
    if (d.length !== 32) throw formatError(`${DIGESTS_KEY}: digest of ${quote(name)} is not 32 bytes`);
    out.set(name, d);
  }
  return out;
}

// --- serialise (inner formats exactly as the reference's serde output) ---

function keyRefJson(ref: KeyRef): string {
  // serde_json::Value objects have sorted keys: alg, jku, kid, kty.
  const parts = [`"alg":${JSON.stringify(ref.alg)}`];
  if (ref.jku !== undefined) parts.push(`"jku":${JSON.stringify(ref.jku)}`);
  if (ref.kid !== undefined) parts.push(`"kid":${JSON.stringify(ref.kid)}`);
  parts.push(`"kty":${JSON.stringify(ref.kty)}`);
  return `{${parts.join(",")}}`;
}

/** `chunk_size` is written iff `chunkBytes` is set (v2 writers always set it). */
export function serializeCryptoKeys(e: Pick<CryptoKeysEntry, "version" | "chunkBytes" | "enc" | "sign">): string {
  const chunk = e.chunkBytes !== undefined ? `"chunk_size":${e.chunkBytes},` : "";
  return `{${chunk}"enc":${keyRefJson(e.enc)},"sign":${keyRefJson(e.sign)},"version":${JSON.stringify(e.version)}}`;
}

export function serializeEncryption(entries: ReadonlyMap<string, TensorCryptoEntry>): string {
  const names = [...entries.keys()].sort(compareUtf8);
  const parts = names.map((name) => {
    const e = entries.get(name)!;
    const w = `"wrapped_key":"${encodeBase64(e.wrapped.wrappedKey)}","key_iv":"${encodeBase64(e.wrapped.keyIv)}","key_tag":"${encodeBase64(e.wrapped.keyTag)}"`;
    const data =
      e.scheme === "monolithic"
        ? `"iv":"${encodeBase64(e.iv)}","tag":"${encodeBase64(e.tag)}"`
        : `"base_iv":"${encodeBase64(e.baseIv)}","tags":"${encodeBase64(e.tags)}"`;
    return `${JSON.stringify(name)}:{${w},${data}}`;
  });
  return `{${parts.join(",")}}`;
}

export function serializePolicy(p: Policy): string {
  return `{"local":${JSON.stringify(p.local)},"remote":${JSON.stringify(p.remote)}}`;
}

export function serializeDigests(digests: ReadonlyMap<string, Uint8Array>): string {
  const names = [...digests.keys()].sort(compareUtf8);
  return `{"alg":"sha256","tensors":{${names.map((n) => `${JSON.stringify(n)}:"${encodeBase64(digests.get(n)!)}"`).join(",")}}}`;
}
