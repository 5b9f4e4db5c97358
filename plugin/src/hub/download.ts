// Downloads one Hub file into the cache, verified: the bytes must have the size the Hub listed and
// hash to its object id (sha256 for LFS files, the git blob sha1 for the others). A download goes to
// blobs/<etag>.incomplete and is renamed into place only once verified, so an interrupted download
// never leaves a bad blob: the next run resumes the .incomplete file with a Range request (and starts
// over once if the resumed file does not verify).

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import { downloadFile } from "@huggingface/hub";
import { CryptoTensorsError } from "../errors.js";
import type { RepoCache } from "./cache.js";
import { hubError } from "./hub-error.js";
import { credentialsOf, type HubSettings } from "./settings.js";

/** A file as the Hub lists it (the fields of a tree entry that matter here). */
export interface HubFile {
  path: string;
  size: number;
  /** git blob sha1 */
  oid: string;
  lfs?: { oid: string; size: number };
}

export function etagOf(file: HubFile): string {
  return file.lfs ? file.lfs.oid : file.oid;
}

function newHash(file: HubFile): Hash {
  const size = file.lfs?.size ?? file.size;
  if (file.lfs) return createHash("sha256");
  return createHash("sha1").update(`blob ${size}\0`);
}

async function sizeOf(path: string): Promise<number | undefined> {
  return stat(path).then((s) => s.size, () => undefined);
}

async function hashExisting(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/**
 * Makes `blobs/<etag>` hold `file` of `commit`, downloading what is missing.
 * @param onBytes called with the number of bytes received since the last call
 * @returns whether anything was downloaded
 * @throws ERR_CT_HUB (the Hub failed or refused), ERR_CT_INTEGRITY (bytes do not match the listing)
 */
export async function downloadToCache(
  cache: RepoCache,
  commit: string,
  file: HubFile,
  settings: HubSettings,
  onBytes: (n: number) => void = () => {},
): Promise<boolean> {
  const blob = cache.blobPath(etagOf(file));
  const size = file.lfs?.size ?? file.size;
  if ((await sizeOf(blob)) === size) return false;
  await mkdir(dirname(blob), { recursive: true });
  const incomplete = `${blob}.incomplete`;
  for (let attempt = 0; ; attempt++) {
    let have = (await sizeOf(incomplete)) ?? 0;
    if (have > size || attempt > 0) {
      await rm(incomplete, { force: true });
      have = 0;
    }
    const hash = newHash(file);
    if (have > 0) {
      await hashExisting(incomplete, hash);
      onBytes(have);
    }
    await fetchInto(incomplete, have, size, file, commit, cache.repo, settings, hash, onBytes);
    const got = hash.digest("hex");
    const want = etagOf(file);
    const gotSize = (await sizeOf(incomplete)) ?? 0;
    if (got === want && gotSize === size) {
      await rename(incomplete, blob);
      return true;
    }
    if (have > 0 && attempt === 0) continue; // the resumed part was bad: start over once
    await rm(incomplete, { force: true });
    throw new CryptoTensorsError(
      "ERR_CT_INTEGRITY",
      `downloaded ${file.path} of ${cache.repo}@${commit.slice(0, 12)} does not match the Hub's listing ` +
        `(expected ${size} bytes with ${file.lfs ? "sha256" : "git oid"} ${want}, got ${gotSize} bytes with ${got}); nothing was kept`,
    );
  }
}

async function fetchInto(
  path: string, from: number, size: number, file: HubFile, commit: string, repo: string,
  settings: HubSettings, hash: Hash, onBytes: (n: number) => void,
): Promise<void> {
  if (from === size) return;
  let body: ReadableStream<Uint8Array>;
  try {
    const blob = await downloadFile({ repo, path: file.path, revision: commit, ...credentialsOf(settings) });
    if (!blob) throw new CryptoTensorsError("ERR_CT_HUB", `${file.path} is listed in ${repo}@${commit.slice(0, 12)} but the Hub does not serve it`);
    if (blob.size !== size) {
      throw new CryptoTensorsError("ERR_CT_INTEGRITY", `the Hub serves ${file.path} of ${repo} with ${blob.size} bytes but lists ${size}`);
    }
    body = (from > 0 ? blob.slice(from) : blob).stream() as ReadableStream<Uint8Array>;
  } catch (err) {
    throw hubError(err, `downloading ${file.path} of ${repo}`, settings.hubUrl);
  }
  const fd = await open(path, from > 0 ? "a" : "w", 0o644);
  try {
    for await (const chunk of Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>)) {
      const bytes = chunk as Uint8Array;
      hash.update(bytes);
      await fd.write(bytes);
      onBytes(bytes.length);
    }
  } catch (err) {
    throw hubError(err, `downloading ${file.path} of ${repo}`, settings.hubUrl);
  } finally {
    await fd.close();
  }
}
