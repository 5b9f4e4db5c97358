// JWKs in both spellings (docs/format.md §6.1):
//  - the reference's: {"kty":"oct","alg":"aes256gcm","k":<std base64>} and {"kty":"okp","alg":"ed25519","x","d"}
//  - standard JOSE (RFC 7517/8037): base64url values, {"kty":"OKP","crv":"Ed25519","alg":"EdDSA"},
//    content algorithms "A256GCM" / "A128GCM" / "C20P".
// Keys are normalised to raw bytes; headers and key files we write default to the reference spelling.
// Messages never quote a value read from a key: a misplaced secret (a key pasted into "alg") would leak.

import { CryptoTensorsError } from "../errors.js";
import { aeadKeyBytes, parseAeadAlgorithm, type AeadAlgorithm } from "../crypto/aead.js";
import { decodeBase64, decodeBase64Url, encodeBase64, encodeBase64Url } from "../crypto/base64.js";
import { ED25519_KEY_BYTES, ed25519PublicKey } from "../crypto/signature.js";

/** A master (key-encryption) key. */
export interface EncryptionKey {
  kind: "enc";
  alg: AeadAlgorithm;
  k: Uint8Array;
  kid?: string | undefined;
  jku?: string | undefined;
}

/** An Ed25519 key: `d` (the seed) only for signing keys. */
export interface SigningKey {
  kind: "sign";
  x: Uint8Array;
  d?: Uint8Array | undefined;
  kid?: string | undefined;
  jku?: string | undefined;
}

export type Key = EncryptionKey | SigningKey;
export type JwkStyle = "reference" | "jose";

const JOSE_CONTENT_ALG: Record<string, AeadAlgorithm> = { A256GCM: "aes256gcm", A128GCM: "aes128gcm", C20P: "chacha20poly1305" };
const JOSE_NAME: Record<AeadAlgorithm, string> = { aes256gcm: "A256GCM", aes128gcm: "A128GCM", chacha20poly1305: "C20P" };

function keyError(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_KEY_INVALID", message);
}

/** Standard base64 (reference) or base64url (JOSE). */
function decodeKeyBytes(value: unknown, field: string, where: string): Uint8Array {
  if (typeof value !== "string") throw keyError(`${where}: "${field}" must be a base64 string`);
  const bytes = decodeBase64(value) ?? decodeBase64Url(value);
  if (!bytes) throw keyError(`${where}: "${field}" is not valid base64 or base64url`);
  return bytes;
}

function optionalString(obj: Record<string, unknown>, field: string, where: string): string | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw keyError(`${where}: "${field}" must be a string`);
  return v;
}

/**
 * Parses one JWK (either spelling).
 * @throws ERR_CT_KEY_INVALID
 */
export function parseJwk(value: unknown, where = "JWK"): Key {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw keyError(`${where}: not a JSON object`);
  const obj = value as Record<string, unknown>;
  const kty = obj.kty;
  const kid = optionalString(obj, "kid", where);
  const jku = optionalString(obj, "jku", where);
  if (kty === "oct") {
    const algName = optionalString(obj, "alg", where);
    if (!algName) throw keyError(`${where}: an encryption key needs "alg" (aes256gcm, aes128gcm or chacha20poly1305)`);
    const alg = JOSE_CONTENT_ALG[algName] ?? parseAeadAlgorithm(algName);
    if (!alg)
      throw keyError(
        `${where}: unsupported "alg" for an encryption key (expected aes256gcm, aes128gcm, chacha20poly1305, A256GCM, A128GCM or C20P)`,
      );
    const k = decodeKeyBytes(obj.k, "k", where);
    if (k.length !== aeadKeyBytes(alg)) throw keyError(`${where}: ${alg} needs a ${aeadKeyBytes(alg)}-byte key, "k" has ${k.length}`);
    return { kind: "enc", alg, k, kid, jku };
  }
  if (kty === "okp" || kty === "OKP") {
    const algName = optionalString(obj, "alg", where);
    if (algName !== undefined && algName.toLowerCase() !== "ed25519" && algName !== "EdDSA") {
      throw keyError(`${where}: unsupported "alg" for a signing key (expected ed25519 or EdDSA)`);
    }
    const crv = optionalString(obj, "crv", where);
    if (crv !== undefined && crv !== "Ed25519") throw keyError(`${where}: unsupported "crv" (only Ed25519)`);
    const d = obj.d === undefined ? undefined : decodeKeyBytes(obj.d, "d", where);
    let x = obj.x === undefined ? undefined : decodeKeyBytes(obj.x, "x", where);
    if (d && d.length !== ED25519_KEY_BYTES) throw keyError(`${where}: "d" must be a 32-byte Ed25519 seed`);
    if (x && x.length !== ED25519_KEY_BYTES) throw keyError(`${where}: "x" must be a 32-byte Ed25519 public key`);
    if (d) {
      const derived = ed25519PublicKey(d);
      if (x && Buffer.compare(Buffer.from(x), Buffer.from(derived)) !== 0) throw keyError(`${where}: "x" does not match "d"`);
      x = derived;
    }
    if (!x) throw keyError(`${where}: a signing key needs "x" (public) or "d" (private)`);
    return { kind: "sign", x, d, kid, jku };
  }
  throw keyError(`${where}: ${kty === undefined ? "missing" : "unsupported"} "kty" (expected "oct" or "okp"/"OKP")`);
}

/** Parses a JWK or a JWK set ({"keys": [...]}) into its keys. @throws ERR_CT_KEY_INVALID */
export function parseJwkOrSet(value: unknown, where = "JWK"): Key[] {
  if (typeof value === "object" && value !== null && Array.isArray((value as { keys?: unknown }).keys)) {
    return (value as { keys: unknown[] }).keys.map((k, i) => parseJwk(k, `${where} keys[${i}]`));
  }
  return [parseJwk(value, where)];
}

/** Parses JSON text holding a JWK or JWK set. @throws ERR_CT_KEY_INVALID */
export function parseJwkText(text: string, where = "JWK"): Key[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw keyError(`${where}: not valid JSON`);
  }
  return parseJwkOrSet(json, where);
}

/**
 * Serialises a key as a JWK. Private material (`k`, `d`) is included only when `includePrivate`.
 * The reference spelling is what the reference's key providers and CRYPTOTENSOR_KEYS accept.
 */
export function toJwk(key: Key, style: JwkStyle = "reference", includePrivate = true): Record<string, string> {
  const b64 = style === "reference" ? encodeBase64 : encodeBase64Url;
  const out: Record<string, string> = {};
  if (key.kind === "enc") {
    out.kty = "oct";
    out.alg = style === "reference" ? key.alg : JOSE_NAME[key.alg];
    if (includePrivate) out.k = b64(key.k);
  } else {
    out.kty = style === "reference" ? "okp" : "OKP";
    if (style === "jose") out.crv = "Ed25519";
    out.alg = style === "reference" ? "ed25519" : "EdDSA";
    out.x = b64(key.x);
    if (includePrivate && key.d) out.d = b64(key.d);
  }
  if (key.kid !== undefined) out.kid = key.kid;
  if (key.jku !== undefined) out.jku = key.jku;
  return out;
}

/** The public half of a signing key. */
export function publicKeyOf(key: SigningKey): SigningKey {
  return { kind: "sign", x: key.x, kid: key.kid, jku: key.jku };
}

/** Overwrites secret key bytes in place (best effort: JS strings and copies made by callers are out of reach). */
export function zeroKey(key: Key): void {
  if (key.kind === "enc") key.k.fill(0);
  else key.d?.fill(0);
}
