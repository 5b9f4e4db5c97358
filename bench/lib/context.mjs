// The run's shared state: options, work directory, logging, child runners and lazily built fixtures
// (keys, the synthetic plain model, our encrypted copy of it). Parts ask for fixtures; the runner
// removes the work directory at the end (unless --keep).

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runChild } from "./child.mjs";
import { dataSha256, llamaShapes, readThrough, writeSyntheticModel } from "./model.mjs";
import { MiB } from "./stats.mjs";

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT = dirname(BENCH_DIR);

export async function createContext(opts) {
  const work = await mkdtemp(join(opts.workRoot ?? tmpdir(), "ctensors-bench-"));
  const python = join(ROOT, ".venv", "bin", "python");
  // The CLI as the package declares it (plugin/package.json "bin"), for `ctensors keygen`.
  const pluginPkg = JSON.parse(readFileSync(join(ROOT, "plugin", "package.json"), "utf8"));
  const binField = typeof pluginPkg.bin === "string" ? pluginPkg.bin : pluginPkg.bin?.ctensors;
  const cli = join(ROOT, "plugin", binField ?? "dist/cli/bin.js");
  if (!existsSync(join(ROOT, "plugin", "dist", "index.js"))) throw new Error("plugin/dist is missing: run `npm run build` first");
  const t0 = performance.now();
  const cache = new Map();
  const once = (key, make) => {
    if (!cache.has(key)) cache.set(key, make());
    return cache.get(key);
  };

  const ctx = {
    opts,
    work,
    python: existsSync(python) ? python : null,
    /** plugin/dist/cli/bin.js (keygen, serve). */
    cli,
    log(msg) {
      process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
    },
    path: (name) => join(work, name),
    /** Runs bench/ops/<script> (.mjs with this Node, .py with the venv's Python) as a measured child. */
    op(script, args, { env } = {}) {
      const file = join(BENCH_DIR, "ops", script);
      const options = { cwd: ROOT, env: env ? { ...process.env, ...env } : undefined };
      if (script.endsWith(".py")) {
        if (!ctx.python) throw new Error(`${python} is missing: run \`npm run setup\``);
        return runChild(ctx.python, [file, ...args], options);
      }
      return runChild(process.execPath, [file, ...args], options);
    },
    /**
     * Page cache before a measured operation: warm (default) reads the file once so the operation
     * finds it cached; with --cold, every clean page of the machine's cache is dropped instead
     * (sync; echo 3 > /proc/sys/vm/drop_caches, needs root), so the operation reads from disk.
     */
    async warm(path) {
      if (opts.cold) {
        execFileSync("sync");
        writeFileSync("/proc/sys/vm/drop_caches", "3");
        return;
      }
      await readThrough(path);
    },
    async drop(...paths) {
      for (const p of paths) await rm(p, { force: true, recursive: true });
    },
    keys() {
      return once("keys", async () => {
        const dir = join(work, "keys");
        execFileSync(process.execPath, [cli, "keygen", "--out", dir, "--kid", "bench"], { stdio: ["ignore", "ignore", "inherit"] });
        return dir;
      });
    },
    /** The synthetic plain model of `sizeMiB` (generated on first use). */
    plain(sizeMiB) {
      return once(`plain:${sizeMiB}`, async () => {
        const path = join(work, `plain-${sizeMiB}MiB.safetensors`);
        const model = llamaShapes(sizeMiB * MiB);
        ctx.log(
          `generating ${path} (${model.tensors.length} tensors, hidden ${model.config.hidden_size}, ${model.config.num_hidden_layers} layers, vocab ${model.config.vocab_size})`,
        );
        const g0 = performance.now();
        const written = await writeSyntheticModel(path, model.tensors);
        const largest = model.tensors.reduce((a, t) => (t.bytes > a.bytes ? t : a));
        return { path, ...model, ...written, largest, seconds: (performance.now() - g0) / 1000 };
      });
    },
    /** Our encrypted copy of plain(sizeMiB), v2 or v1, made once, untimed (the measured encrypts write elsewhere). */
    encrypted(sizeMiB, version = 2) {
      return once(`enc:${sizeMiB}:v${version}`, async () => {
        const plain = await ctx.plain(sizeMiB);
        const keys = await ctx.keys();
        const path = join(work, `enc-${sizeMiB}MiB${version === 2 ? "" : `-v${version}`}.safetensors`);
        ctx.log(`preparing ${path} (untimed)`);
        await ctx.op("encrypt.mjs", [plain.path, path, keys, String(version)]);
        return { path, bytes: (await stat(path)).size };
      });
    },
    /** Forgets a fixture (after its file was deleted). */
    forget(key) {
      cache.delete(key);
    },
    dataSha256,
    async cleanup() {
      if (opts.keep) {
        ctx.log(`kept ${work}`);
        return;
      }
      await rm(work, { recursive: true, force: true });
    },
  };
  await mkdir(work, { recursive: true });
  return ctx;
}
