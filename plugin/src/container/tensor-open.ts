// The per-tensor part of the open pipeline (open-checks.ts is the header part), shared by both readers:
// read the stored bytes, then authenticate them — an encrypted tensor by its AEAD tag(s) (v1: one tag
// for the whole tensor; v2: one per chunk, each chunk under its own nonce), a plaintext tensor by its
// signed digest when it has one. On any failure the destination is zeroed: only authenticated
// plaintext ever leaves. How bytes are read and how AEAD and SHA-256 are done is the caller's (a file
// handle and node:crypto in place; memory and a CryptoProvider in browsers). Pure code: no node: import.

import { CryptoTensorsError, decryptionFailed } from "../errors.js";
import { NONCE_BYTES, TAG_BYTES, type AeadAlgorithm } from "../crypto/aead-params.js";
import { chunkCount, chunkNonceInto } from "../crypto/chunked.js";
import type { TensorInfo } from "../format/header.js";
import type { CryptoInfo } from "./crypto-info.js";

/** How a reader does the crypto of tensor data. */
export interface TensorCrypto {
  /** Decrypts `data` in place after checking `tag`. @throws ERR_CT_DECRYPTION_FAILED */
  openInPlace(alg: AeadAlgorithm, key: Uint8Array, nonce: Uint8Array, data: Uint8Array, tag: Uint8Array): void | Promise<void>;
  sha256(data: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** What a tensor read needs of an opened file. */
export interface OpenedFile {
  crypto: CryptoInfo | null;
  deks: ReadonlyMap<string, Uint8Array>;
}

export function missingMasterKey(): CryptoTensorsError {
  return new CryptoTensorsError(
    "ERR_CT_KEY_NOT_FOUND",
    "this file was opened without a master key, so its encrypted tensors cannot be read",
  );
}

export function noSuchTensor(name: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_FORMAT", `no tensor named ${JSON.stringify(name)}`);
}

/**
 * Fills `out` (exactly the tensor's stored length) with the authenticated plaintext of tensor `t`,
 * reading its stored bytes with `read`. On any failure `out` is zeroed.
 * @throws ERR_CT_DECRYPTION_FAILED, ERR_CT_INTEGRITY, ERR_CT_KEY_NOT_FOUND, ERR_CT_FORMAT, and what `read` throws
 */
export async function openTensorInto(
  file: OpenedFile,
  t: TensorInfo,
  out: Uint8Array,
  read: (out: Uint8Array) => Promise<void>,
  crypto: TensorCrypto,
): Promise<void> {
  try {
    const entry = file.crypto?.encryption.get(t.name);
    if (!entry) {
      await read(out);
      const expected = file.crypto?.digests?.get(t.name);
      if (expected && !equalBytes(await crypto.sha256(out), expected)) {
        throw new CryptoTensorsError(
          "ERR_CT_INTEGRITY",
          `plaintext tensor ${JSON.stringify(t.name)} does not match its signed digest: the file was modified`,
        );
      }
      return;
    }
    const dek = file.deks.get(t.name);
    if (!dek) throw missingMasterKey();
    const alg = file.crypto!.keys.encAlg;
    if (entry.scheme === "monolithic") {
      await read(out);
      if (out.length === 0 && entry.iv.length === 0 && entry.tag.length === 0) return; // the reference's empty v1 tensor
      if (entry.iv.length !== NONCE_BYTES) throw decryptionFailed();
      await crypto.openInPlace(alg, dek, entry.iv, out, entry.tag);
      return;
    }
    if (out.length === 0) {
      // An empty v2 tensor is one seal of the empty string under base_iv: its one tag is still checked.
      await crypto.openInPlace(alg, dek, entry.baseIv, out, entry.tags.subarray(0, TAG_BYTES));
      return;
    }
    await read(out);
    const chunk = file.crypto!.keys.chunkBytes!;
    const nonce = new Uint8Array(NONCE_BYTES);
    const count = chunkCount(out.length, chunk);
    for (let i = 0; i < count; i++) {
      const piece = out.subarray(i * chunk, Math.min(out.length, (i + 1) * chunk));
      await crypto.openInPlace(
        alg,
        dek,
        chunkNonceInto(entry.baseIv, i, nonce),
        piece,
        entry.tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES),
      );
    }
  } catch (err) {
    out.fill(0);
    throw err;
  }
}

/** Constant-time comparison of two byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
