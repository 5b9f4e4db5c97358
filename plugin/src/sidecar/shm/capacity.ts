// How much shared memory there is, and the one error for "not enough of it". Containers get a small
// /dev/shm unless told otherwise (Docker: 64 MB without --shm-size or --ipc=host; Kubernetes: the
// runtime's 64 MB unless an emptyDir with medium Memory is mounted there). A load that does not fit
// fails with ERR_CT_IO whose message states the bytes needed and free and how to give the container
// more, and whose cause carries ENOSPC (the gRPC status is then RESOURCE_EXHAUSTED: errors-to-status.ts).
// Every ENOSPC of the data plane (fallocate of a region, the native engine's or the JS path's writes)
// becomes this error, never a bare I/O status.

import { statfs } from "node:fs/promises";
import { CryptoTensorsError } from "../../index.js";
import { HUGETLBFS_MAGIC, hugePagesFree, type ShmFs } from "./shm-dir.js";

export interface ShmSpace {
  /** Bytes an unprivileged process may still allocate in the file system (f_bavail × f_bsize). */
  free: number;
  /** The file system's block size: tmpfs allocates whole pages (hugetlbfs whole huge pages), so regions are counted in these. */
  blockBytes: number;
}

/** Free space of the file system holding `dir` (statfs; a hugetlbfs mount without size= limit: the free huge pages). */
export async function shmSpace(dir: string): Promise<ShmSpace> {
  const st = await statfs(dir);
  if (st.type === HUGETLBFS_MAGIC && st.blocks === 0) return { free: await hugePagesFree(st.bsize), blockBytes: st.bsize };
  return { free: st.bavail * st.bsize, blockBytes: st.bsize || 4096 };
}

/** Whether `err` (or an error in its cause chain) is a full file system: ENOSPC or EDQUOT. */
export function isNoSpace(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 8; e = e.cause as typeof e, depth++) {
    if (e.code === "ENOSPC" || e.code === "EDQUOT") return true;
  }
  return false;
}

export interface ShmShortage {
  dir: string;
  /** The directory's file system (default tmpfs): the remedies differ for hugetlbfs. */
  fs?: ShmFs;
  mode: "resident" | "streaming";
  /** Bytes of shared memory this load needs at once. */
  needed: number;
  /** Bytes free when the load was planned. */
  free: number;
  /** What `needed` is for, when not the whole load (e.g. "its largest tensor"). */
  what?: string;
  /** RESIDENT: what a streaming load of the same tensors would need at least (its largest tensor). */
  streamingNeeds?: number;
  cause?: unknown;
}

const MiB = 1024 * 1024;

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** The size to suggest for --shm-size / sizeLimit: what is needed plus a quarter, in whole MiB, at least 64 MiB more than the need. */
export function suggestedShmBytes(needed: number): number {
  return Math.ceil((needed * 1.25 + 64 * MiB) / MiB) * MiB;
}

/**
 * The error for a load that does not fit in shared memory: ERR_CT_IO with the needed and free bytes
 * and the remedies; its cause is the ENOSPC (or one made up for a refusal up front).
 */
export function shmTooSmall(s: ShmShortage): CryptoTensorsError {
  const size = Math.ceil(suggestedShmBytes(s.needed) / MiB);
  const streaming =
    s.mode === "resident"
      ? s.streamingNeeds !== undefined && s.streamingNeeds <= s.free
        ? `, or load in streaming mode (it needs ${mib(s.streamingNeeds)} at least, which fits)`
        : ", or load in streaming mode (it needs room for the largest tensor only)"
      : "";
  const what = s.what ? ` for ${s.what}` : "";
  const remedy =
    s.fs === "hugetlbfs"
      ? `Reserve more huge pages (sysctl vm.nr_hugepages; on Kubernetes, a larger hugepages-2Mi request and limit for both containers), ` +
        `or serve from /dev/shm (--shm-dir)${streaming}.`
      : `Give the container more shared memory: docker run --shm-size=${size}m (or --ipc=host); on Kubernetes, mount an emptyDir ` +
        `with medium: Memory and sizeLimit: ${size}Mi at ${s.dir} in both containers${streaming}.`;
  const message = `shared memory is too small: this ${s.mode} load needs ${s.needed} bytes (${mib(s.needed)}) in ${s.dir}${what}, ${s.free} bytes (${mib(s.free)}) are free. ${remedy}`;
  const cause = s.cause ?? Object.assign(new Error("ENOSPC: not enough free space in shared memory"), { code: "ENOSPC" });
  return new CryptoTensorsError("ERR_CT_IO", message, { cause });
}
