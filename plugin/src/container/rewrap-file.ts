// Key rotation without re-encrypting data (docs/format.md §6.4): verify with the old trust,
// unwrap every DEK with the old master key, wrap it under the new one with fresh key IVs, re-sign.
// IVs, tags, version, chunk size, digests and (unless replaced) the policy are kept; data is copied.

import { open } from "node:fs/promises";
import { CryptoTensorsError } from "../errors.js";
import { unwrapKey, wrapKey } from "../crypto/wrap.js";
import type { EncryptionKey, Key, SigningKey } from "../keys/jwk.js";
import { resolveEncryptionKey } from "../keys/keyring.js";
import type { TrustStore } from "../keys/trust.js";
import { readAll, withAtomicFile, writeAll } from "../io/files.js";
import { CryptoTensorsReader } from "./reader.js";
import type { Policy, TensorCryptoEntry } from "./reserved.js";
import { buildSignedHeader, IO_PIECE_BYTES, keyRefOf, userMetadataForOutput, type HeaderParts } from "./writer.js";

export interface RewrapOptions {
  oldKeys: readonly Key[];
  trust: TrustStore;
  newKey: EncryptionKey;
  signKey: SigningKey;
  policy?: Policy | undefined;
  onProgress?: ((doneBytes: number, totalBytes: number) => void) | undefined;
}

export async function rewrapFile(input: string, output: string, options: RewrapOptions): Promise<{ tensors: number }> {
  // Open without keys: verify signature and policy first, then unwrap with the old master key here.
  const reader = await CryptoTensorsReader.open(input, { trust: options.trust });
  try {
    const crypto = reader.crypto;
    if (!crypto) throw new CryptoTensorsError("ERR_CT_FORMAT", `${input} is not encrypted: use encrypt`);
    if (options.newKey.alg !== crypto.keys.encAlg) {
      throw new CryptoTensorsError(
        "ERR_CT_KEY_INVALID",
        `the new master key is ${options.newKey.alg} but the data is encrypted with ${crypto.keys.encAlg}; rewrap cannot change the algorithm`,
      );
    }
    const oldKey = await resolveEncryptionKey(options.oldKeys, crypto.keys.enc);
    const encryption = new Map<string, TensorCryptoEntry>();
    for (const [name, e] of crypto.encryption) {
      const dek = unwrapKey(crypto.keys.encAlg, oldKey.k, e.wrapped);
      encryption.set(name, { ...e, wrapped: wrapKey(crypto.keys.encAlg, options.newKey.k, dek) });
      dek.fill(0);
    }
    const md = reader.header.metadata!;
    const parts: HeaderParts = {
      userMetadata: userMetadataForOutput(md),
      layout: {
        version: crypto.keys.version,
        chunkBytes: crypto.keys.chunkSizeWritten ? crypto.keys.chunkBytes : undefined,
        enc: keyRefOf(options.newKey),
        sign: keyRefOf(options.signKey),
        alg: crypto.keys.encAlg,
      },
      encryption,
      policy: options.policy ?? crypto.policy,
      digests: crypto.digests,
      tensors: reader.tensors,
    };
    const header = buildSignedHeader(parts, options.signKey);
    const total = reader.header.dataBytes;
    const src = await open(input, "r");
    try {
      await withAtomicFile(output, 0o644, async (dst) => {
        await writeAll(dst, header, 0);
        const buf = new Uint8Array(Math.min(IO_PIECE_BYTES, Math.max(total, 1)));
        for (let off = 0; off < total; off += buf.length) {
          const piece = buf.subarray(0, Math.min(buf.length, total - off));
          await readAll(src, piece, reader.header.dataStart + off);
          await writeAll(dst, piece, header.length + off);
          options.onProgress?.(off + piece.length, total);
        }
      });
    } finally {
      await src.close();
    }
    return { tensors: reader.tensors.length };
  } finally {
    await reader.close();
  }
}
