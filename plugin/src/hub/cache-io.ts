// File-system failures while writing the Hub cache become ERR_CT_IO with the path and what to do
// (a file where a folder must go, a full disk, no permission), instead of an unexpected error.

import { lstat, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { CryptoTensorsError } from "../errors.js";

const REMEDY: Record<string, string> = {
  ENOTDIR: "a file is in the way of a folder of the cache: remove or rename it, or use another cache folder (--cache-dir or HF_HUB_CACHE)",
  EEXIST: "a file or folder of that name is in the way: remove or rename it, or use another cache folder (--cache-dir or HF_HUB_CACHE)",
  EISDIR: "a folder is in the way of a file of the cache: remove or rename it, or use another cache folder (--cache-dir or HF_HUB_CACHE)",
  ENOSPC: "the disk is full: free some space, or use a cache folder on another disk (--cache-dir or HF_HUB_CACHE)",
  EDQUOT: "the disk quota is exhausted: free some space, or use another cache folder (--cache-dir or HF_HUB_CACHE)",
  EACCES: "no permission to write there: fix the folder's permissions, or use another cache folder (--cache-dir or HF_HUB_CACHE)",
  EPERM: "no permission to write there: fix the folder's permissions, or use another cache folder (--cache-dir or HF_HUB_CACHE)",
  EROFS: "the file system is read-only: use another cache folder (--cache-dir or HF_HUB_CACHE)",
};

/** Runs a cache write; an errno failure becomes ERR_CT_IO naming `path`. Other errors pass through. */
export async function cacheIo<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (err instanceof CryptoTensorsError || typeof code !== "string" || !code.startsWith("E")) throw err;
    const remedy = REMEDY[code] ?? "check the cache folder, or use another one (--cache-dir or HF_HUB_CACHE)";
    const obstacle = code === "ENOTDIR" || code === "EEXIST" ? await inTheWay(path) : undefined;
    const where = obstacle ? ` (${obstacle} is not a folder)` : "";
    throw new CryptoTensorsError("ERR_CT_IO", `cannot write ${path} in the Hub cache: ${code}${where}; ${remedy}`, { cause: err });
  }
}

/** The nearest ancestor folder of `path` that exists as something other than a folder. */
async function inTheWay(path: string): Promise<string | undefined> {
  for (let p = dirname(path); p !== dirname(p); p = dirname(p)) {
    const st = await lstat(p).catch(() => undefined);
    if (st && !st.isDirectory()) return p;
  }
  return undefined;
}

export async function ensureDir(path: string): Promise<void> {
  await cacheIo(path, () => mkdir(path, { recursive: true }));
}
