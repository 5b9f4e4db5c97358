// The crypto entries of a header (docs/format.md §2), parsed and cross-checked without keys. Pure code, shared by
// the file reader and the in-memory reader.

import { CryptoTensorsError } from "../errors.js";
import { TAG_BYTES } from "../crypto/aead-params.js";
import { chunkCount } from "../crypto/chunked.js";
import type { SafetensorsHeader } from "../format/header.js";
import {
  ENCRYPTION_KEY,
  parseCryptoKeys,
  parseDigests,
  parseEncryption,
  parsePolicy,
  parseSignature,
  type CryptoKeysEntry,
  type Policy,
  type TensorCryptoEntry,
} from "./reserved.js";
import { quote } from "../format/printable.js";

/** Everything learned from a header without keys (used by `inspect`). */
export interface CryptoInfo {
  keys: CryptoKeysEntry;
  encryption: Map<string, TensorCryptoEntry>;
  policy: Policy;
  signature: Uint8Array;
  digests: Map<string, Uint8Array> | undefined;
}

/** null for a plain safetensors file. @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED */
export function parseCrypto(header: SafetensorsHeader): CryptoInfo | null {
  const md = header.metadata;
  if (!md?.has(ENCRYPTION_KEY)) return null; // a plain safetensors file (§3.7)
  const keys = parseCryptoKeys(md);
  const signature = parseSignature(md);
  const policy = parsePolicy(md);
  const encryption = parseEncryption(md, keys);
  for (const name of encryption.keys()) {
    if (!header.byName.has(name))
      throw new CryptoTensorsError("ERR_CT_FORMAT", `${ENCRYPTION_KEY} names a tensor that does not exist: ${quote(name)}`);
  }
  for (const [name, e] of encryption) {
    if (e.scheme === "chunked") {
      const t = header.byName.get(name)!;
      if (e.tags.length !== TAG_BYTES * chunkCount(t.end - t.begin, keys.chunkBytes!)) {
        throw new CryptoTensorsError(
          "ERR_CT_FORMAT",
          `${ENCRYPTION_KEY}[${quote(name)}]: "tags" has the wrong length for the tensor's chunk count`,
        );
      }
    }
  }
  return { keys, encryption, policy, signature, digests: parseDigests(md) };
}
