// Browser build of crypto/signature.ts (the bundler swaps it in): Ed25519 from @noble/curves, which
// WebCrypto does not offer everywhere.

import { ed25519 } from "@noble/curves/ed25519.js";

export const ED25519_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

export function ed25519PublicKey(seed: Uint8Array): Uint8Array {
  if (seed.length !== ED25519_KEY_BYTES) throw new TypeError("an Ed25519 private key (seed) is 32 bytes");
  return ed25519.getPublicKey(seed);
}

export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  if (seed.length !== ED25519_KEY_BYTES) throw new TypeError("an Ed25519 private key (seed) is 32 bytes");
  return ed25519.sign(message, seed);
}

/** False for a wrong or malformed signature; throws only for a malformed public key. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_KEY_BYTES) throw new TypeError("an Ed25519 public key is 32 bytes");
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return ed25519.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
