// One page's run: a scratch folder that a reader works in, with `ctensors` (this checkout's build),
// `npx ctensors` and `python` (.venv, this checkout's package) on PATH, and an environment that the
// page's blocks share in order (what a shell block exports or changes, later blocks see; the Python
// blocks share one interpreter). Every process runs in a process group of its own, killed when the page
// ends or its block runs out of time, so nothing outlives the test and no test hangs.

import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { DocBlock } from "./blocks.js";

export const REPO_ROOT = join(import.meta.dirname, "..", "..");
export const VENV_PYTHON = join(REPO_ROOT, ".venv", "bin", "python");
const CLI_BIN = join(REPO_ROOT, "plugin", "bin", "ctensors.js");
const DEFAULT_TIMEOUT_S = 120;
const TAIL_LINES = 40;

/** Variables of the test's own environment that would point a page at something outside its folder. */
const DROPPED_ENV = /^(HF_|HUGGING_FACE_|CTENSORS_|CRYPTOTENSOR_|BAO_|VAULT_|XDG_|npm_|VITEST|NODE_OPTIONS$|PYTHON)/;
/** Shell bookkeeping that must not travel from one block to the next. */
const SHELL_ONLY = new Set(["_", "SHLVL", "PWD", "OLDPWD"]);

export class BlockFailure extends Error {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the group, then SIGKILL to what is left after `graceMs`. */
async function killGroup(pgid: number, graceMs = 5000): Promise<void> {
  try {
    process.kill(-pgid, "SIGTERM");
  } catch {
    return;
  }
  for (let waited = 0; waited < graceMs && groupAlive(pgid); waited += 100) await sleep(100);
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // already gone
  }
}

function tail(text: string): string {
  const lines = text.trimEnd().split("\n");
  return lines.slice(-TAIL_LINES).join("\n");
}

export class DocSession {
  /** The reader's folder, where the page's first block starts. */
  readonly work: string;
  private readonly root: string;
  private readonly meta: string;
  private env: Record<string, string>;
  private cwd: string;
  private readonly groups = new Set<number>();
  private python: { child: ChildProcess; answers: AsyncIterator<string>; log: string } | undefined;
  private logs = 0;

  /** @param extraEnv variables the page's blocks get on top of the clean environment (`DOCS_TINY_MODEL`) */
  constructor(
    readonly doc: string,
    extraEnv: Record<string, string> = {},
  ) {
    this.root = mkdtempSync(join(tmpdir(), "ct-docs-"));
    this.work = join(this.root, "work");
    this.meta = join(this.root, "meta");
    const bin = join(this.meta, "bin");
    const home = join(this.root, "home");
    const runtime = join(this.root, "run");
    for (const d of [this.work, bin, home, runtime]) mkdirSync(d, { recursive: true, mode: 0o700 });
    chmodSync(runtime, 0o700);
    const shim = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    shim("ctensors", `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_BIN)} "$@"`);
    shim("python", `exec ${JSON.stringify(VENV_PYTHON)} "$@"`);
    shim("python3", `exec ${JSON.stringify(VENV_PYTHON)} "$@"`);
    shim(
      "npx",
      `if [ "$1" = ctensors ]; then shift; exec ctensors "$@"; fi\n` +
        `echo "docs test: only 'npx ctensors' is provided here, not: npx $*" >&2; exit 127`,
    );
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !DROPPED_ENV.test(k) && !SHELL_ONLY.has(k)) base[k] = v;
    this.env = {
      ...base,
      PATH: [bin, join(REPO_ROOT, ".venv", "bin"), process.env.PATH ?? "/usr/bin:/bin"].join(":"),
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      PYTHONPATH: join(REPO_ROOT, "python-shim", "src"),
      DOCS_REPO: REPO_ROOT,
      ...extraEnv,
    };
    this.cwd = this.work;
  }

  /** Writes a `file="…"` block into the reader's folder. */
  writeFile(block: DocBlock): void {
    writeFileSync(join(this.work, block.file!), `${block.body}\n`);
  }

  async run(block: DocBlock): Promise<void> {
    if (block.lang === "python") return this.runPython(block);
    if (block.kind === "background") return this.runBackground(block);
    const { code, output } = await this.shell(block.body, (block.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000, true);
    if (code !== 0) this.fail(block, code === null ? "ran out of time" : `exited with ${code}`, output);
  }

  /** Ends every process the page started and removes its folders. */
  async close(): Promise<void> {
    if (this.python) {
      this.python.child.stdin?.end();
      this.groups.add(this.python.child.pid!);
    }
    await Promise.all([...this.groups].map((g) => killGroup(g)));
    rmSync(this.root, { recursive: true, force: true });
  }

  private fail(block: DocBlock, what: string, output: string): never {
    const label = block.kind === "setup" ? "hidden setup step" : `${block.info} block`;
    throw new BlockFailure(`${block.doc}:${block.line}: the ${label} ${what}; its output ends with:\n${tail(output)}`);
  }

  private newLog(): { path: string; fd: number } {
    const path = join(this.meta, `block-${++this.logs}.log`);
    return { path, fd: openSync(path, "w") };
  }

  /** Starts `script` under bash in a process group of its own, its output in a log file. */
  private start(script: string, saveState: boolean): { child: ChildProcess; log: string } {
    const save = saveState
      ? `__docs_save() { pwd > ${JSON.stringify(join(this.meta, "cwd"))}; env -0 > ${JSON.stringify(join(this.meta, "env"))}; }\ntrap __docs_save EXIT\n`
      : "";
    const log = this.newLog();
    const child = spawn("bash", ["--noprofile", "--norc", "-c", `${save}set -a -eo pipefail\n${script}`], {
      cwd: this.cwd,
      env: this.env,
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
    });
    closeSync(log.fd);
    this.groups.add(child.pid!);
    return { child, log: log.path };
  }

  /** Runs a shell script to its end (or its timeout); with `saveState`, later blocks see its environment and folder. */
  private async shell(script: string, timeoutMs: number, saveState: boolean): Promise<{ code: number | null; output: string }> {
    const { child, log } = this.start(script, saveState);
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        void killGroup(child.pid!, 1000);
        resolve(null);
      }, timeoutMs);
      child.on("exit", (status, signal) => {
        clearTimeout(timer);
        resolve(status ?? (signal ? 128 : 1));
      });
    });
    if (saveState) this.loadState();
    return { code, output: readFileSync(log, "utf8") };
  }

  private loadState(): void {
    const envFile = join(this.meta, "env");
    const cwdFile = join(this.meta, "cwd");
    if (!existsSync(envFile) || !existsSync(cwdFile)) return;
    const env: Record<string, string> = {};
    for (const entry of readFileSync(envFile, "utf8").split("\0")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      if (!SHELL_ONLY.has(key) && !key.startsWith("BASH_FUNC_")) env[key] = entry.slice(eq + 1);
    }
    this.env = env;
    const cwd = readFileSync(cwdFile, "utf8").trim();
    if (cwd && statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) this.cwd = cwd;
  }

  /** A server: started, its `ready` command polled until it succeeds; it runs until the page ends. */
  private async runBackground(block: DocBlock): Promise<void> {
    const { child, log } = this.start(block.body, false);
    let exited: number | null | undefined;
    child.on("exit", (status) => {
      exited = status;
    });
    const deadline = Date.now() + (block.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000;
    for (;;) {
      if (exited !== undefined) this.fail(block, `exited with ${exited} before it was ready`, readFileSync(log, "utf8"));
      const probe = await this.shell(block.ready!, 10_000, false);
      if (probe.code === 0) return;
      if (Date.now() > deadline) {
        this.fail(block, `was not ready in time (\`${block.ready}\`: ${tail(probe.output)})`, readFileSync(log, "utf8"));
      }
      await sleep(250);
    }
  }

  /** The page's Python blocks run in one interpreter, in order, as a reader's session would. */
  private async runPython(block: DocBlock): Promise<void> {
    if (!this.python) {
      const log = this.newLog();
      const child = spawn(VENV_PYTHON, ["-u", join(import.meta.dirname, "py_driver.py")], {
        cwd: this.cwd,
        env: this.env,
        detached: true,
        stdio: ["pipe", log.fd, log.fd, "pipe"],
      });
      closeSync(log.fd);
      this.groups.add(child.pid!);
      const answers = createInterface({ input: child.stdio[3] as NodeJS.ReadableStream })[Symbol.asyncIterator]();
      this.python = { child, answers, log: log.path };
    }
    const python = this.python;
    const from = statSync(python.log).size;
    const name = `${block.doc}:${block.line}`;
    // Line numbers in a traceback are the page's: the code is preceded by as many empty lines.
    const code = "\n".repeat(block.line) + block.body;
    python.child.stdin!.write(`${JSON.stringify({ code, env: this.env, cwd: this.cwd, name })}\n`);
    const timeoutMs = (block.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000;
    let timer: NodeJS.Timeout | undefined;
    const answer = await Promise.race([
      python.answers.next(),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    const output = () => readFileSync(python.log).subarray(from).toString("utf8");
    if (answer === "timeout" || answer.done) {
      this.python = undefined;
      await killGroup(python.child.pid!, 1000);
      this.fail(block, answer === "timeout" ? "ran out of time" : "ended the Python interpreter", output());
    }
    if (!(JSON.parse(answer.value) as { ok: boolean }).ok) this.fail(block, "raised an exception", output());
  }
}
