// Browser build of crypto/aead.ts (the bundler swaps it in): the same synchronous API on
// @noble/ciphers, used for the small things (DEK unwrapping). Bulk tensor data goes through
// provider-web.ts (WebCrypto AES-GCM).

import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { decryptionFailed } from "../errors.js";
import { checkKeyAndNonce, TAG_BYTES, type AeadAlgorithm } from "./aead-params.js";

export { AEAD_ALGORITHMS, NONCE_BYTES, TAG_BYTES, aeadKeyBytes, parseAeadAlgorithm, type AeadAlgorithm } from "./aead-params.js";

const cipher = (alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array) =>
  alg === "chacha20poly1305" ? chacha20poly1305(key, nonce) : gcm(key, nonce);

export function createSealer(): never {
  throw new TypeError("streaming encryption is not available in the browser build");
}

export function sealInto(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array): Uint8Array {
  checkKeyAndNonce(alg, key, nonce);
  const sealed = cipher(alg, key, nonce).encrypt(plaintext);
  out.set(sealed.subarray(0, plaintext.length), 0);
  return sealed.slice(plaintext.length);
}

export function seal(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): [Uint8Array, Uint8Array] {
  const out = new Uint8Array(plaintext.length);
  return [out, sealInto(alg, key, nonce, plaintext, out)];
}

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
  const joined = new Uint8Array(ciphertext.length + TAG_BYTES);
  joined.set(ciphertext, 0);
  joined.set(tag, ciphertext.length);
  let plain: Uint8Array;
  try {
    plain = cipher(alg, key, nonce).decrypt(joined);
  } catch {
    out.fill(0, 0, ciphertext.length);
    throw decryptionFailed();
  }
  out.set(plain, 0);
}

export function open(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array {
  const out = new Uint8Array(ciphertext.length);
  openInto(alg, key, nonce, ciphertext, tag, out);
  return out;
}
