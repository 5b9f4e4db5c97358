// The code blocks of a Markdown page, as the docs test runs them (see test/docs/README.md).
//
// A fenced block's info string names its language. Shell (sh, bash, shell, console) and Python
// (python, py) blocks run; every other language (text, ts, js, rego, hcl, …) is read, not run. An
// HTML comment on the line right before a fence, invisible to a reader, changes what happens to it:
//   <!-- docs-test: skip reason="needs a GPU" -->       not run; the reason is listed by the test
//   <!-- docs-test: background ready="CMD" -->          a server: started, CMD polled until it exits 0,
//                                                      killed when the page ends
//   <!-- docs-test: file="app.mjs" -->                  the block is written to that file before the page runs
//   <!-- docs-test: timeout=300 -->                     seconds (default 120); combines with the others
// A comment of its own holds a hidden setup step, run in order like a shell block:
//   <!-- docs-test: setup
//   python "$DOCS_REPO/scripts/make_tiny_model.py" my-model
//   -->

export type BlockLang = "shell" | "python";

export interface DocBlock {
  /** The page, relative to the repository root. */
  doc: string;
  /** 1-based line of the opening fence (of the comment, for a setup step). */
  line: number;
  /** The info string's first word ("" when the fence has none). */
  info: string;
  /** What to run: the block's text (a console block's `$ ` commands only). */
  body: string;
  kind: "run" | "skip" | "setup" | "background" | "file" | "text";
  lang?: BlockLang;
  reason?: string;
  ready?: string;
  file?: string;
  timeoutS?: number;
}

const SHELL = new Set(["sh", "bash", "shell", "console"]);
const PYTHON = new Set(["python", "py"]);
const MARKER = /^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$/;
const SETUP_START = /^\s*<!--\s*docs-test:\s*setup\s*$/;
const ATTRS = /(\w+)(?:=(?:"([^"]*)"|(\S+)))?/g;

function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(ATTRS)) out.set(m[1]!, m[2] ?? m[3] ?? "");
  return out;
}

/** The `$ ` command lines of a console block (continuation lines after a trailing backslash kept). */
function consoleCommands(body: string): string {
  const out: string[] = [];
  let continued = false;
  for (const line of body.split("\n")) {
    if (continued || line.startsWith("$ ")) {
      out.push(continued ? line : line.slice(2));
      continued = line.endsWith("\\");
    }
  }
  return out.join("\n");
}

/** Every fenced block and hidden setup step of `markdown`, in page order; throws on an unknown marker. */
export function extractBlocks(markdown: string, doc: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  let pending: { attrs: Map<string, string>; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (SETUP_START.test(line)) {
      const end = lines.findIndex((l, j) => j > i && /^\s*-->\s*$/.test(l));
      if (end < 0) throw new Error(`${doc}:${i + 1}: a docs-test setup comment is never closed`);
      blocks.push({ doc, line: i + 1, info: "sh", body: lines.slice(i + 1, end).join("\n"), kind: "setup", lang: "shell" });
      i = end;
      continue;
    }
    const marker = MARKER.exec(line);
    if (marker) {
      const attrs = attributes(marker[1]!);
      const known = new Set(["skip", "reason", "background", "ready", "file", "timeout"]);
      for (const key of attrs.keys()) if (!known.has(key)) throw new Error(`${doc}:${i + 1}: unknown docs-test attribute ${key}`);
      if (attrs.has("skip") && !attrs.get("reason")) throw new Error(`${doc}:${i + 1}: a skipped block needs reason="…"`);
      if (attrs.has("background") && !attrs.get("ready")) throw new Error(`${doc}:${i + 1}: a background block needs ready="CMD"`);
      pending = { attrs, line: i + 1 };
      continue;
    }
    const fence = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (!fence) {
      if (pending && line.trim() !== "") throw new Error(`${doc}:${pending.line}: a docs-test marker must come right before a fence`);
      continue;
    }
    const [, indent, ticks, info] = fence as unknown as [string, string, string, string];
    const closing = new RegExp(`^\\s*\\${ticks[0]}{${ticks.length},}\\s*$`);
    const close = lines.findIndex((l, j) => j > i && closing.test(l));
    if (close < 0) throw new Error(`${doc}:${i + 1}: a code fence is never closed`);
    const raw = lines
      .slice(i + 1, close)
      .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l))
      .join("\n");
    const lang: BlockLang | undefined = SHELL.has(info) ? "shell" : PYTHON.has(info) ? "python" : undefined;
    const block: DocBlock = { doc, line: i + 1, info, body: info === "console" ? consoleCommands(raw) : raw, kind: lang ? "run" : "text" };
    if (lang) block.lang = lang;
    const attrs = pending?.attrs;
    if (attrs && !attrs.has("file") && !lang) throw new Error(`${doc}:${i + 1}: a docs-test marker on a ${info || "plain"} block`);
    if (attrs?.has("file")) {
      block.kind = "file";
      block.file = attrs.get("file")!;
    } else if (attrs?.has("skip")) {
      block.kind = "skip";
      block.reason = attrs.get("reason")!;
    } else if (attrs?.has("background")) {
      if (lang !== "shell") throw new Error(`${doc}:${i + 1}: only a shell block can run in the background`);
      block.kind = "background";
      block.ready = attrs.get("ready")!;
    } else if (attrs && !attrs.has("timeout")) {
      throw new Error(`${doc}:${pending!.line}: a docs-test marker needs skip, background, file or timeout`);
    }
    if (attrs?.has("timeout")) block.timeoutS = Number(attrs.get("timeout"));
    pending = undefined;
    blocks.push(block);
    i = close;
  }
  return blocks;
}
