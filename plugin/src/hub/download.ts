// Downloads one Hub file into the cache, verified: the bytes must have the size the Hub listed and
// hash to its object id (sha256 for LFS files, the git blob sha1 for the others). A download writes to
// a partial file of its own (see partial.ts) and renames it to blobs/<etag> only once verified, so a
// failed or interrupted download never leaves a bad blob, and concurrent downloads of one blob (two
// files with the same content, two processes pulling the same repo) never share a file.
//
// A hostile or broken Hub cannot fill the disk: reading stops as soon as a response goes past the
// listed size. A connection that drops mid-file is resumed with a Range request (a few times); an
// interrupted run leaves its partial file, which the next run adopts and resumes. A resumed file that
// does not verify is started over once.
//
// Why not @huggingface/hub's downloadFileToCacheDir (checked against 2.17): the HTTP side is the
// library's here too (downloadFile: credentials, Xet, Range through Blob.slice), but its cache step
// loses every guarantee above. It pipes the response into blobs/<etag>.incomplete and renames that to
// the blob with no size or hash check, so a truncated or altered download becomes a blob every later
// reader trusts; every writer of a blob uses that same .incomplete name, so two processes filling one
// blob write into one file; it truncates a leftover .incomplete instead of resuming it with a Range
// request, and a dropped connection fails the download; it reads whatever the server sends, with no
// stop at the listed size; and it logs each download with console.debug, which Node writes to stdout,
// where `ctensors pull --json` prints its result. The tests of these guarantees: test/hub/hub.test.ts,
// test/hub/hub-faults.test.ts, plugin/test/hub-units.test.ts.

import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { downloadFile } from "@huggingface/hub";
import { CryptoTensorsError } from "../errors.js";
import type { RepoCache } from "./cache.js";
import { cacheIo, ensureDir } from "./cache-io.js";
import { hubError } from "./hub-error.js";
import { claimPartial } from "./partial.js";
import { credentialsOf, type HubSettings } from "./settings.js";

/** A file as the Hub lists it (the fields of a tree entry that matter here). */
export interface HubFile {
  path: string;
  size: number;
  /** git blob sha1 */
  oid: string;
  lfs?: { oid: string; size: number };
}

/** How many times a dropped connection is resumed within one download. */
export const MAX_RESUMES = 3;

export function etagOf(file: HubFile): string {
  return file.lfs ? file.lfs.oid : file.oid;
}

export function sizeOfFile(file: HubFile): number {
  return file.lfs?.size ?? file.size;
}

function newHash(file: HubFile): Hash {
  if (file.lfs) return createHash("sha256");
  return createHash("sha1").update(`blob ${file.size}\0`);
}

async function sizeOf(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.size,
    () => undefined,
  );
}

async function hashExisting(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/** The connection ended before the listed size: worth resuming. */
class Dropped extends Error {}

// One download per blob in this process: two listed files with the same content, or two callers
// (sidecar clients) opening the same repo, wait for the same download.
const inFlight = new Map<string, Promise<boolean>>();

/**
 * Makes `blobs/<etag>` hold `file` of `commit`, downloading what is missing.
 * @param onBytes called with the number of bytes received since the last call
 * @returns whether anything was downloaded (by this call or by one it joined)
 * @throws ERR_CT_HUB (the Hub failed or refused), ERR_CT_INTEGRITY (bytes do not match the listing),
 *   ERR_CT_IO (the cache folder cannot be written)
 */
export async function downloadToCache(
  cache: RepoCache,
  commit: string,
  file: HubFile,
  settings: HubSettings,
  onBytes: (n: number) => void = () => {},
): Promise<boolean> {
  const blob = cache.blobPath(etagOf(file));
  if ((await sizeOf(blob)) === sizeOfFile(file)) return false;
  const running = inFlight.get(blob);
  if (running) return running;
  const job = download(cache, blob, commit, file, settings, onBytes).finally(() => inFlight.delete(blob));
  inFlight.set(blob, job);
  return job;
}

async function download(
  cache: RepoCache,
  blob: string,
  commit: string,
  file: HubFile,
  settings: HubSettings,
  onBytes: (n: number) => void,
): Promise<boolean> {
  const size = sizeOfFile(file);
  const want = etagOf(file);
  await ensureDir(cache.blobsDir());
  const partial = await cacheIo(blob, () => claimPartial(blob));
  let restarted = false;
  let resumes = 0;
  // Progress counts each byte of the file once, whatever is resumed or started over.
  let credited = 0;
  const reach = (position: number) => {
    if (position > credited) onBytes(position - credited);
    credited = Math.max(credited, position);
  };
  for (;;) {
    let have = (await sizeOf(partial)) ?? 0;
    if (have > size) {
      await rm(partial, { force: true });
      have = 0;
    }
    const hash = newHash(file);
    if (have > 0) await hashExisting(partial, hash);
    let position = have;
    reach(position);
    try {
      await fetchInto(partial, have, size, file, commit, cache.repo, settings, hash, (n) => {
        position += n;
        reach(position);
      });
    } catch (err) {
      if (err instanceof Dropped && resumes < MAX_RESUMES) {
        resumes++;
        continue; // resume from what arrived
      }
      if (err instanceof Dropped) {
        throw new CryptoTensorsError(
          "ERR_CT_HUB",
          `downloading ${file.path} of ${cache.repo} from ${settings.hubUrl} failed: ${err.message} (${resumes + 1} tries); ` +
            "what arrived is kept out of the cache and the next run resumes it",
          { cause: err },
        );
      }
      // A Hub that refused or could not be reached leaves what arrived to resume; bad bytes do not.
      const resumable = err instanceof CryptoTensorsError && err.code === "ERR_CT_HUB" && ((await sizeOf(partial)) ?? 0) > 0;
      if (!resumable) await rm(partial, { force: true });
      throw err;
    }
    const got = hash.digest("hex");
    const gotSize = (await sizeOf(partial)) ?? 0;
    if (got === want && gotSize === size) {
      await cacheIo(blob, () => rename(partial, blob));
      return true;
    }
    await rm(partial, { force: true });
    if (have > 0 && !restarted) {
      restarted = true; // the resumed part was bad: start over once
      continue;
    }
    throw new CryptoTensorsError(
      "ERR_CT_INTEGRITY",
      `downloaded ${file.path} of ${cache.repo}@${commit.slice(0, 12)} does not match the Hub's listing ` +
        `(expected ${size} bytes with ${file.lfs ? "sha256" : "git oid"} ${want}, got ${gotSize} bytes with ${got}); nothing was kept`,
    );
  }
}

/**
 * Appends bytes `from`..`size` of the file to `path` (created even when there is nothing to fetch),
 * hashing them. Reading stops at the listed size.
 * @throws Dropped when the connection ends early; ERR_CT_INTEGRITY when the Hub sends more than listed
 */
async function fetchInto(
  path: string,
  from: number,
  size: number,
  file: HubFile,
  commit: string,
  repo: string,
  settings: HubSettings,
  hash: Hash,
  onBytes: (n: number) => void,
): Promise<void> {
  const fd = await cacheIo(path, () => open(path, from > 0 ? "a" : "w", 0o644));
  try {
    if (from === size) return;
    let body: ReadableStream<Uint8Array>;
    try {
      const blob = await downloadFile({ repo, path: file.path, revision: commit, ...credentialsOf(settings) });
      if (!blob)
        throw new CryptoTensorsError(
          "ERR_CT_HUB",
          `${file.path} is listed in ${repo}@${commit.slice(0, 12)} but the Hub does not serve it`,
        );
      if (blob.size !== size) {
        throw new CryptoTensorsError(
          "ERR_CT_INTEGRITY",
          `the Hub serves ${file.path} of ${repo} with ${blob.size} bytes but lists ${size}`,
        );
      }
      body = (from > 0 ? blob.slice(from) : blob).stream() as ReadableStream<Uint8Array>;
    } catch (err) {
      throw hubError(err, `downloading ${file.path} of ${repo}`, settings);
    }
    const expected = size - from;
    let received = 0;
    const stream = Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>);
    try {
      for await (const chunk of stream) {
        const bytes = chunk as Uint8Array;
        received += bytes.length;
        if (received > expected) {
          // Leaving the loop destroys the stream, which cancels the response: nothing more is read.
          throw new CryptoTensorsError(
            "ERR_CT_INTEGRITY",
            `the Hub sent more than the ${size} bytes it lists for ${file.path} of ${repo}@${commit.slice(0, 12)}; the download was stopped and nothing was kept`,
          );
        }
        hash.update(bytes);
        await cacheIo(path, () => fd.write(bytes));
        onBytes(bytes.length);
      }
    } catch (err) {
      if (err instanceof CryptoTensorsError) throw err;
      const code = (err as { cause?: { code?: string }; code?: string })?.cause?.code ?? (err as { code?: string })?.code;
      throw new Dropped(`the connection dropped after ${from + received} of ${size} bytes${code ? ` (${code})` : ""}`, { cause: err });
    }
    if (received < expected) throw new Dropped(`the response ended after ${from + received} of ${size} bytes`);
  } finally {
    await fd.close();
  }
}
