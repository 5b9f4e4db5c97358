// DEK wrapping (docs/format.md §3.3): the per-tensor data key is sealed with the master key's
// own algorithm, a fresh 12-byte key IV and empty AAD; ciphertext and tag are stored apart.

import { randomBytes } from "node:crypto";
import { aeadKeyBytes, NONCE_BYTES, open, seal, type AeadAlgorithm } from "./aead.js";
import { decryptionFailed } from "../errors.js";

export interface WrappedKey {
  wrappedKey: Uint8Array;
  keyIv: Uint8Array;
  keyTag: Uint8Array;
}

/** A fresh random data key for `alg`. */
export function generateDek(alg: AeadAlgorithm): Uint8Array {
  return new Uint8Array(randomBytes(aeadKeyBytes(alg)));
}

export function wrapKey(
  alg: AeadAlgorithm,
  masterKey: Uint8Array,
  dek: Uint8Array,
  keyIv: Uint8Array = new Uint8Array(randomBytes(NONCE_BYTES)),
): WrappedKey {
  const [wrappedKey, keyTag] = seal(alg, masterKey, keyIv, dek);
  return { wrappedKey, keyIv, keyTag };
}

/** @throws ERR_CT_DECRYPTION_FAILED for a wrong master key or a modified wrapped key */
export function unwrapKey(alg: AeadAlgorithm, masterKey: Uint8Array, w: WrappedKey): Uint8Array {
  if (w.keyIv.length !== NONCE_BYTES || w.wrappedKey.length !== aeadKeyBytes(alg)) throw decryptionFailed();
  return open(alg, masterKey, w.keyIv, w.wrappedKey, w.keyTag);
}
