// Shared by the transformers.js tests: fixtures, the CLI, a Hub-like static server, the pipeline runner.

import { execFile } from "node:child_process";
import { cpSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize, sep } from "node:path";
import { promisify } from "node:util";
import { execa } from "execa";
import { CLI, REPO_ROOT } from "../../plugin/test/helpers.js";
import { splitOnnx } from "../../plugin/src/onnx/model.js";

export { REPO_ROOT, CLI };
export const FIXTURES = join(REPO_ROOT, "test", "fixtures");
export const RUNNER = join(REPO_ROOT, "test", "transformersjs", "run-pipeline.mjs");
const execFileAsync = promisify(execFile);

export async function ct(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa("node", [CLI, ...args, "--quiet"], { reject: false, env: { NO_COLOR: "1" } });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export async function ctOk(args: string[]): Promise<string> {
  const r = await ct(args);
  if (r.exitCode !== 0) throw new Error(`ctensors ${args.join(" ")} failed (${r.exitCode}): ${r.stderr}`);
  return r.stdout;
}

export interface RunResult {
  dims?: number[];
  data?: number[];
  loaded?: { source: string; signer: string | null; tensors: number }[] | null;
  fetches?: number;
  /** hook.heldBytes once each pipeline's session exists. */
  held?: (number | null)[];
  error?: { code: string | null; message: string; name: string | null };
}

/** Runs test/transformersjs/run-pipeline.mjs in a child process. */
export async function runPipeline(cfg: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const { stdout, stderr } = await execFileAsync(process.execPath, [RUNNER, JSON.stringify(cfg)], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const last = stdout.trim().split("\n").at(-1);
  if (!last?.startsWith("{")) throw new Error(`runner printed no result: ${stdout}\n${stderr}`);
  return JSON.parse(last) as RunResult;
}

/**
 * TEST STAND-IN for the Hub: a static HTTP server answering `/{model}/resolve/{revision}/{path}` from
 * local folders (the real local Hub server is `ctensors serve`'s sibling being built in issue 4).
 * Records every request path.
 */
export async function hubStandIn(models: Record<string, string>): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    requests.push(path);
    const m = /^\/(.+?)\/resolve\/[^/]+\/(.+)$/.exec(path);
    const root = m ? models[m[1]!] : undefined;
    const file = root && normalize(join(root, m![2]!));
    if (!file?.startsWith(root + sep)) return void res.writeHead(404).end();
    try {
      const data = readFileSync(file);
      res.writeHead(200, { "content-length": data.length, "content-type": "application/octet-stream" }).end(data);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { url, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Copies a folder. */
export function copyDir(from: string, to: string): string {
  cpSync(from, to, { recursive: true });
  return to;
}

/**
 * Byte strings that only the plaintext weights contain: 32 bytes from the middle of every initializer of
 * at least 256 bytes of the fixture's ONNX model.
 */
export function weightNeedles(modelDir: string): Buffer[] {
  const model = new Uint8Array(readFileSync(join(modelDir, "onnx", "model.onnx")));
  const { weights } = splitOnnx(model, (loc) => new Uint8Array(readFileSync(join(modelDir, "onnx", loc))));
  return weights
    .filter((w) => w.data.length >= 256)
    .map((w) => {
      const mid = Math.floor(w.data.length / 2);
      return Buffer.from(w.data.subarray(mid, mid + 32));
    })
    .filter((n) => new Set(n).size >= 16); // random weights only (LayerNorm ones/zeros are everywhere)
}

/** Every file under `dir` (recursively, optionally only those modified since a time) that contains one of the needles. */
export function filesContaining(dir: string, needles: Buffer[], modifiedSince = 0): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const name of entries) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 0 && st.mtimeMs >= modifiedSince) {
        const data = readFileSync(p);
        if (needles.some((n) => data.includes(n))) hits.push(p);
      }
    }
  };
  walk(dir);
  return hits;
}
