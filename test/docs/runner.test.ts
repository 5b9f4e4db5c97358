// The docs runner itself (blocks.ts, session.ts): markers are read as documented, a failing block
// fails with its page, line and output, the environment carries from block to block, and nothing
// outlives a page or hangs it.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type DocBlock, extractBlocks } from "./blocks.js";
import { BlockFailure, DocSession } from "./session.js";

const PAGE = [
  "# A page",
  "",
  "```bash",
  "echo one",
  "```",
  '<!-- docs-test: skip reason="needs a GPU" -->',
  "```python",
  "import torch; torch.cuda.init()",
  "```",
  "<!-- docs-test: setup",
  "touch prepared",
  "-->",
  '<!-- docs-test: background ready="test -e up" timeout=30 -->',
  "```sh",
  "touch up; sleep 600",
  "```",
  '<!-- docs-test: file="app.mjs" -->',
  "```js",
  "console.log(1)",
  "```",
  "```console",
  "$ echo two \\",
  "    three",
  "two three",
  "```",
  "```text",
  "$ not run",
  "```",
  "```",
  "unnamed",
  "```",
].join("\n");

function block(body: string, over: Partial<DocBlock> = {}): DocBlock {
  return { doc: "page.md", line: 7, info: "bash", body, kind: "run", lang: "shell", ...over };
}

describe("extractBlocks", () => {
  it("reads fences, markers and hidden setup steps with their line numbers", () => {
    const blocks = extractBlocks(PAGE, "page.md");
    expect(blocks.map((b) => [b.line, b.info, b.kind])).toEqual([
      [3, "bash", "run"],
      [7, "python", "skip"],
      [10, "sh", "setup"],
      [14, "sh", "background"],
      [18, "js", "file"],
      [21, "console", "run"],
      [26, "text", "text"],
      [29, "", "text"],
    ]);
    expect(blocks[1]!.reason).toBe("needs a GPU");
    expect(blocks[2]!.body).toBe("touch prepared");
    expect(blocks[3]).toMatchObject({ ready: "test -e up", timeoutS: 30 });
    expect(blocks[4]!.file).toBe("app.mjs");
    expect(blocks[5]!.body).toBe("echo two \\\n    three");
  });

  it("refuses markers it cannot honour", () => {
    expect(() => extractBlocks("<!-- docs-test: skip -->\n```sh\nx\n```", "d.md")).toThrow(/d\.md:1: a skipped block needs reason/);
    expect(() => extractBlocks('<!-- docs-test: skp reason="x" -->\n```sh\nx\n```', "d.md")).toThrow(/unknown docs-test attribute skp/);
    expect(() => extractBlocks("<!-- docs-test: background -->\n```sh\nx\n```", "d.md")).toThrow(/needs ready=/);
    expect(() => extractBlocks('<!-- docs-test: skip reason="x" -->\n\nprose\n```sh\nx\n```', "d.md")).toThrow(/right before a fence/);
    expect(() => extractBlocks('<!-- docs-test: skip reason="x" -->\n```text\nx\n```', "d.md")).toThrow(/marker on a text block/);
    expect(() => extractBlocks("```sh\nx\n", "d.md")).toThrow(/d\.md:1: a code fence is never closed/);
  });
});

describe("DocSession", () => {
  let session: DocSession | undefined;
  afterEach(async () => {
    await session?.close();
    session = undefined;
  });

  it("fails a block that exits non-zero, naming the page, the line and the output's end", async () => {
    session = new DocSession("page.md");
    const err = await session.run(block("echo before; ls no-such-file; echo after")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockFailure);
    expect((err as Error).message).toMatch(/^page\.md:7: the bash block exited with 2; its output ends with:\nbefore\n.*no-such-file/s);
    expect((err as Error).message).not.toContain("after");
  });

  it("carries exported and assigned variables and the folder from block to block, into Python too", async () => {
    session = new DocSession("page.md", { DOCS_EXTRA: "given" });
    await session.run(block("mkdir sub && cd sub && X=assigned && export Y=exported && echo hi > f"));
    await session.run(block('test "$X $Y $DOCS_EXTRA" = "assigned exported given" && test -f f && test -z "$VITEST"'));
    await session.run(
      block("import os\nassert os.environ['X'] == 'assigned' and open('f').read() == 'hi\\n'\nz = 1", { info: "python", lang: "python" }),
    );
    await session.run(block("assert z == 1", { info: "python", lang: "python" }));
    const err = await session
      .run(block("raise KeyError('missing')", { info: "python", lang: "python", line: 40 }))
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /page\.md:40: the python block raised an exception.*File "page\.md:40", line 41.*KeyError: 'missing'/s,
    );
  });

  it("gives ctensors, npx ctensors and python of this checkout, nothing else through npx", async () => {
    session = new DocSession("page.md");
    await session.run(block("ctensors --help > /dev/null && npx ctensors --help > /dev/null && python -c 'import ctensors, torch'"));
    const err = await session.run(block("npx cowsay hi")).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/exited with 127.*only 'npx ctensors' is provided/s);
  });

  it("waits for a background block's readiness, fails one that dies first, and kills both at the end", async () => {
    session = new DocSession("page.md");
    await session.run(block("sleep 0.5; touch up; exec sleep 600", { kind: "background", ready: "test -e up" }));
    await session.run(block('sleep 600 & echo "$!" > child.pid'));
    const died = await session.run(block("echo failing; exit 4", { kind: "background", ready: "false", line: 9 })).catch((e: unknown) => e);
    expect((died as Error).message).toMatch(/page\.md:9: the bash block exited with 4 before it was ready.*failing/s);
    const pid = Number(readFileSync(join(session.work, "child.pid"), "utf8"));
    const work = session.work;
    await session.close();
    session = undefined;
    expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(work)).toBe(false);
  });

  it("stops a block that runs out of time, and its children", async () => {
    session = new DocSession("page.md");
    const started = Date.now();
    const err = await session.run(block("sleep 600 & sleep 600", { timeoutS: 1 })).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/page\.md:7: the bash block ran out of time/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
