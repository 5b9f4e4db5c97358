// Partial downloads in the cache's blobs/ folder. Each download writes to a file of its own,
//   blobs/<etag>.<host>-<pid>.incomplete        (<host>: 8 hex digits of a hash of the host name)
// and renames it to blobs/<etag> once verified. The rename is atomic and the content of a blob is fixed
// by its name, so any number of downloads of one blob (in this process or in others, on this host or
// on others sharing the cache) are safe without a lock: each writes only its own file, the last rename
// wins with the same bytes, and a reader never sees a partial blob.
//
// Why not a cross-process lock: Node has no flock(), and a lock file taken with O_EXCL needs breaking
// when its holder dies; POSIX has no atomic "delete this file if it is still the stale one", so two
// processes breaking one stale lock at once can both end up holding it and write one shared file. With
// a file per download, the price of concurrency is only bandwidth (two processes pulling the same
// blob at the same moment both fetch it), never a corrupt or missing file.
//
// Resume: a partial whose owner is gone (same host, pid no longer running, for example after Ctrl-C
// or kill -9) is adopted by the next download of that blob by renaming it to the new owner's name;
// the rename is atomic, so exactly one download adopts it. A partial of a live process or of another
// host is never touched. `<etag>.incomplete`, the name the Python client uses under its own flock,
// is left alone for the same reason.

import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const HOST_TAG = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
const SUFFIX = ".incomplete";

/** The partial file of a blob written by process `pid` of this host (this process by default). */
export function partialPath(blob: string, pid = process.pid): string {
  return `${blob}.${HOST_TAG}-${pid}${SUFFIX}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

/** Partials of `blob` left by processes of this host that are no longer running, largest first. */
async function orphans(blob: string): Promise<string[]> {
  const prefix = `${basename(blob)}.${HOST_TAG}-`;
  const names = await readdir(dirname(blob)).catch(() => [] as string[]);
  const found: Array<{ path: string; size: number }> = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(SUFFIX)) continue;
    const pid = Number(name.slice(prefix.length, -SUFFIX.length));
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    const path = join(dirname(blob), name);
    const size = await stat(path).then(
      (s) => s.size,
      () => -1,
    );
    if (size >= 0) found.push({ path, size });
  }
  return found.sort((a, b) => b.size - a.size).map((f) => f.path);
}

/**
 * This process's partial file for `blob`, adopting the largest orphaned one when this process has none
 * yet (so that an interrupted download resumes). Other orphans of the blob are removed.
 */
export async function claimPartial(blob: string): Promise<string> {
  const mine = partialPath(blob);
  let have = await stat(mine).then(
    () => true,
    () => false,
  );
  for (const orphan of await orphans(blob)) {
    if (!have) {
      have = await rename(orphan, mine).then(
        () => true,
        () => false,
      ); // another download may adopt it first
    } else {
      await rm(orphan, { force: true });
    }
  }
  return mine;
}
