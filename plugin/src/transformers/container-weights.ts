// The weights of an encrypted ONNX graph as the hook reads them: an opened, verified container
// (`X.onnx.cryptotensors`) that decrypts tensors straight into the buffers transformers.js receives.
// Two ways to get one: from the container's bytes in memory (a fetched file, a browser; here), or, in
// Node, from a local file by its descriptor with the native engine (file-weights.ts), without reading
// the ciphertext into memory first.

import type { PolicyEngine } from "../container/policy-check.js";
import { MemoryCryptoTensors } from "../container/memory-reader.js";
import type { CryptoProvider } from "../crypto/provider.js";
import { HEADER_PREFIX_BYTES } from "../format/header.js";
import type { Key } from "../keys/jwk.js";
import type { TrustStore } from "../keys/trust.js";

/** What opening a container needs. */
export interface ContainerOpenOptions {
  keys: readonly Key[];
  trust: TrustStore;
  requireEncrypted: boolean;
  provider: CryptoProvider;
  policyEngine?: PolicyEngine | undefined;
}

/** One tensor to decrypt into `offset` of a destination buffer. */
export interface WeightTarget {
  name: string;
  offset: number;
}

export interface ContainerWeights {
  /** The signing key's kid (the header is verified). */
  readonly signer: string | null;
  readonly tensorCount: number;
  metadata(key: string): string | undefined;
  /** The 8-byte prefix and the header: what a release manifest binds a CryptoTensors file by. */
  readonly headerBytes: Uint8Array;
  /** The whole file (for a release that lists it by its sha256 instead of its header). */
  wholeFile(): Promise<Uint8Array>;
  /** A tensor's byte length, undefined when there is none of that name. */
  byteLength(name: string): number | undefined;
  /** Decrypts (and authenticates) tensors into `buffer` at their offsets; on failure their bytes are zeroed. */
  decryptInto(buffer: Uint8Array, targets: readonly WeightTarget[]): Promise<void>;
  close(): Promise<void>;
  /** Called once every tensor decrypted without error (the source may then be kept: container-cache.ts). */
  keep?(): void;
}

/** A container held in memory. @throws what MemoryCryptoTensors.open throws */
export async function memoryWeights(bytes: Uint8Array, options: ContainerOpenOptions): Promise<ContainerWeights> {
  const reader = await MemoryCryptoTensors.open(bytes, {
    keys: options.keys,
    trust: options.trust,
    requireEncrypted: options.requireEncrypted,
    provider: options.provider,
    policyEngine: options.policyEngine,
  });
  return {
    signer: reader.signer?.kid ?? null,
    tensorCount: reader.tensors.length,
    metadata: (key) => reader.metadata(key),
    headerBytes: bytes.subarray(0, HEADER_PREFIX_BYTES + reader.header.headerBytes),
    wholeFile: async () => bytes,
    byteLength: (name) => (reader.header.byName.has(name) ? reader.byteLength(name) : undefined),
    async decryptInto(buffer, targets) {
      for (const t of targets) await reader.readTensorInto(t.name, buffer.subarray(t.offset, t.offset + reader.byteLength(t.name)));
    },
    async close() {
      reader.close();
    },
  };
}
