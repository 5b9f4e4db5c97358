// The Hugging Face cache layout, shared with the Hub's Python and JavaScript clients:
//   <cache>/models--org--name/blobs/<etag>             file contents (etag: LFS sha256, else git blob sha1)
//   <cache>/models--org--name/snapshots/<commit>/<path> relative symlinks to ../../blobs/<etag>
//   <cache>/models--org--name/refs/<revision>          the commit a branch or tag pointed to when last resolved
// Files are only ever added under blobs/ by rename of a complete, verified download. Every file is written
// under a temporary name of its own and renamed into place, so concurrent writers (in one process or
// several) never share a file. Failures to write become ERR_CT_IO (cache-io.ts).
//
// Why not @huggingface/hub's cache writing (its createSymlink and the refs write in snapshotDownload,
// checked against 2.17): it replaces a snapshot entry by removing it and then creating the link, so a
// concurrent reader (the sidecar, another pull) can find the entry missing, where a rename here swaps
// it in one step; and it writes refs/<revision> in place, where a reader can see it empty. The layout
// itself is the library's (and huggingface_hub's): same folder names, relative links, refs. Its
// getRepoFolderName could replace repoFolderName (repo-ref.ts), a one-line rule, to no gain.

import { randomBytes } from "node:crypto";
import { readFile, readdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { CryptoTensorsError } from "../errors.js";
import { cacheIo, ensureDir } from "./cache-io.js";
import { COMMIT_SHA, repoFolderName } from "./repo-ref.js";
import { quote } from "../format/printable.js";

export class RepoCache {
  readonly root: string;

  constructor(
    cacheDir: string,
    readonly repo: string,
  ) {
    this.root = join(cacheDir, repoFolderName(repo));
  }

  blobsDir(): string {
    return join(this.root, "blobs");
  }

  blobPath(etag: string): string {
    if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(etag))
      throw new CryptoTensorsError("ERR_CT_HUB", `the Hub gave an invalid object id ${quote(etag)} for a file of ${this.repo}`);
    return join(this.blobsDir(), etag);
  }

  snapshotDir(commit: string): string {
    return join(this.root, "snapshots", commit);
  }

  /** The file's path in a snapshot. @throws ERR_CT_HUB for a path that would leave the snapshot */
  snapshotPath(commit: string, path: string): string {
    const parts = path.split("/");
    if (!path || path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\\") || p.includes("\0"))) {
      throw new CryptoTensorsError("ERR_CT_HUB", `refusing the Hub file name ${quote(path)} of ${this.repo}: not a plain relative path`);
    }
    return join(this.snapshotDir(commit), ...parts);
  }

  /** Points the snapshot entry at a blob (replacing what was there). */
  async link(commit: string, path: string, etag: string): Promise<string> {
    const pointer = this.snapshotPath(commit, path);
    await ensureDir(dirname(pointer));
    const tmp = tempName(pointer);
    try {
      await cacheIo(pointer, () => symlink(relative(dirname(pointer), this.blobPath(etag)), tmp));
      await cacheIo(pointer, () => rename(tmp, pointer));
    } finally {
      await rm(tmp, { force: true });
    }
    return pointer;
  }

  /** The commit recorded for a revision, or undefined. */
  async readRef(revision: string): Promise<string | undefined> {
    if (COMMIT_SHA.test(revision)) return revision;
    try {
      const commit = (await readFile(join(this.root, "refs", revision), "utf8")).trim();
      return COMMIT_SHA.test(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (COMMIT_SHA.test(revision)) return;
    const path = join(this.root, "refs", revision);
    await ensureDir(dirname(path));
    const tmp = tempName(path);
    try {
      await cacheIo(path, () => writeFile(tmp, commit));
      await cacheIo(path, () => rename(tmp, path));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Every file path (relative, `/`-separated) of a cached snapshot. */
  async listSnapshot(commit: string): Promise<string[]> {
    const root = this.snapshotDir(commit);
    const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isFile() || e.isSymbolicLink())
      .map((e) =>
        relative(root, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
          .split("\\")
          .join("/"),
      )
      .sort();
  }
}

/** A temporary name beside `path`, unique to one write. */
function tempName(path: string): string {
  return `${path}.${process.pid}-${randomBytes(6).toString("hex")}.tmp`;
}
