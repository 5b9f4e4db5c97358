// The names the sidecar has put in /dev/shm and not yet removed (regions before the client mapped
// them, the liveness socket): all removed when the process exits, however it exits short of SIGKILL
// (an uncaught exception included), which the next sidecar's sweep covers (sweep.ts).

import { unlinkSync } from "node:fs";

const live = new Set<string>();
let exitHookInstalled = false;

/** Unlinks `path`, ignoring a name that is already gone. */
export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Records `path` to be unlinked at process exit. */
export function unlinkAtExit(path: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const p of live) unlinkQuietly(p);
    });
  }
  live.add(path);
}

/** Unlinks `path` now and forgets it. */
export function unlinkNow(path: string): void {
  live.delete(path);
  unlinkQuietly(path);
}
