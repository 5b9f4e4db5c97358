// The registry of temporaries that exist by name while an output is being written (hidden staging
// folders, and named temporary files where unnamed ones are not available). The CLI removes them all
// when a signal ends it (cli/signals.ts); everything else removes its own on success or failure.

import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** A fresh hidden name beside `target`: `.NAME.<random>.<suffix>` (same folder, so same file system: rename works). */
export function hiddenSibling(target: string, suffix: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString("hex")}.${suffix}`);
}

const live = new Set<string>();

/** Records `path` as a temporary to remove if the process is interrupted; call the result once it is gone or renamed. */
export function trackTemporary(path: string): () => void {
  live.add(path);
  return () => {
    live.delete(path);
  };
}

/** Removes every tracked temporary now (synchronously: called from a signal handler just before exit). */
export function removeTemporariesSync(): void {
  for (const path of live) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // best effort: the process is ending; nothing else can be done about it
    }
    live.delete(path);
  }
}

/** Paths tracked now (for tests and diagnostics). */
export function trackedTemporaries(): string[] {
  return [...live];
}
