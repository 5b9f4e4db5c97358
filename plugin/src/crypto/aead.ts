// The three AEADs of the format (docs/format.md §3.1): 12-byte nonce, 16-byte tag, empty AAD.
// Backed by node:crypto (OpenSSL). Any authentication failure becomes ERR_CT_DECRYPTION_FAILED
// with one fixed message: callers learn nothing about why (no oracle).

import { createCipheriv, createDecipheriv, type CipherGCM, type CipherGCMTypes, type CipherChaCha20Poly1305Types } from "node:crypto";
import { decryptionFailed } from "../errors.js";

export { AEAD_ALGORITHMS, NONCE_BYTES, TAG_BYTES, aeadKeyBytes, parseAeadAlgorithm, type AeadAlgorithm } from "./aead-params.js";
import { checkKeyAndNonce, TAG_BYTES, type AeadAlgorithm } from "./aead-params.js";

const OPENSSL_NAME: Record<AeadAlgorithm, CipherGCMTypes | CipherChaCha20Poly1305Types> = {
  aes256gcm: "aes-256-gcm",
  aes128gcm: "aes-128-gcm",
  chacha20poly1305: "chacha20-poly1305",
};

/** An incremental encryptor (update/final/getAuthTag) for data too large to seal in one call. */
export function createSealer(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array): CipherGCM {
  checkKeyAndNonce(alg, key, nonce);
  return createCipheriv(OPENSSL_NAME[alg] as CipherGCMTypes, key, nonce, { authTagLength: TAG_BYTES });
}

/**
 * Encrypts `plaintext` into `out` (same length; may be the same buffer) and returns the 16-byte tag.
 */
export function sealInto(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): Uint8Array {
  checkKeyAndNonce(alg, key, nonce);
  const cipher = createCipheriv(OPENSSL_NAME[alg] as CipherGCMTypes, key, nonce, { authTagLength: TAG_BYTES });
  const body = cipher.update(plaintext);
  const rest = cipher.final();
  out.set(body, 0);
  if (rest.length) out.set(rest, body.length);
  return new Uint8Array(cipher.getAuthTag());
}

/** Encrypts and returns [ciphertext, tag]. */
export function seal(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): [Uint8Array, Uint8Array] {
  const out = new Uint8Array(plaintext.length);
  const tag = sealInto(alg, key, nonce, plaintext, out);
  return [out, tag];
}

/**
 * Decrypts `ciphertext` into `out` and checks the tag. On failure `out` is zeroed (no unauthenticated
 * plaintext is left behind) and ERR_CT_DECRYPTION_FAILED is thrown.
 */
export function openInto(
  alg: AeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  out: Uint8Array,
): void {
  checkKeyAndNonce(alg, key, nonce);
  if (tag.length !== TAG_BYTES) throw decryptionFailed();
  const decipher = createDecipheriv(OPENSSL_NAME[alg] as CipherGCMTypes, key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tag);
  let written = 0;
  try {
    const body = decipher.update(ciphertext);
    out.set(body, 0);
    written = body.length;
    const rest = decipher.final();
    if (rest.length) out.set(rest, written);
  } catch {
    out.fill(0, 0, Math.max(written, ciphertext.length));
    throw decryptionFailed();
  }
}

/** Decrypts and returns a new buffer. @throws ERR_CT_DECRYPTION_FAILED */
export function open(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array {
  const out = new Uint8Array(ciphertext.length);
  openInto(alg, key, nonce, ciphertext, tag, out);
  return out;
}
