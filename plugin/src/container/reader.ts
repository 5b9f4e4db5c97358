// Opening a CryptoTensors (or plain safetensors) file: only a regular file is opened; its header goes
// through the open pipeline (open-checks.ts: format, signature with a trusted key, policy, downgrade
// protection, master key, DEKs) and tensors through its per-tensor part (tensor-open.ts) or, for the
// same checks at speed, the native engine. Only authenticated plaintext is ever returned: v2 chunks are
// checked one by one, v1 tensors and digest-covered plaintext tensors are checked whole before any byte
// is handed out.

import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { CryptoTensorsError, decryptionFailed } from "../errors.js";
import { openInto, TAG_BYTES } from "../crypto/aead.js";
import { chunkCount, counterFits } from "../crypto/chunked.js";
import { engineName, runNative, Scheme, TaskStatus, type NativeDestination, type NativeTask } from "../crypto/engine.js";
import { HEADER_PREFIX_BYTES, parseHeader, parseHeaderPrefix, type SafetensorsHeader, type TensorInfo } from "../format/header.js";
import type { SigningKey } from "../keys/jwk.js";
import { defaultPolicyEngine, type PolicyEngine } from "../policy.js";
import { parseCrypto, type CryptoInfo } from "./crypto-info.js";
import { checkHeader, type OpenChecksOptions } from "./open-checks.js";
import { missingMasterKey, noSuchTensor, openTensorInto, type TensorCrypto } from "./tensor-open.js";
import { readAll } from "../io/files.js";
import { openRegularFile } from "../io/regular-file.js";
import { write as fsWrite } from "node:fs";
import { promisify } from "node:util";

export type { CryptoInfo };
export type { RequireEncrypted } from "./open-checks.js";

export interface OpenOptions extends OpenChecksOptions {
  /** Follow a header's `file://` jku to find the master key (default true, as the reference). */
  followFileJku?: boolean;
  /** Evaluates non-default policies (default: $CTENSORS_REGO_PYTHON, else such files are refused). */
  policyEngine?: PolicyEngine;
}

/** node:crypto, in place. */
const NODE_TENSOR_CRYPTO: TensorCrypto = {
  openInPlace: (alg, key, nonce, data, tag) => void openInto(alg, key, nonce, data, tag, data),
  sha256: (data) => createHash("sha256").update(data).digest(),
};

/** Reads the header and the crypto entries of a file, checking format only (no signature, no keys). */
export async function readHeader(path: string): Promise<{ header: SafetensorsHeader; crypto: CryptoInfo | null; fileBytes: number }> {
  const fh = await openRegularFile(path);
  try {
    const { header, fileBytes } = await readHeaderFrom(fh);
    return { header, crypto: parseCrypto(header), fileBytes };
  } finally {
    await fh.close();
  }
}

async function readHeaderFrom(fh: FileHandle): Promise<{ header: SafetensorsHeader; fileBytes: number }> {
  const { size } = await fh.stat();
  const prefix = new Uint8Array(HEADER_PREFIX_BYTES);
  if (size < HEADER_PREFIX_BYTES) throw new CryptoTensorsError("ERR_CT_FORMAT", "header too small: the file is shorter than 8 bytes");
  await readAll(fh, prefix, 0);
  const n = parseHeaderPrefix(prefix);
  if (HEADER_PREFIX_BYTES + n > size)
    throw new CryptoTensorsError("ERR_CT_FORMAT", `invalid header length ${n}: the file has only ${size} bytes`);
  const raw = new Uint8Array(n);
  await readAll(fh, raw, HEADER_PREFIX_BYTES);
  return { header: parseHeader(raw, size), fileBytes: size };
}

/** An open file. Call {@link CryptoTensorsReader.close} when done: it zeroes the data keys. */
export class CryptoTensorsReader {
  private readonly inflight = new Set<Promise<unknown>>();

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly header: SafetensorsHeader,
    readonly crypto: CryptoInfo | null,
    /** The trusted key that verified the header (null for plain files). */
    readonly signer: SigningKey | null,
    private readonly deks: Map<string, Uint8Array>,
  ) {}

  /**
   * Opens and authenticates a file.
   * @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED, ERR_CT_NOT_CONFIDENTIAL, ERR_CT_UNTRUSTED_SIGNER, ERR_CT_SIGNATURE_INVALID,
   *   ERR_CT_POLICY_UNSUPPORTED, ERR_CT_POLICY_DENIED, ERR_CT_KEY_NOT_FOUND, ERR_CT_KEY_INVALID, ERR_CT_DECRYPTION_FAILED,
   *   ERR_CT_IO (also for anything that is not a regular file)
   */
  static async open(path: string, options: OpenOptions = {}): Promise<CryptoTensorsReader> {
    const fh = await openRegularFile(path);
    try {
      const { header } = await readHeaderFrom(fh);
      const v = await checkHeader(header, options, {
        name: path,
        policyEngine: options.policyEngine ?? defaultPolicyEngine(),
        followFileJku: options.followFileJku !== false,
      });
      return new CryptoTensorsReader(fh, path, header, v.crypto, v.signer, v.deks);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  /** User metadata: `__metadata__` without keys starting with "__" (as the reference's metadata()). */
  userMetadata(): Map<string, string> | null {
    const md = this.header.metadata;
    if (!md) return null;
    return new Map([...md].filter(([k]) => !k.startsWith("__")));
  }

  isEncrypted(name: string): boolean {
    return this.crypto?.encryption.has(name) ?? false;
  }

  info(name: string): TensorInfo {
    const t = this.header.byName.get(name);
    if (!t) throw noSuchTensor(name);
    return t;
  }

  /** Reads and (if needed) decrypts one tensor into a new buffer. */
  async readTensor(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    await this.readTensorInto(name, out);
    return out;
  }

  /**
   * Reads the given tensors (default: all, in data order) one after another into one buffer sized for
   * the largest and reused: each yielded view is valid only until the next step, and the buffer is
   * zeroed at the end. A fresh buffer per tensor costs page faults and garbage-collection lag
   * (bench/RESULTS.md: about 1.7× slower, twice the peak RSS).
   */
  async *readEach(tensors: readonly TensorInfo[] = this.header.tensors): AsyncGenerator<[TensorInfo, Uint8Array]> {
    const scratch = new Uint8Array(tensors.reduce((m, t) => Math.max(m, t.end - t.begin), 0));
    try {
      for (const t of tensors) {
        const data = scratch.subarray(0, t.end - t.begin);
        await this.readTensorInto(t.name, data);
        yield [t, data];
      }
    } finally {
      scratch.fill(0);
    }
  }

  /**
   * Reads one tensor into `out` (exactly its byte length). On any failure `out` is zeroed.
   * @throws ERR_CT_DECRYPTION_FAILED, ERR_CT_INTEGRITY, ERR_CT_KEY_NOT_FOUND, ERR_CT_IO
   */
  async readTensorInto(name: string, out: Uint8Array): Promise<void> {
    const t = this.info(name);
    const length = t.end - t.begin;
    if (out.length !== length) throw new TypeError(`buffer for ${name} must be ${length} bytes, got ${out.length}`);
    if (this.crypto?.encryption.has(name) && engineName() === "native") {
      try {
        if (this.nativeTask(name, 0)) {
          await readTensorsInto([{ reader: this, name, offset: 0 }], { kind: "buffer", buffer: out });
          return;
        }
      } catch (err) {
        out.fill(0);
        throw err;
      }
    }
    const position = this.header.dataStart + t.begin;
    await openTensorInto({ crypto: this.crypto, deks: this.deks }, t, out, (buf) => readAll(this.fh, buf, position), NODE_TENSOR_CRYPTO);
  }

  /** Plaintext tensors that no signed digest covers (their bytes are not authenticated). */
  unauthenticatedTensors(): string[] {
    if (!this.crypto) return this.header.tensors.map((t) => t.name);
    return this.header.tensors.filter((t) => !this.crypto!.encryption.has(t.name) && !this.crypto!.digests?.has(t.name)).map((t) => t.name);
  }

  /** The open file descriptor (for the native engine, which maps the file). @internal */
  get fd(): number {
    return this.fh.fd;
  }

  /**
   * @internal How the native engine reads tensor `name` into `dstOffset` of its destination (without
   * the source index), or null when the JS path must (a plaintext tensor with a signed digest, or the
   * reference's empty v1 tensor). Throws what readTensorInto would throw before touching any data.
   */
  nativeTask(name: string, dstOffset: number): Omit<NativeTask, "source"> | null {
    const t = this.info(name);
    const length = t.end - t.begin;
    const srcOffset = this.header.dataStart + t.begin;
    const entry = this.crypto?.encryption.get(name);
    const base = { srcOffset, length, dstOffset, alg: this.crypto?.keys.encAlg ?? "aes256gcm", chunkBytes: 0 } as const;
    if (!entry) {
      if (this.crypto?.digests?.has(name)) return null;
      return { ...base, scheme: Scheme.Plain, key: new Uint8Array(0), iv: new Uint8Array(12), tags: new Uint8Array(0) };
    }
    const dek = this.deks.get(name);
    if (!dek) throw missingMasterKey();
    if (entry.scheme === "monolithic") {
      if (length === 0 && entry.iv.length === 0 && entry.tag.length === 0) return null;
      if (entry.iv.length !== 12 || entry.tag.length !== TAG_BYTES) throw decryptionFailed();
      return { ...base, scheme: Scheme.Monolithic, key: dek, iv: entry.iv, tags: entry.tag };
    }
    const chunk = this.crypto!.keys.chunkBytes!;
    if (length === 0 ? entry.baseIv.length !== 12 : entry.baseIv.length < 12) throw decryptionFailed();
    if (!counterFits(entry.baseIv, chunkCount(length, chunk))) {
      throw new CryptoTensorsError("ERR_CT_FORMAT", "chunk index overflowed the IV counter");
    }
    return {
      ...base,
      scheme: Scheme.Chunked,
      key: dek,
      iv: entry.baseIv,
      tags: entry.tags.subarray(0, TAG_BYTES * chunkCount(length, chunk)),
      chunkBytes: chunk,
    };
  }

  /** @internal Native jobs reading this file by fd: close() waits for them before closing the fd. */
  track<T>(job: Promise<T>): Promise<T> {
    this.inflight.add(job);
    const forget = () => this.inflight.delete(job);
    job.then(forget, forget);
    return job;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    for (const dek of this.deks.values()) dek.fill(0);
    this.deks.clear();
    await this.fh.close();
  }
}

const fsWriteAsync = promisify(fsWrite);

/** A full destination (ENOSPC, EDQUOT): ERR_CT_IO whose cause carries the errno code, so callers can tell it apart. */
function noSpaceError(name: string, cause?: NodeJS.ErrnoException): CryptoTensorsError {
  const errno = cause ?? Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC", syscall: "pwrite" });
  return new CryptoTensorsError("ERR_CT_IO", `no space left on the destination while writing tensor ${JSON.stringify(name)} (ENOSPC)`, {
    cause: errno,
  });
}

/** One tensor to place: `name` of `reader`, at byte `offset` of the destination. */
export interface TensorPlacement {
  reader: CryptoTensorsReader;
  name: string;
  offset: number;
}

/**
 * Reads (and decrypts) many tensors, possibly of several files, into one destination with the native
 * engine: all chunks of all tensors in one job on the thread pool, from the files into the destination
 * (a buffer is written in place; a file, e.g. a /dev/shm region, through pwrite). Tensors the native engine does not handle (plaintext with a signed digest) go through
 * readTensorInto. On failure the failing tensor's bytes are zeroed and the first failure (in the
 * given order) is thrown: ERR_CT_DECRYPTION_FAILED, ERR_CT_FORMAT, ERR_CT_INTEGRITY, ERR_CT_IO (a full
 * destination: with an ENOSPC cause).
 */
export async function readTensorsInto(items: readonly TensorPlacement[], dst: NativeDestination): Promise<void> {
  const fds: number[] = [];
  const tasks: NativeTask[] = [];
  const taskItems: TensorPlacement[] = [];
  const rest: TensorPlacement[] = [];
  for (const item of items) {
    const task = item.reader.nativeTask(item.name, item.offset);
    if (!task) {
      rest.push(item);
      continue;
    }
    let source = fds.indexOf(item.reader.fd);
    if (source < 0) source = fds.push(item.reader.fd) - 1;
    tasks.push({ ...task, source });
    taskItems.push(item);
  }
  if (tasks.length) {
    let statuses: Uint8Array;
    try {
      const job = runNative("decrypt", fds, dst, tasks);
      for (const reader of new Set(taskItems.map((i) => i.reader))) reader.track(job);
      statuses = await job;
    } catch (err) {
      throw new CryptoTensorsError("ERR_CT_IO", (err as Error).message, { cause: err });
    }
    const failed = statuses.findIndex((s) => s !== TaskStatus.Ok);
    if (failed >= 0) {
      if (dst.kind === "buffer") for (const t of tasks) dst.buffer.fill(0, t.dstOffset, t.dstOffset + t.length);
      const status = statuses[failed]!;
      if (status === TaskStatus.Auth) throw decryptionFailed();
      if (status === TaskStatus.Counter) throw new CryptoTensorsError("ERR_CT_FORMAT", "chunk index overflowed the IV counter");
      if (status === TaskStatus.NoSpace) throw noSpaceError(taskItems[failed]!.name);
      throw new CryptoTensorsError(
        "ERR_CT_IO",
        `native engine failed on tensor ${JSON.stringify(taskItems[failed]!.name)} (status ${status})`,
      );
    }
  }
  for (const item of rest) {
    const length = item.reader.info(item.name).end - item.reader.info(item.name).begin;
    if (dst.kind === "buffer") {
      await item.reader.readTensorInto(item.name, dst.buffer.subarray(item.offset, item.offset + length));
      continue;
    }
    const tmp = new Uint8Array(length);
    try {
      await item.reader.readTensorInto(item.name, tmp);
      let done = 0;
      while (done < length) {
        done += (
          await fsWriteAsync(dst.fd, tmp, done, length - done, item.offset + done).catch((err: NodeJS.ErrnoException) => {
            throw err.code === "ENOSPC" || err.code === "EDQUOT" ? noSpaceError(item.name, err) : err;
          })
        ).bytesWritten;
      }
    } finally {
      tmp.fill(0);
    }
  }
}
