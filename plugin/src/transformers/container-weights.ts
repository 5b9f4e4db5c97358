// The weights of an encrypted ONNX graph as the hook reads them: an opened, verified container
// (`X.onnx.cryptotensors`) that decrypts tensors straight into the buffers transformers.js receives.
// Two ways to get one: from the container's bytes as they stream in (a fetched file, a file in Cache
// Storage, a browser; here: the ciphertext is never held whole), or, in Node, from a local file by its
// descriptor with the native engine (file-weights.ts).

// @noble/hashes: WebCrypto's SHA-256 takes the whole input at once; hashing a file as it streams
// through needs an incremental one (and @noble/curves already depends on this package).
import { sha256 } from "@noble/hashes/sha2.js";
import type { PolicyEngine } from "../container/policy-check.js";
import { StreamCryptoTensors } from "../container/memory-reader.js";
import type { CryptoProvider } from "../crypto/provider.js";
import type { Key } from "../keys/jwk.js";
import type { TrustStore } from "../keys/trust.js";
import type { WeightPlacement } from "../onnx/model.js";

/** What opening a container needs. */
export interface ContainerOpenOptions {
  keys: readonly Key[];
  trust: TrustStore;
  requireEncrypted: boolean;
  provider: CryptoProvider;
  policyEngine?: PolicyEngine | undefined;
}

export interface ContainerWeights {
  /** The signing key's kid (the header is verified). */
  readonly signer: string | null;
  readonly tensorCount: number;
  metadata(key: string): string | undefined;
  /** The 8-byte prefix and the header: what a release manifest binds a CryptoTensors file by. */
  readonly headerBytes: Uint8Array;
  /**
   * The sha256 of the whole file (for a release that lists it by that instead of its header). A streamed
   * container is hashed as decryptInto reads it: ask before decryptInto; the digest comes once it has read the file.
   */
  wholeFileSha256(): Promise<Uint8Array>;
  /** A tensor's byte length, undefined when there is none of that name. */
  byteLength(name: string): number | undefined;
  /**
   * Decrypts (and authenticates) every placed tensor into its place in `files`, once. On failure the caller
   * zeroes the files.
   */
  decryptInto(files: ReadonlyMap<string, Uint8Array>, placements: readonly WeightPlacement[]): Promise<void>;
  /** Releases the keys (and the source when it was not read to its end). */
  close(): Promise<void>;
  /** Called once every tensor decrypted and every check passed (the source may then be kept: container-cache.ts). */
  keep?(): void;
}

/** Where each tensor goes: its first placement, and the other places it is copied to (a weight used twice). */
function destinations(files: ReadonlyMap<string, Uint8Array>, placements: readonly WeightPlacement[]): Map<string, Uint8Array[]> {
  const out = new Map<string, Uint8Array[]>();
  for (const p of placements) {
    const view = files.get(p.file)!.subarray(p.offset, p.offset + p.length);
    const list = out.get(p.name);
    if (list) list.push(view);
    else out.set(p.name, [view]);
  }
  return out;
}

/**
 * A container read from a stream (a Response body): the header is read and verified here; decryptInto
 * reads the tensors as they arrive, each into its place. @throws what StreamCryptoTensors.open throws
 */
export async function streamWeights(body: ReadableStream<Uint8Array>, options: ContainerOpenOptions): Promise<ContainerWeights> {
  const reader = await StreamCryptoTensors.open(body.getReader(), {
    keys: options.keys,
    trust: options.trust,
    requireEncrypted: options.requireEncrypted,
    provider: options.provider,
    policyEngine: options.policyEngine,
  });
  let hash: ReturnType<typeof sha256.create> | undefined;
  let started = false;
  let digest: { resolve(d: Uint8Array): void; reject(e: unknown): void } | undefined;
  return {
    signer: reader.signer?.kid ?? null,
    tensorCount: reader.tensors.length,
    metadata: (key) => reader.metadata(key),
    headerBytes: reader.headerBytes,
    wholeFileSha256() {
      if (started || hash) return Promise.reject(new TypeError("wholeFileSha256() must be asked once, before decryptInto"));
      hash = sha256.create().update(reader.headerBytes);
      const p = new Promise<Uint8Array>((resolve, reject) => (digest = { resolve, reject }));
      p.catch(() => {}); // a failed read is reported by decryptInto
      return p;
    },
    byteLength: (name) => (reader.header.byName.has(name) ? reader.byteLength(name) : undefined),
    async decryptInto(files, placements) {
      started = true;
      const dest = destinations(files, placements);
      try {
        await reader.readAll((t) => dest.get(t.name)?.[0], hash ? (stored) => hash!.update(stored) : undefined);
      } catch (err) {
        digest?.reject(err);
        throw err;
      }
      for (const [, [first, ...copies]] of dest) for (const c of copies) c.set(first!);
      digest?.resolve(hash!.digest());
    },
    async close() {
      reader.close();
    },
  };
}
