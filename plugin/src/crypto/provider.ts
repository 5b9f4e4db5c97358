// The crypto an in-memory reader needs for bulk data, behind a small seam: node:crypto in Node
// (provider-node.ts), WebCrypto plus @noble/ciphers in browsers (provider-web.ts). Key unwrapping and
// signatures keep using crypto/aead.ts and crypto/signature.ts (their browser builds are the *.web.ts
// variants, swapped in by the bundler).

import type { AeadAlgorithm } from "./aead-params.js";

export interface CryptoProvider {
  /** Decrypts and authenticates one AEAD message. @throws ERR_CT_DECRYPTION_FAILED (fixed message) */
  aeadOpen(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Promise<Uint8Array>;
  sha256(data: Uint8Array): Promise<Uint8Array>;
}
