// Docs that run: every shell and Python block of README.md and docs/*.md runs, in page order, as a
// reader would follow the page (one scratch folder and one environment per page; `ctensors` is this
// checkout's CLI, `python` the repository's .venv with this checkout's package). A block that exits
// non-zero fails its test, named by page and line, with the end of its output. Blocks that cannot run
// here carry a `docs-test: skip` marker with the reason; the test lists them, and so does
// test/docs/README.md (the marker convention is described there and in blocks.ts).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DocBlock, extractBlocks } from "./blocks.js";
import { DocSession, REPO_ROOT, VENV_PYTHON } from "./session.js";

const PAGES = [
  "README.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
];
const pages = PAGES.map((page) => ({ page, blocks: extractBlocks(readFileSync(join(REPO_ROOT, page), "utf8"), page) }));
const skipped = pages.flatMap(({ blocks }) => blocks.filter((b) => b.kind === "skip"));

// One tiny Llama folder for every page's setup steps (`$DOCS_TINY_MODEL`; copied, never changed).
const shared = mkdtempSync(join(tmpdir(), "ct-docs-shared-"));
const TINY_MODEL = join(shared, "tiny-llama");
beforeAll(() => {
  const made = spawnSync(VENV_PYTHON, [join(REPO_ROOT, "scripts", "make_tiny_model.py"), TINY_MODEL], {
    encoding: "utf8",
    timeout: 120_000,
  });
  if (made.status !== 0) throw new Error(`scripts/make_tiny_model.py failed: ${made.stderr}`);
}, 130_000);
afterAll(() => rmSync(shared, { recursive: true, force: true }));

function title(b: DocBlock): string {
  if (b.kind === "setup") return `${b.doc}:${b.line} hidden setup`;
  return `${b.doc}:${b.line} ${b.info}${b.kind === "background" ? " (background)" : ""}`;
}

describe("the docs' code blocks", () => {
  it("every fence names its language (a command block is sh/bash/console/python, an output sample text)", () => {
    const unnamed = pages.flatMap(({ blocks }) => blocks.filter((b) => b.info === "").map((b) => `${b.doc}:${b.line}`));
    expect(unnamed).toEqual([]);
  });

  it("test/docs/README.md lists every page's skipped blocks and why", () => {
    const listed = readFileSync(join(import.meta.dirname, "README.md"), "utf8");
    const missing = skipped.filter((b) => !listed.includes(`| ${b.doc} | ${b.reason} |`)).map((b) => `| ${b.doc} | ${b.reason} |`);
    expect(missing, "rows to add to the table in test/docs/README.md").toEqual([]);
    const rows = [...listed.matchAll(/^\| ((?:README\.md|docs\/\S+\.md)) \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    const stale = rows.filter(([doc, reason]) => !skipped.some((b) => b.doc === doc && b.reason === reason)).map((r) => r.join(": "));
    expect(stale, "rows of test/docs/README.md that no marker has any more").toEqual([]);
  });

  afterAll(() => {
    const lines = skipped.map((b) => `  ${b.doc}:${b.line} (${b.info}): ${b.reason}`);
    console.log(`docs blocks not run here (${skipped.length}):\n${lines.join("\n")}`);
  });
});

for (const { page, blocks } of pages) {
  const steps = blocks.filter((b) => b.kind !== "text" && b.kind !== "file");
  if (steps.length === 0) continue;
  describe(page, () => {
    let session: DocSession | undefined;
    let failedAt: string | undefined;
    beforeAll(() => {
      session = new DocSession(page, { DOCS_TINY_MODEL: TINY_MODEL });
      for (const b of blocks) if (b.kind === "file") session.writeFile(b);
    });
    afterAll(async () => {
      await session?.close();
    }, 30_000);
    for (const b of steps) {
      if (b.kind === "skip") {
        it.skip(`${title(b)}: not run (${b.reason})`, () => {});
        continue;
      }
      const timeoutMs = ((b.timeoutS ?? 120) + 15) * 1000;
      it(
        title(b),
        async () => {
          if (failedAt) throw new Error(`not run: the page's block at ${failedAt} failed, and this one follows it`);
          try {
            await session!.run(b);
          } catch (err) {
            failedAt = `${b.doc}:${b.line}`;
            throw err;
          }
        },
        timeoutMs,
      );
    }
  });
}
