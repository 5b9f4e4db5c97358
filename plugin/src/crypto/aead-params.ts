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
