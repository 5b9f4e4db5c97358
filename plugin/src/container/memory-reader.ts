// Opening a CryptoTensors file held in memory (a Uint8Array: a fetched Hub file, a Response body) through
// the same open pipeline as the file reader (open-checks.ts, then tensor-open.ts per tensor); the crypto
// of tensor data goes through a CryptoProvider, so the code runs in Node and in browsers.
// StreamCryptoTensors is the same reader over a file that is still arriving (a Response body read chunk
// by chunk): the header is verified as soon as its bytes are there, then each tensor is read, in file
// order, straight into its destination and authenticated there, and the chunks are let go as they are
// copied: the file is never held whole.

import { CryptoTensorsError } from "../errors.js";
import type { CryptoProvider } from "../crypto/provider.js";
import { HEADER_PREFIX_BYTES, parseHeader, parseHeaderPrefix, type SafetensorsHeader, type TensorInfo } from "../format/header.js";
import type { SigningKey } from "../keys/jwk.js";
import type { CryptoInfo } from "./crypto-info.js";
import { checkHeader, type OpenChecksOptions, type VerifiedHeader } from "./open-checks.js";
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

/** Parses the header (without its prefix) and runs the open checks on it. */
async function verifiedHeader(
  bytes: Uint8Array,
  fileBytes: number | undefined,
  options: MemoryOpenOptions,
): Promise<{ header: SafetensorsHeader; v: VerifiedHeader }> {
  const header = parseHeader(bytes, fileBytes);
  // A file:// jku names a file on this machine: not followed from memory (the bytes may come from anywhere).
  const v = await checkHeader(header, options, { name: "the file", policyEngine: options.policyEngine, followFileJku: false });
  return { header, v };
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
    const { header, v } = await verifiedHeader(bytes.subarray(HEADER_PREFIX_BYTES, HEADER_PREFIX_BYTES + n), bytes.length, options);
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

/** The bytes of a file in order, in chunks of any size: what a ReadableStream's reader gives. */
export interface ByteSource {
  read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>;
  cancel(reason?: unknown): Promise<void>;
}

const truncated = () => new CryptoTensorsError("ERR_CT_FORMAT", "file is truncated: it ends before the data its header describes");

/** The chunks read from a ByteSource and not yet consumed; consumed bytes are let go at once. */
class ChunkQueue {
  #pending: Uint8Array[] = [];
  #ended = false;

  constructor(private readonly source: ByteSource) {}

  get ended(): boolean {
    return this.#ended;
  }

  /** Reads one more chunk; false at the end of the file. @throws ERR_CT_IO when the source fails */
  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    let r: { done: boolean; value?: Uint8Array | undefined };
    try {
      r = await this.source.read();
    } catch (err) {
      throw new CryptoTensorsError("ERR_CT_IO", `cannot read the file: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    if (r.done) {
      this.#ended = true;
      return false;
    }
    if (r.value?.length) this.#pending.push(r.value);
    return true;
  }

  /** Fills `out` with the next out.length bytes. @throws ERR_CT_FORMAT (truncated), ERR_CT_IO */
  async fill(out: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < out.length) {
      if (this.#pending.length === 0) {
        if (!(await this.#more())) throw truncated();
        continue;
      }
      const c = this.#pending[0]!;
      const n = Math.min(c.length, out.length - pos);
      out.set(c.subarray(0, n), pos);
      pos += n;
      if (n === c.length) this.#pending.shift();
      else this.#pending[0] = c.subarray(n);
    }
  }

  /** Whether the file ends here (reads on to find out). */
  async atEnd(): Promise<boolean> {
    while (this.#pending.length === 0) if (!(await this.#more())) return true;
    return false;
  }

  cancel(reason: unknown): void {
    this.#pending = [];
    if (!this.#ended) {
      this.#ended = true;
      this.source.cancel(reason).catch(() => {});
    }
  }
}

/**
 * A CryptoTensors file read as it arrives (see the top of this file): open() reads and verifies the header,
 * readAll() reads the tensors in file order into their destinations.
 */
export class StreamCryptoTensors {
  #read = false;

  private constructor(
    private readonly queue: ChunkQueue,
    /** The 8-byte prefix and the header, as read. */
    readonly headerBytes: Uint8Array,
    readonly header: SafetensorsHeader,
    readonly crypto: CryptoInfo | null,
    readonly signer: SigningKey | null,
    private readonly deks: Map<string, Uint8Array>,
    private readonly tensorCrypto: TensorCrypto,
  ) {}

  /**
   * Reads the header from `source` and runs every open check on it; no tensor byte is read yet.
   * @throws what MemoryCryptoTensors.open throws, ERR_CT_IO when the source fails
   */
  static async open(source: ByteSource, options: MemoryOpenOptions): Promise<StreamCryptoTensors> {
    const queue = new ChunkQueue(source);
    try {
      const prefix = new Uint8Array(HEADER_PREFIX_BYTES);
      await queue.fill(prefix).catch((err) => {
        throw err instanceof CryptoTensorsError && err.code === "ERR_CT_FORMAT"
          ? new CryptoTensorsError("ERR_CT_FORMAT", "header too small: the file is shorter than 8 bytes")
          : err;
      });
      const n = parseHeaderPrefix(prefix); // bounded by MAX_HEADER_BYTES
      const headerBytes = new Uint8Array(HEADER_PREFIX_BYTES + n);
      headerBytes.set(prefix);
      await queue.fill(headerBytes.subarray(HEADER_PREFIX_BYTES)).catch((err) => {
        throw err instanceof CryptoTensorsError && err.code === "ERR_CT_FORMAT"
          ? new CryptoTensorsError("ERR_CT_FORMAT", `invalid header length ${n}: the file ends before its header does`)
          : err;
      });
      const { header, v } = await verifiedHeader(headerBytes.subarray(HEADER_PREFIX_BYTES), undefined, options);
      return new StreamCryptoTensors(queue, headerBytes, header, v.crypto, v.signer, v.deks, tensorCryptoOf(options.provider));
    } catch (err) {
      queue.cancel(err);
      throw err;
    }
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  metadata(key: string): string | undefined {
    return this.header.metadata?.get(key);
  }

  /** A tensor's stored byte length. @throws ERR_CT_FORMAT when there is no such tensor */
  byteLength(name: string): number {
    const t = this.header.byName.get(name);
    if (!t) throw noSuchTensor(name);
    return t.end - t.begin;
  }

  /**
   * Reads the rest of the file, once: each tensor, in file order, into `into(t)` (exactly its byte length)
   * and authenticated there as soon as its bytes have arrived (a tensor with no destination is read into a
   * scratch buffer, authenticated and zeroed: every tensor of the file is checked). `onData` sees every
   * stored byte after the header, in order, before it is decrypted (e.g. to hash the whole file). The file
   * must end right after its last tensor. On failure the destination being filled is zeroed (tensor-open.ts).
   * @throws ERR_CT_DECRYPTION_FAILED, ERR_CT_INTEGRITY, ERR_CT_KEY_NOT_FOUND, ERR_CT_FORMAT (truncated, trailing bytes), ERR_CT_IO
   */
  async readAll(into: (t: TensorInfo) => Uint8Array | undefined, onData?: (stored: Uint8Array) => void): Promise<void> {
    if (this.#read) throw new TypeError("readAll() reads the file once");
    this.#read = true;
    try {
      for (const t of this.header.tensors) {
        const length = t.end - t.begin;
        const given = into(t);
        if (given && given.length !== length) throw new TypeError(`buffer for ${t.name} must be ${length} bytes, got ${given.length}`);
        const out = given ?? new Uint8Array(length);
        const read = async (buf: Uint8Array) => {
          await this.queue.fill(buf);
          onData?.(buf);
        };
        await openTensorInto({ crypto: this.crypto, deks: this.deks }, t, out, read, this.tensorCrypto);
        if (!given) out.fill(0);
      }
      if (!(await this.queue.atEnd())) throw new CryptoTensorsError("ERR_CT_FORMAT", "file has trailing bytes after the last tensor");
    } catch (err) {
      this.queue.cancel(err);
      throw err;
    }
  }

  /** Zeroes the data keys and stops reading the source (when the file was not read to its end). */
  close(): void {
    for (const dek of this.deks.values()) dek.fill(0);
    this.deks.clear();
    this.queue.cancel(new Error("closed"));
  }
}
