// The directory that holds the sidecar's regions, checked once at start: it must be a RAM file system,
// so that plaintext never reaches a disk whatever the operator passes. Two kinds are accepted:
// - tmpfs (/dev/shm, the default; Kubernetes emptyDir medium: Memory): 4 KiB pages, allocated by the
//   kernel one by one as a region is reserved;
// - hugetlbfs (a mount of reserved huge pages; Kubernetes emptyDir medium: HugePages): 2 MiB (or 1 GiB)
//   pages taken from the host's reserved pool, so a region costs a few hundred page allocations instead
//   of hundreds of thousands (bench/RESULTS.md, section main: the tmpfs page work is most of a load's
//   kernel time). hugetlbfs files accept no write(): regions there are written through a mapping, which
//   needs the native engine, and their sizes are whole huge pages.
// Anything else (a disk, an overlay, NFS, ramfs without limits) is refused with ERR_CT_USAGE.

import { readFile, statfs } from "node:fs/promises";
import { CryptoTensorsError } from "../../index.js";

/** statfs f_type of tmpfs and hugetlbfs (linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;
export const HUGETLBFS_MAGIC = 0x958458f6;

export type ShmFs = "tmpfs" | "hugetlbfs";

export interface ShmDirInfo {
  dir: string;
  fs: ShmFs;
  /** The file system's page size: 4096 on tmpfs, the huge page size on hugetlbfs. Regions are whole pages. */
  pageBytes: number;
}

/** A tmpfs: 4 KiB pages (what /dev/shm is unless a host says otherwise). */
export const TMPFS_KIND = { fs: "tmpfs", pageBytes: 4096 } as const satisfies Omit<ShmDirInfo, "dir">;

/** What the directory `dir` is; ERR_CT_USAGE unless tmpfs or hugetlbfs, ERR_CT_IO when it cannot be examined. */
export async function probeShmDir(dir: string): Promise<ShmDirInfo> {
  let st: Awaited<ReturnType<typeof statfs>>;
  try {
    st = await statfs(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new CryptoTensorsError("ERR_CT_IO", `cannot use ${dir} for shared-memory regions: ${code}`, { cause: err });
  }
  if (st.type === TMPFS_MAGIC) return { dir, ...TMPFS_KIND };
  if (st.type === HUGETLBFS_MAGIC) return { dir, fs: "hugetlbfs", pageBytes: st.bsize };
  throw new CryptoTensorsError(
    "ERR_CT_USAGE",
    `${dir} is not a tmpfs or hugetlbfs mount (file system type 0x${st.type.toString(16)}): decrypted tensors must stay in memory, ` +
      "never on a disk; use /dev/shm, another tmpfs, or a hugetlbfs mount",
    { option: "shm-dir" },
  );
}

/**
 * Free bytes of huge pages of `pageBytes` that a new file can still take: the pool's free pages less
 * those already promised to mappings (sysfs free_hugepages − resv_hugepages). Used for a hugetlbfs
 * mount without a size= limit, whose statfs reports no blocks. A cgroup limit below it (Kubernetes'
 * hugepages-2Mi) is met at the region's fallocate as ENOSPC, which becomes the sizing error.
 */
export async function hugePagesFree(pageBytes: number): Promise<number> {
  const base = `/sys/kernel/mm/hugepages/hugepages-${pageBytes / 1024}kB`;
  const read = async (name: string) => Number.parseInt(await readFile(`${base}/${name}`, "utf8"), 10);
  const [free, reserved] = await Promise.all([read("free_hugepages"), read("resv_hugepages")]);
  return Math.max(0, free - reserved) * pageBytes;
}

/** A hugetlbfs mount the regions could use instead of a tmpfs: where it is and how much of its page size is free. */
export interface HugePagesOffer {
  mount: string;
  pageBytes: number;
  freeBytes: number;
}

/** Mount points of hugetlbfs in a /proc/mounts text, with their page size (the pagesize= option; 2 MiB when absent). */
export function hugetlbfsMounts(mounts: string): { mount: string; pageBytes: number }[] {
  const units: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
  return mounts
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f[2] === "hugetlbfs" && f[1])
    .map((f) => {
      const size = /(?:^|,)pagesize=(\d+)([KMG])?/.exec(f[3] ?? "");
      const pageBytes = size ? Number(size[1]) * (units[size[2] ?? ""] ?? 1) : 2 * 1024 ** 2;
      return { mount: f[1]!.replace(/\\040/g, " "), pageBytes };
    });
}

/**
 * The first hugetlbfs mount with free huge pages, when the regions are on a tmpfs (for the start-up
 * hint: the operator reserved huge pages that `--shm-dir` could use). Undefined when there is none.
 */
export async function hugePagesOffer(): Promise<HugePagesOffer | undefined> {
  const mounts = hugetlbfsMounts(await readFile("/proc/self/mounts", "utf8").catch(() => ""));
  for (const m of mounts) {
    const freeBytes = await hugePagesFree(m.pageBytes).catch(() => 0);
    if (freeBytes > 0) return { ...m, freeBytes };
  }
  return undefined;
}
