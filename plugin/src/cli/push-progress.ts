// What `ctensors push` shows while it works: one multi-bar (cli-progress) with a "hashing" and an
// "uploading" bar over the folder's bytes, fed by the per-file events of the Hub client (which hashes
// and uploads several files at once), and each phase in words. Without a terminal (or with --quiet)
// only the phase lines are printed.

import { statSync } from "node:fs";
import { join } from "node:path";
import cliProgress from "cli-progress";
import type { PushEvent } from "../hub/push.js";
import { printable } from "../format/printable.js";

/** The Hub client's phases, as a user reads them. */
export const PHASE_WORDS: Record<string, string> = {
  preuploading: "checking which files the Hub already has",
  uploadingLargeFiles: "uploading the large (LFS) files",
  committing: "committing",
};

export interface PushProgressOptions {
  dir: string;
  /** Bars only when true (a terminal, not --quiet); lines otherwise. */
  bars: boolean;
  /** A line for the user (stderr); nothing when quiet. */
  say: (line: string) => void;
  stream?: NodeJS.WritableStream;
}

export interface PushProgress {
  onEvent(e: PushEvent): void;
  stop(): void;
}

export function createPushProgress(o: PushProgressOptions): PushProgress {
  let multi: cliProgress.MultiBar | undefined;
  const bars = new Map<"hashing" | "uploading", cliProgress.SingleBar>();
  const done = { hashing: new Map<string, number>(), uploading: new Map<string, number>() };
  const sizes = new Map<string, number>();
  let total = 0;
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const sizeOf = (path: string) => {
    if (!sizes.has(path)) {
      let size = 0;
      try {
        size = statSync(join(o.dir, path)).size;
      } catch {
        // a file push generates (README.md, cryptotensors.json): small, not on disk
      }
      sizes.set(path, size);
    }
    return sizes.get(path)!;
  };
  const show = (line: string) => {
    if (!multi) return o.say(line);
    multi.log(`${line}\n`);
    multi.update(); // draws the line above the bars now, not at the next timer tick
  };
  return {
    onEvent(e) {
      if (e.kind === "checked") {
        total = e.bytes;
        o.say(
          `push: ${e.files} files, ${mb(e.bytes)}; ${e.encrypted} encrypted weight file(s)${e.plaintext.length ? `, plaintext: ${printable(e.plaintext.join(", "))}` : ""}`,
        );
        if (o.bars) {
          multi = new cliProgress.MultiBar(
            {
              stream: o.stream ?? process.stderr,
              format: "{label} |{bar}| {percentage}% {done}/{size}",
              hideCursor: true,
              clearOnComplete: false,
              forceRedraw: false,
            },
            cliProgress.Presets.shades_classic,
          );
          for (const state of ["hashing", "uploading"] as const) {
            bars.set(state, multi.create(Math.max(total, 1), 0, { label: state.padEnd(9), done: mb(0), size: mb(total) }));
          }
        }
      } else if (e.kind === "phase") {
        show(`push: ${PHASE_WORDS[e.phase] ?? e.phase}…`);
      } else if (e.kind === "file" && e.state !== "error") {
        const byFile = done[e.state];
        byFile.set(e.path, Math.round(Math.min(Math.max(e.progress, 0), 1) * sizeOf(e.path)));
        let sum = 0;
        for (const n of byFile.values()) sum += n;
        bars.get(e.state)?.update(Math.min(sum, Math.max(total, 1)), { done: mb(sum), size: mb(total) });
      }
    },
    stop() {
      multi?.stop();
      multi = undefined;
    },
  };
}
