// AEAD names and sizes (docs/format.md §3.1). Pure code, shared by the node:crypto and web backends.

export const AEAD_ALGORITHMS = ["aes256gcm", "aes128gcm", "chacha20poly1305"] as const;
export type AeadAlgorithm = (typeof AEAD_ALGORITHMS)[number];

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

export const KEY_BYTES: Record<AeadAlgorithm, number> = { aes256gcm: 32, aes128gcm: 16, chacha20poly1305: 32 };

export function aeadKeyBytes(alg: AeadAlgorithm): number {
  return KEY_BYTES[alg];
}

/**
 * The reference's lenient name parsing: remove '-', lowercase ("AES-256-GCM" → aes256gcm).
 * Returns undefined for anything else.
 */
export function parseAeadAlgorithm(name: string): AeadAlgorithm | undefined {
  const n = name.replaceAll("-", "").toLowerCase();
  return (AEAD_ALGORITHMS as readonly string[]).includes(n) ? (n as AeadAlgorithm) : undefined;
}

/** The argument checks every AEAD backend makes before it touches the data (a wrong size is a programming error). */
export function checkKeyAndNonce(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== KEY_BYTES[alg]) throw new TypeError(`${alg} needs a ${KEY_BYTES[alg]}-byte key, got ${key.length}`);
  if (nonce.length !== NONCE_BYTES) throw new TypeError(`nonce must be ${NONCE_BYTES} bytes, got ${nonce.length}`);
}
