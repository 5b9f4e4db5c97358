// The README's command-line quick start runs as written (with `npx ctensors` = this checkout's CLI)
// on a tiny model folder: every command of the block, in order, in a fresh folder.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, tempDir, VENV_PYTHON } from "../../plugin/test/helpers.js";

/** The fenced blocks of a Markdown file with their info string. */
function fencedBlocks(markdown: string): { lang: string; body: string }[] {
  const out: { lang: string; body: string }[] = [];
  const re = /^```([^\n`]*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) out.push({ lang: m[1]!.trim(), body: m[2]! });
  return out;
}

describe("README quick start", () => {
  it("runs every command of the block as written", () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    const block = fencedBlocks(readme).find((b) => b.lang === "bash" && b.body.includes("ctensors keygen --out keys --kid"));
    expect(block, "the quick-start block").toBeDefined();
    const dir = tempDir("ct-readme-");
    const made = spawnSync(VENV_PYTHON, [join(REPO_ROOT, "scripts", "make_tiny_model.py"), join(dir, "my-model")], { encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    const script = `set -euo pipefail\nctensors() { node ${JSON.stringify(CLI)} "$@"; }\nnpx() { "$@"; }\n${block!.body}`;
    const r = spawnSync("bash", ["-c", script], { cwd: dir, encoding: "utf8", timeout: 300_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const out of ["my-model-encrypted", "my-model-plain", "my-model-rotated", "new/enc.jwk"])
      expect(existsSync(join(dir, out)), out).toBe(true);
  });
});
