// Encrypt and sign one plain safetensors file (docs/format.md §1–§4, §8), streaming tensor by tensor.

import { open, statfs, type FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import picomatch from "picomatch";
import { CryptoTensorsError, usageError } from "../errors.js";
import { quote } from "../format/printable.js";
import { checkChunkBytes, DEFAULT_CHUNK_BYTES } from "../crypto/chunked.js";
import { layoutTensors } from "../format/serialize.js";
import type { SafetensorsHeader, TensorInfo } from "../format/header.js";
import type { EncryptionKey, SigningKey } from "../keys/jwk.js";
import { withAtomicFile, writeAll } from "../io/files.js";
import { readHeader } from "./reader.js";
import { engineName, runNative, Scheme, TaskStatus, type NativeTask } from "../crypto/engine.js";
import { DEFAULT_POLICY, type Policy, type TensorCryptoEntry } from "./reserved.js";
import {
  buildSignedHeader,
  copyTensorData,
  encryptTensorData,
  keyRefOf,
  newTensorEntry,
  placeholderHeader,
  userMetadataForOutput,
  type CryptoLayout,
  type HeaderParts,
} from "./writer.js";

export interface EncryptOptions {
  key: EncryptionKey;
  signKey: SigningKey;
  /** Glob patterns (picomatch) of tensor names to encrypt; default all. Each pattern must match something. */
  tensors?: readonly string[] | undefined;
  /** 2 (chunked, default) or 1 (monolithic, for reference readers 0.2.0–0.2.2). */
  formatVersion?: 1 | 2 | undefined;
  /** v2 chunk size in bytes (default 2 MiB). */
  chunkBytes?: number | undefined;
  policy?: Policy | undefined;
  /** Sign SHA-256 digests of tensors left in plaintext so tampering is detected (default true). */
  plaintextDigests?: boolean | undefined;
  onProgress?: ((doneBytes: number, totalBytes: number) => void) | undefined;
  onWarning?: ((message: string) => void) | undefined;
}

export interface EncryptResult {
  tensors: number;
  encrypted: number;
  bytes: number;
}

/** Resolves tensor-name patterns; a pattern that matches nothing is an error (never a silent plaintext file). */
export function selectTensors(names: readonly string[], patterns: readonly string[] | undefined): Set<string> {
  if (!patterns || patterns.length === 0) return new Set(names);
  const selected = new Set<string>();
  for (const pattern of patterns) {
    const match = picomatch(pattern, { dot: true });
    const hits = names.filter((n) => n === pattern || match(n));
    if (hits.length === 0) throw usageError(`the tensor pattern ${quote(pattern)} matches no tensor`, "tensors");
    for (const h of hits) selected.add(h);
  }
  return selected;
}

/**
 * Encrypts `input` (plain safetensors) into `output` (CryptoTensors). The output appears only when complete.
 * @throws ERR_CT_USAGE for bad options; ERR_CT_FORMAT for a bad or already encrypted input; ERR_CT_KEY_INVALID; ERR_CT_IO
 */
/**
 * The checked layout of a new encryption (format version, chunk size, key references), shared by
 * safetensors files and ONNX containers.
 * @throws ERR_CT_USAGE for a bad version or chunk size, ERR_CT_KEY_INVALID for a public signing key
 */
export function encryptionLayout(options: EncryptOptions): CryptoLayout {
  const version = options.formatVersion ?? 2;
  if (version !== 1 && version !== 2) throw usageError(`format version must be 1 or 2, got ${version}`);
  const chunkBytes = version === 2 ? checkChunkBytes(options.chunkBytes ?? DEFAULT_CHUNK_BYTES) : undefined;
  if (!options.signKey.d)
    throw new CryptoTensorsError("ERR_CT_KEY_INVALID", 'the signing key has no private part ("d"): pass sign.jwk, not sign.pub.jwk');
  return {
    version: version === 2 ? "2" : "1",
    chunkBytes,
    enc: keyRefOf(options.key),
    sign: keyRefOf(options.signKey),
    alg: options.key.alg,
  };
}

export async function encryptFile(input: string, output: string, options: EncryptOptions): Promise<EncryptResult> {
  const plan = await planEncryption(input, options, encryptionLayout(options));
  const total = plan.header.dataBytes;
  let done = 0;
  const onBytes = (n: number) => {
    done += n;
    options.onProgress?.(done, total);
  };

  let src: FileHandle | undefined;
  try {
    src = await open(input, "r");
    const from = src;
    await withAtomicFile(output, 0o644, async (dst) => {
      const io: Streams = {
        src: from,
        dst,
        srcDataStart: plan.header.dataStart,
        dstDataStart: plan.placeholder.length,
        outputDir: dirname(resolve(output)),
      };
      const onNative =
        engineName() === "native" ? await encryptOnNativeEngine(io, nativeItemsOf(plan), plan.layout, onBytes) : new Set<string>();
      await writeRemainingTensors(io, plan, onNative, onBytes);
      await writeSignedHeader(dst, plan, options.signKey);
    });
  } finally {
    for (const dek of plan.deks.values()) dek.fill(0);
    await src?.close();
  }
  options.onProgress?.(total, total);
  return { tensors: plan.tensors.length, encrypted: plan.encryption.size, bytes: total };
}

/** Everything decided before a byte is written: the output's layout, fresh DEKs and entries, the header's fixed-size placeholder. */
interface EncryptPlan {
  header: SafetensorsHeader;
  /** The tensors in output order, with their output offsets. */
  tensors: TensorInfo[];
  layout: CryptoLayout;
  encryption: Map<string, TensorCryptoEntry>;
  deks: Map<string, Uint8Array>;
  /** Digests of the plaintext tensors (filled while copying), unless disabled. */
  digests: Map<string, Uint8Array> | undefined;
  parts: HeaderParts;
  placeholder: Uint8Array;
}

async function planEncryption(input: string, options: EncryptOptions, layout: CryptoLayout): Promise<EncryptPlan> {
  const { header, crypto } = await readHeader(input);
  if (crypto) throw new CryptoTensorsError("ERR_CT_FORMAT", `${input} is already encrypted: use rewrap to change keys, or decrypt first`);
  const selected = selectTensors(
    header.tensors.map((t) => t.name),
    options.tensors,
  );
  const tensors = layoutTensors(header.tensors);
  const empties = tensors.filter((t, i) => i > 0 && t.begin === t.end && tensors[i - 1]!.begin === tensors[i - 1]!.end);
  if (empties.length) {
    options.onWarning?.(
      `${input}: several zero-length tensors share one offset; the reference implementation may fail to verify this file at random`,
    );
  }
  const encryption = new Map<string, TensorCryptoEntry>();
  const deks = new Map<string, Uint8Array>();
  for (const t of tensors) {
    if (!selected.has(t.name)) continue;
    const { entry, dek } = newTensorEntry(layout, options.key.k, t.end - t.begin);
    encryption.set(t.name, entry);
    deks.set(t.name, dek);
  }
  const plain = tensors.filter((t) => !selected.has(t.name));
  const digests =
    plain.length && options.plaintextDigests !== false
      ? new Map<string, Uint8Array>(plain.map((t) => [t.name, new Uint8Array(32)]))
      : undefined;
  const parts: HeaderParts = {
    userMetadata: userMetadataForOutput(header.metadata),
    layout,
    encryption,
    policy: options.policy ?? DEFAULT_POLICY,
    digests,
    tensors,
  };
  return { header, tensors, layout, encryption, deks, digests, parts, placeholder: placeholderHeader(parts) };
}

/** Where tensor bytes come from and go: the input and the output, each with the offset where its data starts. */
interface Streams {
  src: FileHandle;
  dst: FileHandle;
  srcDataStart: number;
  dstDataStart: number;
  /** The output's folder (to tell a full disk from other write failures of the native engine). */
  outputDir: string;
}

/** One tensor for the native engine: its offsets relative to the data starts, its entry (tags filled in) and DEK. */
interface NativeItem {
  name: string;
  from: number;
  to: number;
  length: number;
  entry: TensorCryptoEntry;
  dek: Uint8Array;
}

/** The non-empty tensors to encrypt, in output order (empty ones are sealed by the JS path: no bytes to move). */
function nativeItemsOf(plan: EncryptPlan): NativeItem[] {
  return plan.tensors
    .filter((t) => plan.encryption.has(t.name) && t.end > t.begin)
    .map((t) => ({
      name: t.name,
      from: plan.header.byName.get(t.name)!.begin,
      to: t.begin,
      length: t.end - t.begin,
      entry: plan.encryption.get(t.name)!,
      dek: plan.deks.get(t.name)!,
    }));
}

/**
 * Encrypts the tensors the native engine did not take (all of them with the JS engine, the empty ones
 * otherwise) and copies the plaintext tensors, recording their SHA-256 digests.
 */
async function writeRemainingTensors(
  io: Streams,
  plan: EncryptPlan,
  done: ReadonlySet<string>,
  onBytes: (n: number) => void,
): Promise<void> {
  for (const t of plan.tensors) {
    if (done.has(t.name)) continue;
    const from = io.srcDataStart + plan.header.byName.get(t.name)!.begin;
    const to = io.dstDataStart + t.begin;
    const entry = plan.encryption.get(t.name);
    if (entry) {
      await encryptTensorData(
        io.src,
        from,
        io.dst,
        to,
        t.end - t.begin,
        plan.layout.alg,
        plan.deks.get(t.name)!,
        entry,
        plan.layout.chunkBytes,
        onBytes,
      );
    } else {
      const digest = await copyTensorData(io.src, from, io.dst, to, t.end - t.begin, onBytes);
      plan.digests?.set(t.name, digest);
    }
  }
}

/** Signs the header now that every tag and digest is known, and writes it over the placeholder of the same length. */
async function writeSignedHeader(dst: FileHandle, plan: EncryptPlan, signKey: SigningKey): Promise<void> {
  const real = buildSignedHeader(plan.parts, signKey);
  if (real.length !== plan.placeholder.length)
    throw new Error(`internal: header length changed (${plan.placeholder.length} → ${real.length})`);
  await writeAll(dst, real, 0);
}

/** Tensors per native job are grouped up to this many bytes, so that progress is reported as it goes. */
const NATIVE_JOB_BYTES = 1024 * 1024 * 1024;

/**
 * Encrypts the given (non-empty) tensors with the native engine: chunks (v2) or whole tensors (v1) on
 * the thread pool, read from the input, written with pwrite; fills each entry's tags. Jobs hold up to
 * NATIVE_JOB_BYTES. Returns the names of the tensors it wrote.
 */
async function encryptOnNativeEngine(
  io: Streams,
  items: readonly NativeItem[],
  layout: CryptoLayout,
  onBytes: (n: number) => void,
): Promise<Set<string>> {
  for (const job of jobsOf(items)) {
    await runEncryptJob(
      io,
      job.map((it) => nativeTaskOf(it, io, layout)),
    );
    onBytes(job.reduce((n, it) => n + it.length, 0));
  }
  return new Set(items.map((it) => it.name));
}

/** Consecutive groups of items of about NATIVE_JOB_BYTES each (so that progress is reported as it goes). */
function jobsOf(items: readonly NativeItem[]): NativeItem[][] {
  const jobs: NativeItem[][] = [];
  let bytes = Infinity;
  for (const it of items) {
    if (bytes >= NATIVE_JOB_BYTES) {
      jobs.push([]);
      bytes = 0;
    }
    jobs[jobs.length - 1]!.push(it);
    bytes += it.length;
  }
  return jobs;
}

function nativeTaskOf(it: NativeItem, io: Streams, layout: CryptoLayout): NativeTask {
  const e = it.entry;
  return {
    source: 0,
    srcOffset: io.srcDataStart + it.from,
    length: it.length,
    dstOffset: io.dstDataStart + it.to,
    alg: layout.alg,
    key: it.dek,
    ...(e.scheme === "monolithic"
      ? { scheme: Scheme.Monolithic, iv: e.iv, tags: e.tag, chunkBytes: 0 }
      : { scheme: Scheme.Chunked, iv: e.baseIv, tags: e.tags, chunkBytes: layout.chunkBytes ?? DEFAULT_CHUNK_BYTES }),
  };
}

/**
 * Runs one native encryption job. A failed write is reported with an errno code (ENOSPC when the
 * output's file system is full, EIO otherwise) so that withAtomicFile names the path and a remedy.
 */
async function runEncryptJob(io: Streams, tasks: NativeTask[]): Promise<void> {
  const statuses = await runNative("encrypt", [io.src.fd], { kind: "file", fd: io.dst.fd, bytes: 0 }, tasks).catch((err: Error) => {
    throw new CryptoTensorsError("ERR_CT_IO", err.message, { cause: err });
  });
  const bad = statuses.findIndex((s) => s !== TaskStatus.Ok);
  if (bad < 0) return;
  if (statuses[bad] === TaskStatus.NoSpace) {
    throw Object.assign(new Error("the native engine could not write the output"), { code: "ENOSPC" });
  }
  if (statuses[bad] === TaskStatus.Io) {
    throw Object.assign(new Error("the native engine could not write the output"), {
      code: (await isFull(io.outputDir)) ? "ENOSPC" : "EIO",
    });
  }
  throw new CryptoTensorsError("ERR_CT_IO", `native encryption failed (status ${statuses[bad]})`);
}

/** Whether the file system holding `dir` has no room left for a 1 MiB write (the native engine reports no errno). */
async function isFull(dir: string): Promise<boolean> {
  const fs = await statfs(dir).catch(() => null);
  return fs !== null && fs.bavail * fs.bsize < 1024 * 1024;
}
