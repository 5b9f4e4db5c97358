// Encrypt and sign one plain safetensors file (docs/format.md §1–§4, §8), streaming tensor by tensor.

import { open, type FileHandle } from "node:fs/promises";
import picomatch from "picomatch";
import { CryptoTensorsError, usageError } from "../errors.js";
import { quote } from "../format/printable.js";
import { checkChunkBytes, DEFAULT_CHUNK_BYTES } from "../crypto/chunked.js";
import { layoutTensors } from "../format/serialize.js";
import type { EncryptionKey, SigningKey } from "../keys/jwk.js";
import { withAtomicFile, writeAll } from "../io/files.js";
import { readHeader } from "./reader.js";
import { engineName, runNative, Scheme, TaskStatus, type NativeTask } from "../crypto/engine.js";
import type { AeadAlgorithm } from "../crypto/aead.js";
import { DEFAULT_POLICY, type Policy, type TensorCryptoEntry } from "./reserved.js";
import {
  buildSignedHeader, copyTensorData, encryptTensorData, keyRefOf, newTensorEntry, placeholderHeader,
  userMetadataForOutput, type CryptoLayout, type HeaderParts,
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
export async function encryptFile(input: string, output: string, options: EncryptOptions): Promise<EncryptResult> {
  const version = options.formatVersion ?? 2;
  if (version !== 1 && version !== 2) throw usageError(`format version must be 1 or 2, got ${version}`);
  const chunkBytes = version === 2 ? (options.chunkBytes ?? DEFAULT_CHUNK_BYTES) : undefined;
  if (chunkBytes !== undefined) checkChunkBytes(chunkBytes);
  if (!options.signKey.d) throw new CryptoTensorsError("ERR_CT_KEY_INVALID", "the signing key has no private part (\"d\"): pass sign.jwk, not sign.pub.jwk");

  const { header, crypto } = await readHeader(input);
  if (crypto) throw new CryptoTensorsError("ERR_CT_FORMAT", `${input} is already encrypted: use rewrap to change keys, or decrypt first`);

  const selected = selectTensors(header.tensors.map((t) => t.name), options.tensors);
  const tensors = layoutTensors(header.tensors);
  const empties = tensors.filter((t, i) => i > 0 && t.begin === t.end && tensors[i - 1]!.begin === tensors[i - 1]!.end);
  if (empties.length) {
    options.onWarning?.(`${input}: several zero-length tensors share one offset; the reference implementation may fail to verify this file at random`);
  }
  const layout: CryptoLayout = { version: version === 2 ? "2" : "1", chunkBytes, enc: keyRefOf(options.key), sign: keyRefOf(options.signKey), alg: options.key.alg };

  const encryption = new Map<string, TensorCryptoEntry>();
  const deks = new Map<string, Uint8Array>();
  for (const t of tensors) {
    if (!selected.has(t.name)) continue;
    const { entry, dek } = newTensorEntry(layout, options.key.k, t.end - t.begin);
    encryption.set(t.name, entry);
    deks.set(t.name, dek);
  }
  const plain = tensors.filter((t) => !selected.has(t.name));
  const digests = plain.length && options.plaintextDigests !== false ? new Map<string, Uint8Array>(plain.map((t) => [t.name, new Uint8Array(32)])) : undefined;
  const parts: HeaderParts = { userMetadata: userMetadataForOutput(header.metadata), layout, encryption, policy: options.policy ?? DEFAULT_POLICY, digests, tensors };
  const placeholder = placeholderHeader(parts);
  const total = header.dataBytes;
  let done = 0;
  const onBytes = (n: number) => { done += n; options.onProgress?.(done, total); };

  let src: FileHandle | undefined;
  try {
    src = await open(input, "r");
    await withAtomicFile(output, 0o644, async (dst) => {
      const dataStart = placeholder.length;
      const nativeDone = engineName() === "native"
        ? await encryptNative(src!, dst, header.dataStart, dataStart, tensors.filter((t) => encryption.has(t.name) && t.end > t.begin).map((t) => ({
          from: header.byName.get(t.name)!.begin, to: t.begin, length: t.end - t.begin, entry: encryption.get(t.name)!, dek: deks.get(t.name)!,
        })), layout.alg, chunkBytes, onBytes)
        : false;
      for (const t of tensors) {
        const from = header.dataStart + header.byName.get(t.name)!.begin;
        const entry = encryption.get(t.name);
        if (entry && nativeDone && t.end > t.begin) continue;
        if (entry) {
          await encryptTensorData(src!, from, dst, dataStart + t.begin, t.end - t.begin, layout.alg, deks.get(t.name)!, entry, chunkBytes, onBytes);
        } else {
          const digest = await copyTensorData(src!, from, dst, dataStart + t.begin, t.end - t.begin, onBytes);
          digests?.set(t.name, digest);
        }
      }
      const real = buildSignedHeader(parts, options.signKey);
      if (real.length !== placeholder.length) throw new Error(`internal: header length changed (${placeholder.length} → ${real.length})`);
      await writeAll(dst, real, 0);
    });
  } finally {
    for (const dek of deks.values()) dek.fill(0);
    await src?.close();
  }
  options.onProgress?.(total, total);
  return { tensors: tensors.length, encrypted: encryption.size, bytes: total };
}

/** Tensors per native job are grouped up to this many bytes, so that progress is reported as it goes. */
const NATIVE_JOB_BYTES = 1024 * 1024 * 1024;

/**
 * Encrypts the given (non-empty) tensors with the native engine: chunks (v2) or whole tensors (v1) on
 * the thread pool, read from a mapping of the input, written with pwrite; fills each entry's tags.
 * Returns true (the caller then skips these tensors).
 */
async function encryptNative(
  src: FileHandle, dst: FileHandle, srcDataStart: number, dstDataStart: number,
  items: { from: number; to: number; length: number; entry: TensorCryptoEntry; dek: Uint8Array }[],
  alg: AeadAlgorithm, chunkBytes: number | undefined, onBytes: (n: number) => void,
): Promise<boolean> {
  let group: NativeTask[] = [];
  let groupBytes = 0;
  const flush = async () => {
    if (!group.length) return;
    const statuses = await runNative("encrypt", [src.fd], { kind: "file", fd: dst.fd, bytes: 0 }, group).catch((err: Error) => {
      throw new CryptoTensorsError("ERR_CT_IO", err.message, { cause: err });
    });
    const bad = statuses.findIndex((s) => s !== TaskStatus.Ok);
    if (bad >= 0) throw new CryptoTensorsError("ERR_CT_IO", `native encryption failed (status ${statuses[bad]})`);
    onBytes(groupBytes);
    group = [];
    groupBytes = 0;
  };
  for (const it of items) {
    const e = it.entry;
    group.push({
      source: 0, srcOffset: srcDataStart + it.from, length: it.length, dstOffset: dstDataStart + it.to, alg, key: it.dek,
      ...(e.scheme === "monolithic"
        ? { scheme: Scheme.Monolithic, iv: e.iv, tags: e.tag, chunkBytes: 0 }
        : { scheme: Scheme.Chunked, iv: e.baseIv, tags: e.tags, chunkBytes: chunkBytes ?? DEFAULT_CHUNK_BYTES }),
    });
    groupBytes += it.length;
    if (groupBytes >= NATIVE_JOB_BYTES) await flush();
  }
  await flush();
  return true;
}
