// Which AEAD engine moves tensor bytes: "native" (plugin/native: OpenSSL EVP on a thread pool, all
// chunks of many tensors in one job, 256 KiB pieces through per-thread buffers, no tensor-sized
// buffer) or "js" (node:crypto, one tensor at a time through a buffer). Both produce the same bytes and the same errors; the native one is used when
// it was built (npm run build), unless CTENSORS_ENGINE=js. CTENSORS_ENGINE=native makes a missing
// addon an error instead of a silent fallback. CTENSORS_THREADS sets the native pool size
// (default: the available parallelism, at most 16).

import { availableParallelism, constants as osConstants } from "node:os";
import { getSystemErrorName } from "node:util";
import { CryptoTensorsError } from "../errors.js";
import { quote } from "../format/printable.js";
import { BUILD_HINT, loadNativeAddon } from "../native-addon.js";
import type { AeadAlgorithm } from "./aead.js";

export type EngineName = "js" | "native";

interface NativeModule {
  run(
    op: number,
    sourceFds: Int32Array,
    dstKind: number,
    dst: number | Uint8Array,
    dstBytes: number,
    tasks: Float64Array,
    keys: Uint8Array,
    ivs: Uint8Array,
    tags: Uint8Array,
    threads: number,
    populate: number,
  ): Promise<Uint8Array>;
  reserve(fd: number, bytes: number): Promise<number>;
  opensslVersion(): string;
}

let loaded: { module: NativeModule | null; error: string | null } | undefined;
let warned = false;

function load(): { module: NativeModule | null; error: string | null } {
  if (!loaded) {
    const { addon, error } = loadNativeAddon();
    loaded = { module: addon as NativeModule | null, error };
  }
  return loaded;
}

/** The engine in use now (reads CTENSORS_ENGINE each time, so tests can switch). */
export function engineName(): EngineName {
  const forced = process.env.CTENSORS_ENGINE;
  if (forced === "js") return "js";
  if (forced !== undefined && forced !== "" && forced !== "native" && forced !== "auto") {
    throw new CryptoTensorsError("ERR_CT_USAGE", `CTENSORS_ENGINE must be js, native or auto, got ${quote(forced)}`);
  }
  const { module, error } = load();
  if (module) return "native";
  if (forced === "native") {
    throw new CryptoTensorsError(
      "ERR_CT_UNSUPPORTED",
      `CTENSORS_ENGINE=native but the native engine is not available (${error}); ${BUILD_HINT}`,
    );
  }
  if (!warned) {
    warned = true;
    process.stderr.write(
      `ctensors: the native engine did not load (${error}); using the slower JS engine. To fix, ${BUILD_HINT}; CTENSORS_ENGINE=js silences this\n`,
    );
  }
  return "js";
}

export function nativeThreads(): number {
  const env = Number(process.env.CTENSORS_THREADS);
  if (Number.isInteger(env) && env > 0) return Math.min(env, 64);
  return Math.min(availableParallelism(), 16);
}

export enum Scheme {
  Plain = 0,
  Monolithic = 1,
  Chunked = 2,
}
export const ALG_ID: Record<AeadAlgorithm, number> = { aes256gcm: 0, aes128gcm: 1, chacha20poly1305: 2 };

/** One tensor's bytes: [srcOffset, srcOffset+length) of source `source` → dstOffset of the destination. */
export interface NativeTask {
  source: number;
  srcOffset: number;
  length: number;
  dstOffset: number;
  scheme: Scheme;
  alg: AeadAlgorithm;
  key: Uint8Array;
  /** 12 bytes: the v1 iv or the v2 base iv (ignored for Plain). */
  iv: Uint8Array;
  /** Decrypt: the tag(s) to check. Encrypt: filled with the tag(s) produced. (16 bytes per chunk; 16 for v1.) */
  tags: Uint8Array;
  chunkBytes: number;
}

export type NativeDestination =
  /** Memory of this process: written in place. */
  | { kind: "buffer"; buffer: Uint8Array }
  /**
   * A file of `bytes` bytes (0: unbounded), e.g. a /dev/shm region or an output file: written with
   * pwrite from a small per-thread buffer (default), or, with `map` (a hugetlbfs region, which takes no
   * pwrite) or CTENSORS_NATIVE_DST=map and `bytes` > 0, mapped shared and written in place.
   * bench/RESULTS.md has the measurements behind the default.
   */
  | { kind: "file"; fd: number; bytes: number; map?: boolean };

/** NoSpace: a write failed with ENOSPC or EDQUOT (a full /dev/shm or disk); Io: any other read or write error. */
export enum TaskStatus {
  Ok = 0,
  Auth = 1,
  Io = 2,
  Counter = 3,
  Internal = 4,
  NoSpace = 5,
}

/** Float64 fields per task row: source, srcOffset, length, dstOffset, scheme, alg, chunkBytes, key offset, tag offset. */
export const TASK_FIELDS = 9;

/**
 * Runs one job on the native engine; resolves with one status per task. Failed decrypt tasks have
 * their destination zeroed. Rejects only when the job could not start (a mapping failed).
 */
export async function runNative(
  op: "decrypt" | "encrypt",
  sources: readonly number[],
  dst: NativeDestination,
  tasks: readonly NativeTask[],
): Promise<Uint8Array> {
  const { module } = load();
  if (!module) throw new CryptoTensorsError("ERR_CT_UNSUPPORTED", "the native engine is not available");
  const fields = new Float64Array(tasks.length * TASK_FIELDS);
  const keyBytes = tasks.reduce((s, t) => s + (t.scheme === Scheme.Plain ? 0 : t.key.length), 0);
  const tagBytes = tasks.reduce((s, t) => s + (t.scheme === Scheme.Plain ? 0 : t.tags.length), 0);
  const keys = new Uint8Array(keyBytes);
  const ivs = new Uint8Array(12 * tasks.length);
  const tags = new Uint8Array(tagBytes);
  let k = 0;
  let g = 0;
  tasks.forEach((t, i) => {
    const plain = t.scheme === Scheme.Plain;
    fields.set([t.source, t.srcOffset, t.length, t.dstOffset, t.scheme, ALG_ID[t.alg], t.chunkBytes, k, g], i * TASK_FIELDS);
    if (plain) return;
    keys.set(t.key, k);
    k += t.key.length;
    ivs.set(t.iv.subarray(0, 12), 12 * i);
    tags.set(t.tags, g);
    g += t.tags.length;
  });
  try {
    const dstArg = dst.kind === "buffer" ? dst.buffer : dst.fd;
    const dstBytes = dst.kind === "file" ? dst.bytes : dst.buffer.length;
    const mapped = dst.kind === "file" && dst.bytes > 0 && (dst.map === true || process.env.CTENSORS_NATIVE_DST === "map");
    const kind = dst.kind === "buffer" ? 0 : mapped ? 1 : 2;
    // Sources are read with pread into a per-thread buffer unless CTENSORS_NATIVE_SRC=map.
    // CTENSORS_NATIVE_POPULATE=0: no MADV_POPULATE_WRITE of a mapped region or of a fresh buffer's pages.
    const flags = (process.env.CTENSORS_NATIVE_POPULATE === "0" ? 0 : 1) | (process.env.CTENSORS_NATIVE_SRC === "map" ? 0 : 2);
    const statuses = await module.run(
      op === "decrypt" ? 0 : 1,
      Int32Array.from(sources),
      kind,
      dstArg,
      dstBytes,
      fields,
      keys,
      ivs,
      tags,
      nativeThreads(),
      flags,
    );
    if (op === "encrypt") {
      g = 0;
      for (const t of tasks) {
        if (t.scheme === Scheme.Plain) continue;
        t.tags.set(tags.subarray(g, g + t.tags.length));
        g += t.tags.length;
      }
    }
    return statuses;
  } finally {
    keys.fill(0);
  }
}

/**
 * Allocates the first `bytes` bytes of the file behind `fd` now (fallocate, off the event loop), so
 * that a full file system (a small /dev/shm) fails here, with ENOSPC, and never later mid-write or as
 * a SIGBUS in a mapping of the file. Returns false when it cannot (the JS engine is in use, or the
 * file system does not allocate ahead): writes then report a full file system themselves.
 * @throws an errno error (`code` "ENOSPC", "EDQUOT", ...) when the file system refuses
 */
export async function reserveFileSpace(fd: number, bytes: number): Promise<boolean> {
  if (bytes <= 0 || engineName() !== "native") return false;
  const errno = await load().module!.reserve(fd, bytes);
  if (errno === 0) return true;
  if (errno === osConstants.errno.EOPNOTSUPP) return false;
  const code = getSystemErrorName(-errno);
  throw Object.assign(new Error(`fallocate of ${bytes} bytes failed: ${code}`), { code, errno: -errno, syscall: "fallocate" });
}
