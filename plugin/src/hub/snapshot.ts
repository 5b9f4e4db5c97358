// Resolves `org/name@revision` to a commit and brings (some of) that commit's files into the shared
// HF cache. The commit is what callers pin: a snapshot folder never changes once complete.
//
// Why not @huggingface/hub's snapshotDownload (checked against 2.17): it also resolves the revision to
// a commit once and downloads that commit, but through downloadFileToCacheDir, whose cache writes are
// unverified (download.ts says why that cannot serve). Beyond that, it always asks the Hub, even for
// a commit sha (no HF_HUB_OFFLINE: cache only), downloads every file of the repo (no include filter)
// one at a time, with a paths-info request for each file not yet in the snapshot and no progress
// callback, writes refs/<revision> in place (a concurrent reader can see it empty), and lists the repo
// without bounds on pages or entries (listing.ts bounds them). What the library does serve is used: modelInfo
// resolves the revision, listFiles lists the commit, downloadFile fetches the bytes.

import { stat } from "node:fs/promises";
import { modelInfo } from "@huggingface/hub";
import { CryptoTensorsError } from "../errors.js";
import { RepoCache } from "./cache.js";
import { downloadToCache, etagOf, sizeOfFile, type HubFile } from "./download.js";
import { hubError } from "./hub-error.js";
import { listCommitFiles } from "./listing.js";
import { COMMIT_SHA, type RepoRef } from "./repo-ref.js";
import { credentialsOf, type HubSettings } from "./settings.js";

export interface SnapshotProgress {
  /** Bytes to download in all (files already cached excluded). */
  totalBytes: number;
  doneBytes: number;
  /** The file being downloaded, if any. */
  file?: string;
}

export interface SnapshotOptions {
  /** Which files to fetch (all when absent). */
  include?: (path: string) => boolean;
  onProgress?: (p: SnapshotProgress) => void;
  /** A commit already resolved for `ref` (pinned by the caller): no resolution, and refs/ is left as it is. */
  commit?: string;
}

export interface Snapshot {
  repo: string;
  revision: string;
  commit: string;
  /** The snapshot folder: <cache>/models--org--name/snapshots/<commit> */
  path: string;
  /** Files of the commit present in the folder (the included ones). */
  files: string[];
  /** Files that were downloaded now (not already cached). */
  downloaded: string[];
}

/** The commit a revision points to now (asks the Hub unless the revision is a commit sha). */
export async function resolveRevision(ref: RepoRef, settings: HubSettings): Promise<string> {
  if (COMMIT_SHA.test(ref.revision)) return ref.revision;
  if (settings.offline) {
    const commit = await new RepoCache(settings.cacheDir, ref.repo).readRef(ref.revision);
    if (!commit) {
      throw new CryptoTensorsError(
        "ERR_CT_HUB",
        `HF_HUB_OFFLINE is set and the cache (${settings.cacheDir}) has no copy of ${ref.repo}@${ref.revision}: pull it first with network access (ctensors pull ${ref.repo}@${ref.revision})`,
      );
    }
    return commit;
  }
  let info: { sha?: string };
  try {
    info = await modelInfo({ name: ref.repo, revision: ref.revision, additionalFields: ["sha"], ...credentialsOf(settings) });
  } catch (err) {
    throw hubError(err, `resolving ${ref.repo}@${ref.revision}`, settings);
  }
  if (typeof info.sha !== "string" || !COMMIT_SHA.test(info.sha)) {
    throw new CryptoTensorsError("ERR_CT_HUB", `the Hub at ${settings.hubUrl} did not give a commit sha for ${ref.repo}@${ref.revision}`);
  }
  return info.sha;
}

/**
 * Brings `ref` into the cache and returns its snapshot. Offline (HF_HUB_OFFLINE=1): only what the
 * cache holds, no network call.
 * @throws ERR_CT_HUB, ERR_CT_INTEGRITY
 */
export async function fetchSnapshot(ref: RepoRef, settings: HubSettings, options: SnapshotOptions = {}): Promise<Snapshot> {
  const include = options.include ?? (() => true);
  const cache = new RepoCache(settings.cacheDir, ref.repo);
  const commit = options.commit ?? (await resolveRevision(ref, settings));
  if (settings.offline) {
    const files = (await cache.listSnapshot(commit)).filter(include);
    if (files.length === 0) {
      throw new CryptoTensorsError(
        "ERR_CT_HUB",
        `HF_HUB_OFFLINE is set and the cache (${settings.cacheDir}) holds no files of ${ref.repo}@${commit.slice(0, 12)}`,
      );
    }
    return { repo: ref.repo, revision: ref.revision, commit, path: cache.snapshotDir(commit), files, downloaded: [] };
  }
  const wanted = (await listCommitFiles(ref.repo, commit, settings)).filter((f) => include(f.path));
  for (const f of wanted) cache.snapshotPath(commit, f.path); // refuse odd names before writing anything
  const progress: SnapshotProgress = { totalBytes: 0, doneBytes: 0 };
  // One download per blob: files with the same content share it.
  const missing = new Map<string, HubFile>();
  for (const f of wanted) {
    const etag = etagOf(f);
    if (missing.has(etag)) continue;
    const { size } = await stat(cache.blobPath(etag)).catch(() => ({ size: -1 }));
    if (size !== sizeOfFile(f)) {
      missing.set(etag, f);
      progress.totalBytes += sizeOfFile(f);
    }
  }
  options.onProgress?.({ ...progress });
  const fetched = new Set<string>();
  // A few files at a time: shards are large, config files small.
  const queue = [...missing.values()];
  const worker = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const file = f;
      const got = await downloadToCache(cache, commit, file, settings, (n) => {
        progress.doneBytes += n;
        options.onProgress?.({ ...progress, file: file.path });
      });
      if (got) fetched.add(etagOf(file));
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, queue.length) }, worker));
  const downloaded = wanted.filter((f) => fetched.has(etagOf(f))).map((f) => f.path);
  for (const f of wanted) await cache.link(commit, f.path, etagOf(f));
  if (options.commit === undefined) await cache.writeRef(ref.revision, commit);
  return {
    repo: ref.repo,
    revision: ref.revision,
    commit,
    path: cache.snapshotDir(commit),
    files: wanted.map((f) => f.path).sort(),
    downloaded: downloaded.sort(),
  };
}
