// Opening a CryptoTensors file held in memory (a Uint8Array: a fetched Hub file, a Response body) through
// the same open pipeline as the file reader (open-checks.ts, then tensor-open.ts per tensor); the crypto
// of tensor data goes through a CryptoProvider, so the code runs in Node and in browsers.

import { CryptoTensorsError } from "../errors.js";
import type { CryptoProvider } from "../crypto/provider.js";
import { HEADER_PREFIX_BYTES, parseHeader, parseHeaderPrefix, type SafetensorsHeader, type TensorInfo } from "../format/header.js";
import type { SigningKey } from "../keys/jwk.js";
import type { CryptoInfo } from "./crypto-info.js";
import { checkHeader, type OpenChecksOptions } from "./open-checks.js";
import type { PolicyEngine } from "./policy-check.js";
import { noSuchTensor, openTensorInto, type TensorCrypto } from "./tensor-open.js";

export interface MemoryOpenOptions extends OpenChecksOptions {
  provider: CryptoProvider;
  /**
   * Evaluates non-default policies. Without one (the default: no Rego engine runs in a browser), only
   * the default policy is allowed and any other is refused with ERR_CT_POLICY_UNSUPPORTED.
   */
  policyEngine?: PolicyEngine;
}

/** A CryptoProvider as the pipeline's TensorCrypto (the provider returns new buffers: copied back in place). */
function tensorCryptoOf(provider: CryptoProvider): TensorCrypto {
  return {
    async openInPlace(alg, key, nonce, data, tag) {
      const plain = await provider.aeadOpen(alg, key, nonce, data, tag);
      data.set(plain);
      plain.fill(0);
    },
    sha256: (data) => provider.sha256(data),
  };
}

export class MemoryCryptoTensors {
  private constructor(
    private readonly bytes: Uint8Array,
    readonly header: SafetensorsHeader,
    readonly crypto: CryptoInfo | null,
    readonly signer: SigningKey | null,
    private readonly deks: Map<string, Uint8Array>,
    private readonly tensorCrypto: TensorCrypto,
  ) {}

  /**
   * @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED, ERR_CT_NOT_CONFIDENTIAL, ERR_CT_UNTRUSTED_SIGNER, ERR_CT_SIGNATURE_INVALID,
   *   ERR_CT_POLICY_UNSUPPORTED, ERR_CT_POLICY_DENIED, ERR_CT_KEY_NOT_FOUND, ERR_CT_KEY_INVALID, ERR_CT_DECRYPTION_FAILED
   */
  static async open(bytes: Uint8Array, options: MemoryOpenOptions): Promise<MemoryCryptoTensors> {
    if (bytes.length < HEADER_PREFIX_BYTES)
      throw new CryptoTensorsError("ERR_CT_FORMAT", "header too small: the file is shorter than 8 bytes");
    const n = parseHeaderPrefix(bytes.subarray(0, HEADER_PREFIX_BYTES));
    if (HEADER_PREFIX_BYTES + n > bytes.length)
      throw new CryptoTensorsError("ERR_CT_FORMAT", `invalid header length ${n}: the file has only ${bytes.length} bytes`);
    const header = parseHeader(bytes.subarray(HEADER_PREFIX_BYTES, HEADER_PREFIX_BYTES + n), bytes.length);
    // A file:// jku names a file on this machine: not followed from memory (the bytes may come from anywhere).
    const v = await checkHeader(header, options, { name: "the file", policyEngine: options.policyEngine, followFileJku: false });
    return new MemoryCryptoTensors(bytes, header, v.crypto, v.signer, v.deks, tensorCryptoOf(options.provider));
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
    const out = new Uint8Array(this.byteLength(name));
    await this.readTensorInto(name, out);
    return out;
  }

  /** A tensor's stored byte length. @throws ERR_CT_FORMAT when there is no such tensor */
  byteLength(name: string): number {
    const t = this.header.byName.get(name);
    if (!t) throw noSuchTensor(name);
    return t.end - t.begin;
  }

  /**
   * Writes the tensor's authenticated plaintext into `out` (exactly its byte length), e.g. straight into
   * the buffer it is used from. On any failure `out` is zeroed.
   * @throws ERR_CT_DECRYPTION_FAILED, ERR_CT_INTEGRITY, ERR_CT_KEY_NOT_FOUND, ERR_CT_FORMAT
   */
  async readTensorInto(name: string, out: Uint8Array): Promise<void> {
    const t = this.header.byName.get(name);
    if (!t) throw noSuchTensor(name);
    if (out.length !== t.end - t.begin) throw new TypeError(`buffer for ${name} must be ${t.end - t.begin} bytes, got ${out.length}`);
    const start = this.header.dataStart + t.begin;
    await openTensorInto(
      { crypto: this.crypto, deks: this.deks },
      t,
      out,
      async (buf) => buf.set(this.bytes.subarray(start, start + buf.length)),
      this.tensorCrypto,
    );
  }

  /** Zeroes the data keys. */
  close(): void {
    for (const dek of this.deks.values()) dek.fill(0);
    this.deks.clear();
  }
}
