// `ctensors push` progress: one multi-bar for hashing and uploading however many files the Hub client
// works on at once, and phases in words (never the client's internal event names).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createPushProgress } from "../src/cli/push-progress.js";
import { tempDir } from "./helpers.js";

const dir = tempDir("ct-pushprog-");
const sizes = { "a.safetensors": 1_000_000, "b.safetensors": 2_000_000, "c.safetensors": 3_000_000 };
for (const [name, size] of Object.entries(sizes)) writeFileSync(join(dir, name), Buffer.alloc(size));

/** A terminal stand-in: collects what is written. */
function terminal(): Writable & { text: string; isTTY: boolean; columns: number } {
  const t = new Writable({
    write(chunk, _enc, cb) {
      t.text += String(chunk);
      cb();
    },
  }) as Writable & { text: string; isTTY: boolean; columns: number };
  t.text = "";
  t.isTTY = true;
  t.columns = 120;
  return t;
}

function run(bars: boolean) {
  const stream = terminal();
  const lines: string[] = [];
  const p = createPushProgress({ dir, bars, say: (l) => lines.push(l), stream });
  p.onEvent({ kind: "checked", files: 5, bytes: 6_000_000, encrypted: 3, plaintext: [] });
  p.onEvent({ kind: "phase", phase: "preuploading" });
  // Three files hashed concurrently, in small steps, interleaved.
  for (let i = 1; i <= 100; i++)
    for (const path of Object.keys(sizes)) p.onEvent({ kind: "file", path, progress: i / 100, state: "hashing" });
  p.onEvent({ kind: "phase", phase: "uploadingLargeFiles" });
  for (let i = 1; i <= 100; i++)
    for (const path of Object.keys(sizes)) p.onEvent({ kind: "file", path, progress: i / 100, state: "uploading" });
  p.onEvent({ kind: "phase", phase: "committing" });
  p.stop();
  return { out: stream.text, lines };
}

describe("push progress", () => {
  it("draws one hashing and one uploading bar in a terminal, in a handful of lines", () => {
    const { out, lines } = run(true);
    expect(lines[0]).toBe("push: 5 files, 6.0 MB; 3 encrypted weight file(s)");
    expect(out).toMatch(/hashing +\|[^|]*\| 100% 6\.0 MB\/6\.0 MB/);
    expect(out).toMatch(/uploading \|[^|]*\| 100% 6\.0 MB\/6\.0 MB/);
    expect(out).toContain("uploading the large (LFS) files");
    expect(out).not.toContain("uploadingLargeFiles");
    expect(out.split("\n").length).toBeLessThan(12); // 600 events, redrawn in place
  });

  it("prints only the phases, in words, without a terminal", () => {
    const { out, lines } = run(false);
    expect(out).toBe("");
    expect(lines).toEqual([
      "push: 5 files, 6.0 MB; 3 encrypted weight file(s)",
      "push: checking which files the Hub already has…",
      "push: uploading the large (LFS) files…",
      "push: committing…",
    ]);
  });
});
