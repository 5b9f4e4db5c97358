// Opening files whose master key a key service holds (the sidecar's OpenModel). For each shard: verify
// it first without keys (signature, policy, downgrade checks), then ask the service for the master key
// it names, open it with that key (the reader unwraps the data keys and keeps only those), and zero the
// released master key when the model is open. Shards of one model share one master key: one release per
// OpenModel. A model already open is re-authorised at each further OpenModel (the service is asked
// again and the answer dropped), so a revoked caller cannot open it again, while clients that have it
// open keep reading: its data keys stay in memory until the last CloseModel, which zeroes them.

import { CryptoTensorsReader, readHeader, type OpenOptions } from "../container/reader.js";
import type { CryptoInfo } from "../container/crypto-info.js";
import type { KeyRef } from "../container/reserved.js";
import { zeroKey, type EncryptionKey } from "../keys/jwk.js";
import { providerFor, type KmsProvider } from "./provider.js";

/** Where releases are reported (the sidecar's logger). Fields hold no key and no token. */
export interface ReleaseLog {
  info(event: string, fields: Record<string, unknown>): void;
}

/** `vault:v3:…` → 3: which key version wrapped the master key (for logs). */
function wrapVersion(kid: string | undefined): number | undefined {
  const m = /^vault:v(\d+):/.exec(kid ?? "");
  return m ? Number(m[1]) : undefined;
}

export class KmsKeyRelease {
  constructor(readonly providers: readonly KmsProvider[]) {
    if (!providers.length) throw new TypeError("KmsKeyRelease needs at least one provider");
  }

  /** The key-service identity of this sidecar (the first provider's), for policy input; never a secret. */
  get identity(): string | null {
    return this.providers[0]?.identity ?? null;
  }

  /** The provider for a header's enc entry, when it names a key service this sidecar is configured for. */
  providerOf(ref: KeyRef | undefined): KmsProvider | undefined {
    return providerFor(this.providers, ref?.jku);
  }

  /**
   * The master key of `file` released by the key service it names, after verifying the file (for rewrap
   * and decrypt); undefined when the file names no configured key service. The caller zeroes it.
   */
  async keyFor(file: string, options: OpenOptions): Promise<EncryptionKey | undefined> {
    const probe = await CryptoTensorsReader.open(file, { ...options, keys: undefined });
    const ref = probe.crypto?.keys.enc;
    await probe.close();
    const provider = probe.crypto?.encryption.size ? this.providerOf(ref) : undefined;
    return provider && ref ? provider.unwrap(ref) : undefined;
  }

  /**
   * One OpenModel: releases each wrapped key once; call dispose() when the shards are open (or failed).
   * `beforeRelease` runs on each verified header just before the service is asked (the sidecar's policy
   * gate): if it throws, the service is not asked.
   */
  session(log?: ReleaseLog, beforeRelease?: (crypto: CryptoInfo) => Promise<void>): KmsReleaseSession {
    return new KmsReleaseSession(this, log, beforeRelease);
  }

  /**
   * Asks the service again for the keys of an open model's shards and drops the answers: throws what
   * the service throws (a KmsError) when this caller may no longer have them.
   */
  async reauthorize(readers: readonly CryptoTensorsReader[], log?: ReleaseLog, fields: Record<string, unknown> = {}): Promise<void> {
    const seen = new Set<string>();
    for (const reader of readers) {
      const ref = reader.crypto?.keys.enc;
      const provider = this.providerOf(ref);
      if (!ref || !provider || seen.has(`${ref.jku}\n${ref.kid}`)) continue;
      seen.add(`${ref.jku}\n${ref.kid}`);
      zeroKey(await provider.unwrap(ref));
      log?.info("kms.reauthorized", { ...fields, reference: ref.jku, key_version: wrapVersion(ref.kid) });
    }
  }
}

export class KmsReleaseSession {
  private readonly released = new Map<string, EncryptionKey>();

  constructor(
    private readonly release: KmsKeyRelease,
    private readonly log: ReleaseLog | undefined,
    private readonly beforeRelease?: (crypto: CryptoInfo) => Promise<void>,
  ) {}

  /** Opens `file` like CryptoTensorsReader.open, taking its master key from the key service when it names one. */
  async open(file: string, options: OpenOptions): Promise<CryptoTensorsReader> {
    const { crypto } = await readHeader(file);
    const named = crypto?.keys.enc;
    if (!named || !crypto?.encryption.size || !this.release.providerOf(named)) return CryptoTensorsReader.open(file, options);
    // Verify before asking for the key: a forged or untrusted file never reaches the key service.
    const probe = await CryptoTensorsReader.open(file, { ...options, keys: undefined });
    const ref = probe.crypto!.keys.enc;
    await probe.close();
    const provider = this.release.providerOf(ref);
    if (!provider) return CryptoTensorsReader.open(file, options); // the file changed in between: open it as it is now
    await this.beforeRelease?.(probe.crypto!);
    const id = `${ref.jku}\n${ref.kid}`;
    let key = this.released.get(id);
    if (!key) {
      key = await provider.unwrap(ref);
      this.released.set(id, key);
      this.log?.info("kms.released", { file, reference: ref.jku, key_version: wrapVersion(ref.kid) });
    }
    return CryptoTensorsReader.open(file, { ...options, keys: [key] });
  }

  /** Zeroes every master key released in this session. */
  dispose(): void {
    for (const key of this.released.values()) zeroKey(key);
    this.released.clear();
  }
}
