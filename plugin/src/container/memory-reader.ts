// Opening a CryptoTensors file held in memory (a Uint8Array: a fetched Hub file, a Response body), with
// the same checks and the same order as the file reader (container/reader.ts): format, signature with
// a trusted key, policy, downgrade protection, master key, DEKs; tensors are decrypted on demand
// through a CryptoProvider, so the code runs in Node and in browsers.

import { CryptoTensorsError, decryptionFailed } from "../errors.js";
import { TAG_BYTES } from "../crypto/aead-params.js";
import { chunkCount, chunkNonceInto } from "../crypto/chunked.js";
import type { CryptoProvider } from "../crypto/provider.js";
import { unwrapKey } from "../crypto/wrap.js";
import { HEADER_PREFIX_BYTES, parseHeader, parseHeaderPrefix, type SafetensorsHeader, type TensorInfo } from "../format/header.js";
import type { Key, SigningKey } from "../keys/jwk.js";
import { resolveEncryptionKey } from "../keys/keyring.js";
import type { TrustStore } from "../keys/trust.js";
import { parseCrypto, type CryptoInfo } from "./crypto-info.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "./reserved.js";
import { signedMessageOf } from "./signing.js";

export interface MemoryOpenOptions {
  keys?: readonly Key[];
  trust?: TrustStore;
  /** Refuse plaintext or unsigned files and files with plaintext tensors. */
  requireEncrypted?: boolean;
  provider: CryptoProvider;
  /**
   * Evaluates the policy. Default: the reference's default policy is allowed, any other policy is refused
   * (ERR_CT_POLICY_UNSUPPORTED): no Rego engine is available here.
   */
  evaluatePolicy?: (policy: Policy) => Promise<void>;
}

async function defaultPolicyOnly(policy: Policy): Promise<void> {
  const norm = (s: string) => s.replace(/\s+/g, " ").trim();
  if (norm(policy.local) !== norm(DEFAULT_POLICY_TEXT) || norm(policy.remote) !== norm(DEFAULT_POLICY_TEXT)) {
    throw new CryptoTensorsError("ERR_CT_POLICY_UNSUPPORTED", "the model carries a non-default policy, which cannot be evaluated here");
  }
}

export class MemoryCryptoTensors {
  private readonly deks = new Map<string, Uint8Array>();

  private constructor(
    private readonly bytes: Uint8Array,
    readonly header: SafetensorsHeader,
    readonly crypto: CryptoInfo | null,
    readonly signer: SigningKey | null,
    private readonly provider: CryptoProvider,
  ) {}

  /**
   * @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED, ERR_CT_NOT_CONFIDENTIAL, ERR_CT_UNTRUSTED_SIGNER, ERR_CT_SIGNATURE_INVALID,
   *   ERR_CT_POLICY_UNSUPPORTED, ERR_CT_POLICY_DENIED, ERR_CT_KEY_NOT_FOUND, ERR_CT_KEY_INVALID, ERR_CT_DECRYPTION_FAILED
   */
  static async open(bytes: Uint8Array, options: MemoryOpenOptions): Promise<MemoryCryptoTensors> {
    if (bytes.length < HEADER_PREFIX_BYTES) throw new CryptoTensorsError("ERR_CT_FORMAT", "header too small: the file is shorter than 8 bytes");
    const n = parseHeaderPrefix(bytes.subarray(0, HEADER_PREFIX_BYTES));
    if (HEADER_PREFIX_BYTES + n > bytes.length) throw new CryptoTensorsError("ERR_CT_FORMAT", `invalid header length ${n}: the file has only ${bytes.length} bytes`);
    const header = parseHeader(bytes.subarray(HEADER_PREFIX_BYTES, HEADER_PREFIX_BYTES + n), bytes.length);
    const crypto = parseCrypto(header);
    if (!crypto) {
      if (options.requireEncrypted) throw new CryptoTensorsError("ERR_CT_NOT_CONFIDENTIAL", "the file is not encrypted (plain safetensors) but an encrypted, signed model was required");
      return new MemoryCryptoTensors(bytes, header, null, null, options.provider);
    }
    if (!options.trust || options.trust.size === 0) {
      throw new CryptoTensorsError("ERR_CT_UNTRUSTED_SIGNER", "no trusted signer key was given: pass the publisher's public key as `trust`");
    }
    const signer = options.trust.verify(signedMessageOf(header), crypto.signature, crypto.keys.sign);
    await (options.evaluatePolicy ?? defaultPolicyOnly)(crypto.policy);
    if (options.requireEncrypted) {
      const plain = header.tensors.filter((t) => !crypto.encryption.has(t.name));
      if (plain.length) {
        throw new CryptoTensorsError("ERR_CT_NOT_CONFIDENTIAL", `${plain.length} tensor(s) are stored in plaintext (e.g. ${JSON.stringify(plain[0]!.name)}) but an encrypted model was required`);
      }
    }
    const reader = new MemoryCryptoTensors(bytes, header, crypto, signer, options.provider);
    if (options.keys?.length && crypto.encryption.size) {
      const master = await resolveEncryptionKey(options.keys, crypto.keys.enc, { followFileJku: false });
      for (const [name, e] of crypto.encryption) reader.deks.set(name, unwrapKey(crypto.keys.encAlg, master.k, e.wrapped));
    }
    return reader;
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  metadata(key: string): string | undefined {
    return this.header.metadata?.get(key);
  }

  /**
   * A new buffer with the tensor's authenticated plaintext.
   * @throws ERR_CT_DECRYPTION_FAILED, ERR_CT_INTEGRITY, ERR_CT_KEY_NOT_FOUND, ERR_CT_FORMAT
   */
  async readTensor(name: string): Promise<Uint8Array> {
    const t = this.header.byName.get(name);
    if (!t) throw new CryptoTensorsError("ERR_CT_FORMAT", `no tensor named ${JSON.stringify(name)}`);
    const start = this.header.dataStart + t.begin;
    const stored = this.bytes.subarray(start, start + (t.end - t.begin));
    const entry = this.crypto?.encryption.get(name);
    if (!entry) {
      const expected = this.crypto?.digests?.get(name);
      if (expected && !equal(await this.provider.sha256(stored), expected)) {
        throw new CryptoTensorsError("ERR_CT_INTEGRITY", `plaintext tensor ${JSON.stringify(name)} does not match its signed digest: the file was modified`);
      }
      return stored.slice();
    }
    const dek = this.deks.get(name);
    if (!dek) throw new CryptoTensorsError("ERR_CT_KEY_NOT_FOUND", "this file was opened without a master key: pass keys to read encrypted tensors");
    const alg = this.crypto!.keys.encAlg;
    if (entry.scheme === "monolithic") {
      if (stored.length === 0 && entry.iv.length === 0 && entry.tag.length === 0) return new Uint8Array(0);
      if (entry.iv.length !== 12) throw decryptionFailed();
      return this.provider.aeadOpen(alg, dek, entry.iv, stored, entry.tag);
    }
    const chunk = this.crypto!.keys.chunkBytes!;
    if (stored.length === 0) return this.provider.aeadOpen(alg, dek, entry.baseIv, stored, entry.tags.subarray(0, TAG_BYTES));
    const out = new Uint8Array(stored.length);
    const count = chunkCount(stored.length, chunk);
    for (let i = 0; i < count; i++) {
      const nonce = chunkNonceInto(entry.baseIv, i, new Uint8Array(12));
      const piece = stored.subarray(i * chunk, Math.min(stored.length, (i + 1) * chunk));
      try {
        out.set(await this.provider.aeadOpen(alg, dek, nonce, piece, entry.tags.subarray(i * TAG_BYTES, (i + 1) * TAG_BYTES)), i * chunk);
      } catch (err) {
        out.fill(0);
        throw err;
      }
    }
    return out;
  }

  /** Zeroes the data keys. */
  close(): void {
    for (const dek of this.deks.values()) dek.fill(0);
    this.deks.clear();
  }
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
