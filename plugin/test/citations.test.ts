// Code, comments, tests and docs refer only to things inside the repository: no absolute path of one
// machine, no document that lives elsewhere, every `§N.M` citation names a section of docs/format.md that
// exists (and its `item K` a numbered item of that section), every repository path they name exists, and
// every relative Markdown link resolves inside the repository. `§` citations of RFCs ("RFC 8439 §2.8") are
// the only other ones allowed.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./helpers.js";

const SKIP_DIRS = new Set([
  ".git",
  "node_modules",
  "dist",
  "build",
  ".venv",
  ".venv-vllm",
  "test-output",
  "__pycache__",
  ".pytest_cache",
  ".mypy_cache",
  ".ruff_cache",
  "fixtures",
]);
const TEXT = new Set([
  ".ts",
  ".mts",
  ".cts",
  ".js",
  ".mjs",
  ".cjs",
  ".py",
  ".pyi",
  ".c",
  ".h",
  ".md",
  ".proto",
  ".toml",
  ".txt",
  ".yml",
  ".yaml",
  ".sh",
  ".html",
  ".json",
  ".cfg",
  ".ini",
]);
const SKIP_FILES = new Set(["package-lock.json"]);

function textFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || name === ".git") continue;
    if (st.isDirectory()) {
      if (!SKIP_DIRS.has(name) && !name.startsWith(".venv")) textFiles(path, out);
    } else if (st.isFile() && TEXT.has(extname(name)) && !SKIP_FILES.has(name) && st.size < 2_000_000) {
      out.push(path);
    }
  }
  return out;
}

const FILES = textFiles(REPO_ROOT).map((path) => ({ path, rel: relative(REPO_ROOT, path), text: readFileSync(path, "utf8") }));
const FORMAT = readFileSync(join(REPO_ROOT, "docs", "format.md"), "utf8");

/** Section number → its text (up to the next heading of the same or a higher level). */
function sections(md: string): Map<string, string> {
  const out = new Map<string, string>();
  const heads = [...md.matchAll(/^(#{2,4}) (\d+(?:\.\d+)*)\.? /gm)];
  heads.forEach((h, i) => {
    const level = h[1]!.length;
    const next = heads.slice(i + 1).find((n) => n[1]!.length <= level);
    out.set(h[2]!, md.slice(h.index!, next?.index ?? md.length));
  });
  return out;
}
const SECTIONS = sections(FORMAT);

interface Hit {
  file: string;
  line: number;
  text: string;
}
function hits(re: RegExp, filter: (m: RegExpMatchArray, f: (typeof FILES)[number]) => boolean = () => true): Hit[] {
  const out: Hit[] = [];
  for (const f of FILES) {
    for (const m of f.text.matchAll(re)) {
      if (!filter(m, f)) continue;
      out.push({ file: f.rel, line: f.text.slice(0, m.index).split("\n").length, text: m[0] });
    }
  }
  return out;
}

describe("citations stay inside the repository", () => {
  it("scans the tree (sanity)", () => {
    expect(FILES.length).toBeGreaterThan(100);
    expect(FILES.some((f) => f.rel === join("docs", "format.md"))).toBe(true);
    expect(SECTIONS.size).toBeGreaterThan(30);
  });

  it("no absolute path of a machine and no document kept outside the repository", () => {
    // Built from pieces so that this file does not match itself.
    const outside = new RegExp(
      ["/" + "work/", "/" + "home/", "/" + "Users/", "shared/" + "docs", "cryptotensors-" + "format", "research " + "notes"]
        .map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"))
        .join("|"),
      "g",
    );
    expect(hits(outside)).toEqual([]);
  });

  it("every § citation names an existing section of docs/format.md (RFC sections aside)", () => {
    const bad = hits(/§(\d+(?:\.\d+)*)/g, (m, f) => {
      const before = f.text.slice(Math.max(0, m.index! - 40), m.index);
      if (/RFC \d+(?: Appendix [A-Z.\d]+)?[ ,]*$/.test(before)) return false;
      return !SECTIONS.has(m[1]!);
    });
    expect(bad).toEqual([]);
  });

  it("every `§N item K` names an existing numbered item", () => {
    const bad = hits(/§(\d+(?:\.\d+)*) items? (\d+)/g, (m) => {
      const body = SECTIONS.get(m[1]!);
      return !body || !new RegExp(`^\\s*${m[2]}\\. `, "m").test(body);
    });
    expect(bad).toEqual([]);
  });

  it("repository paths named in code, comments and docs exist", () => {
    const roots = ["docs", "plugin", "python-shim", "test", "scripts", "proto", "bench", "demo"].join("|");
    const re = new RegExp(`(?<![\\w./-])(?:${roots})/[\\w./-]*\\w\\.(?:md|ts|mjs|js|py|proto|c|json|sh)\\b`, "g");
    // A path may be written from the repository root or from its package's root (python-shim/scripts/…).
    const bases = [REPO_ROOT, ...["plugin", "sidecar", "python-shim"].map((p) => join(REPO_ROOT, p))];
    const bad = hits(re, (m) => !bases.some((b) => existsSync(join(b, m[0]))));
    expect(bad).toEqual([]);
  });

  it("relative Markdown links resolve inside the repository", () => {
    const bad: Hit[] = [];
    for (const f of FILES.filter((x) => x.rel.endsWith(".md"))) {
      for (const m of f.text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split("#")[0]!;
        if (!target || /^[a-z]+:/i.test(target)) continue;
        const abs = resolve(dirname(f.path), decodeURIComponent(target));
        if (!abs.startsWith(REPO_ROOT + sep) || !existsSync(abs))
          bad.push({ file: f.rel, line: f.text.slice(0, m.index).split("\n").length, text: m[0] });
      }
    }
    expect(bad).toEqual([]);
  });
});
