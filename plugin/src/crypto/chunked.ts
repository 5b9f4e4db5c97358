// v2 chunked encryption (docs/format.md §3.5): chunk i of a tensor is sealed on its own with
// nonce_i = base_iv[0..8] || BE32(BE32(base_iv[8..12]) + i), the addition checked (never wraps).
// An empty tensor is one seal of the empty string under base_iv, so it still carries one tag.

import { CryptoTensorsError, usageError } from "../errors.js";
import { NONCE_BYTES } from "./aead.js";

/** The reference's DEFAULT_CHUNK_SIZE (2 MiB). */
export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;

/**
 * The largest chunk size we write (1 GiB). A reader holds a whole chunk before its tag can be checked,
 * so a file's chunk size is the memory it asks of every reader; nothing is gained beyond this. Reading
 * accepts any positive chunk size (both engines, 64-bit sizes).
 */
export const MAX_CHUNK_BYTES = 1024 * 1024 * 1024;

/** Checks a chunk size to write with. @throws ERR_CT_USAGE unless 1 <= chunkBytes <= MAX_CHUNK_BYTES */
export function checkChunkBytes(chunkBytes: number): number {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes > MAX_CHUNK_BYTES) {
    throw usageError(`chunk size must be a whole number of bytes from 1 to ${MAX_CHUNK_BYTES}, got ${chunkBytes}`, "chunkBytes");
  }
  return chunkBytes;
}

/** Number of tags a v2 tensor of `byteLength` bytes carries (at least one). */
export function chunkCount(byteLength: number, chunkBytes: number): number {
  return byteLength === 0 ? 1 : Math.ceil(byteLength / chunkBytes);
}

/** Whether chunks 0..count-1 can be numbered from this base IV without overflowing the counter. */
export function counterFits(baseIv: Uint8Array, count: number): boolean {
  const start = new DataView(baseIv.buffer, baseIv.byteOffset, NONCE_BYTES).getUint32(8, false);
  return start + (count - 1) <= 0xffff_ffff;
}

/** Writes the nonce of chunk `index` into `out` (12 bytes). @throws ERR_CT_FORMAT on counter overflow */
export function chunkNonceInto(baseIv: Uint8Array, index: number, out: Uint8Array): Uint8Array {
  const start = new DataView(baseIv.buffer, baseIv.byteOffset, NONCE_BYTES).getUint32(8, false);
  const counter = start + index;
  if (counter > 0xffff_ffff) {
    throw new CryptoTensorsError("ERR_CT_FORMAT", "chunk index overflowed the IV counter");
  }
  out.set(baseIv.subarray(0, 8), 0);
  new DataView(out.buffer, out.byteOffset, NONCE_BYTES).setUint32(8, counter, false);
  return out;
}

export function chunkNonce(baseIv: Uint8Array, index: number): Uint8Array {
  return chunkNonceInto(baseIv, index, new Uint8Array(NONCE_BYTES));
}
