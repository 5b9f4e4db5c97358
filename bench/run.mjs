#!/usr/bin/env node
// Benchmark harness (`npm run bench`). Ratios against baselines measured in the same run, never
// absolute timings as pass/fail. See bench/README.md.
//
//   node bench/run.mjs [--size-mib 2048] [--reps 3] [--only baseline,codec,engine,sidecar] [--cold]
//                      [--streaming-only] [--write] [--out bench/RESULTS.md] [--keep] [--no-reference]
//                      [--openssl-seconds 3] [--hugetlb DIR]

import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { BENCH_DIR, createContext, ROOT } from "./lib/context.mjs";
import { availableMemoryBytes, cpuShare, cpuTimes, freeBytes, loadAverage, machineFacts, ownCpuTicks } from "./lib/machine.mjs";
import { renderReading, renderSection, renderTable, renderFacts, renderTargets, updateResultsFile } from "./lib/report.mjs";
import { resolveRatios } from "./lib/rows.mjs";
import { GNU_TIME } from "./lib/child.mjs";
import { MiB } from "./lib/stats.mjs";
import { DEFAULT_PARTS, PARTS } from "./parts/index.mjs";

const USAGE = `usage: node bench/run.mjs [options]
  --size-mib N          synthetic model size (default 2048)
  --reps N              repeats of each measured operation, interleaved (default 3; the rss part runs once)
  --only a,b            parts to run: ${PARTS.map((p) => p.name).join(", ")} (default ${DEFAULT_PARTS.join(",")})
  --write               update the results file (a section per kind of run)
  --out PATH            results file (default bench/RESULTS.md; implies --write)
  --keep                keep the work directory (under ${tmpdir()})
  --no-reference        skip the Python reference implementation
  --cold                drop the page cache (echo 3 > /proc/sys/vm/drop_caches, root) before each
                        measured operation instead of warming its input
  --streaming-only      sidecar part: only the streaming modes, each tensor dropped by the client
                        (for the sidecar-memory run at sizes the client cannot hold)
  --warmup N            untimed warm-up repeats of the codec part before the measured ones (default 1)
  --prefault-gib N|auto touch N GiB of memory once before measuring (default 0 = off; auto: 6 × size
                        + 2 GiB, capped at MemAvailable − 2 GiB). See bench/README.md
  --openssl-seconds N   duration of each openssl speed run (default 3)
  --hugetlb DIR         sidecar part: also resident loads with the regions on this hugetlbfs mount
                        (ctensors serve --shm-dir DIR); needs free huge pages for the model (bench/README.md)`;

const { values } = parseArgs({
  options: {
    "size-mib": { type: "string", default: "2048" },
    reps: { type: "string", default: "3" },
    only: { type: "string" },
    write: { type: "boolean", default: false },
    out: { type: "string" },
    keep: { type: "boolean", default: false },
    "no-reference": { type: "boolean", default: false },
    cold: { type: "boolean", default: false },
    "streaming-only": { type: "boolean", default: false },
    "openssl-seconds": { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    "prefault-gib": { type: "string", default: "0" },
    hugetlb: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const integer = (name, min) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min) throw new TypeError(`--${name} must be an integer ≥ ${min}, got ${values[name]}`);
  return n;
};
const positive = (name) => integer(name, 1);
const selected = values.only
  ? values.only
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
  : DEFAULT_PARTS;
for (const name of selected)
  if (!PARTS.some((p) => p.name === name))
    throw new TypeError(`--only: unknown part ${JSON.stringify(name)} (known: ${PARTS.map((p) => p.name).join(", ")})`);
const parts = PARTS.filter((p) => selected.includes(p.name));
const opts = {
  sizeMiB: positive("size-mib"),
  reps: positive("reps"),
  opensslSeconds: positive("openssl-seconds"),
  warmup: integer("warmup", 0),
  keep: values.keep,
  reference: !values["no-reference"],
  cold: values.cold,
  streamingOnly: values["streaming-only"],
  hugetlbDir: values.hugetlb ? resolve(values.hugetlb) : null,
};
const resultsPath = values.out ? resolve(values.out) : join(BENCH_DIR, "RESULTS.md");
const write = values.write || values.out !== undefined;
const key =
  (selected.join(",") === DEFAULT_PARTS.join(",") ? "main" : selected.join("+")) +
  (opts.cold ? "-cold" : "") +
  (opts.streamingOnly ? `-streaming-${opts.sizeMiB}` : "");
const command = `node bench/run.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;

// Disk: the plain model, our encrypted copy and one output at a time.
const needBytes = (parts.some((p) => p.name === "codec") ? 3 : 2) * opts.sizeMiB * MiB + 512 * MiB;
const free = freeBytes(tmpdir());
if (free !== null && free < needBytes) {
  console.error(
    `not enough free disk under ${tmpdir()}: ${(free / 2 ** 30).toFixed(1)} GiB free, ${(needBytes / 2 ** 30).toFixed(1)} GiB needed`,
  );
  process.exit(1);
}

const ctx = await createContext(opts);
const started = performance.now();
const cpu0 = cpuTimes();
const own0 = ownCpuTicks();
const load0 = loadAverage();
ctx.log(
  `parts: ${selected.join(", ")}; size ${opts.sizeMiB} MiB; repeats ${opts.reps}; work dir ${ctx.work}; free disk ${free === null ? "?" : `${(free / 2 ** 30).toFixed(1)} GiB`}`,
);
if (!GNU_TIME) ctx.log("GNU time not found: process peak RSS comes from the child's own VmHWM");
let exitCode = 0;
try {
  const facts = await machineFacts({ python: ctx.python, workDir: ctx.work });
  const avail = availableMemoryBytes();
  const autoGiB = Math.max(0, Math.min(Math.floor((avail ?? 0) / 2 ** 30) - 2, Math.ceil((6 * opts.sizeMiB) / 1024) + 2));
  const prefaultGiB = values["prefault-gib"] === "auto" ? autoGiB : integer("prefault-gib", 0);
  if (prefaultGiB > 0) {
    ctx.log(`prefault: touching ${prefaultGiB} GiB of memory once`);
    const p = await ctx.op("prefault.mjs", [String(prefaultGiB)]);
    facts.prefault = `${prefaultGiB} GiB touched once before measuring, at ${(p.result.bytes / p.result.seconds / 1e9).toFixed(2)} GB/s`;
  } else {
    facts.prefault = "off";
  }
  if (facts.workFs === "tmpfs") ctx.log("warning: the work dir is on tmpfs: disk write and fsync figures are memory figures");
  const tables = [];
  const extra = { sizeMiB: opts.sizeMiB };
  for (const part of parts) {
    ctx.log(`== ${part.name}`);
    const res = await part.run(ctx);
    tables.push({ name: part.name, title: part.title, rows: res.rows, notes: res.notes, columns: res.columns });
    if (res.largestTensorMiB) extra.largestTensorMiB = res.largestTensorMiB;
    if (res.extra) Object.assign(extra, res.extra);
  }
  const byId = resolveRatios(tables.flatMap((t) => t.rows));
  const cpu1 = cpuTimes();
  const share = cpuShare(cpu0, cpu1);
  const others = Math.max(0, share.busy - (ownCpuTicks() - own0) / (cpu1.total - cpu0.total || 1));
  facts.load = `load average ${load0} at start, ${loadAverage()} at end; over the run, other processes used ${(100 * others).toFixed(0)} % of the machine's CPU time (this benchmark ${(100 * (share.busy - others)).toFixed(0)} %), the hypervisor stole ${(100 * share.steal).toFixed(1)} %`;
  const o1 = byId.get("openssl-enc-1"),
    o2 = byId.get("openssl-enc-2");
  const contended = o1 && o2 && o2.gbps / o1.gbps < 1.6;
  if (contended) ctx.log("warning: openssl -multi 2 scaled poorly: the second core was busy with something else during this run");
  const targets = renderTargets(byId);
  const reading = (targets ? `${targets}\n\n` : "") + renderReading(byId, extra);
  const seconds = (performance.now() - started) / 1000;
  const preamble = [
    `Size ${opts.sizeMiB} MiB synthetic Llama-shaped bf16 model; ` +
      (selected.every((n) => n === "rss")
        ? "one run of each operation."
        : `${opts.reps} interleaved repeat(s) per operation (median shown; the codec part first runs ${opts.warmup} discarded warm-up repeat(s); the rss part runs once).`),
    opts.cold
      ? "Page cache cold: before each measured operation the whole page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches), so inputs come from disk."
      : "Page cache warm: each measured operation's input file is read once right before it runs.",
    "Every measured operation runs in its own child process (node or python): seconds and CPU time are taken inside it around the operation only (imports, key loading and the reference's load_file are outside);",
    `"peak RSS (process)" is the child's lifetime maximum from ${GNU_TIME ? "GNU time -f %M" : "its own VmHWM"}; "peak RSS (op)" is VmHWM after resetting it (/proc/self/clear_refs) right before the operation, shown with the RSS at that moment.`,
    `CPU/wall = user+system CPU seconds of all the child's threads ÷ wall seconds of the operation (2 would be both cores busy). The whole run took ${seconds.toFixed(0)} s.`,
    ...(contended
      ? [
          `**Warning:** openssl -multi 2 reached only ${(o2.gbps / o1.gbps).toFixed(2)}× its single-core rate: the second core was busy with other work during this run, so two-threaded figures (the reference's load) are understated.`,
        ]
      : []),
  ].join("\n");

  const section = renderSection({ key, command, facts, tables, reading, preamble });
  console.log(`\n${renderFacts(facts)}\n`);
  for (const t of tables) {
    console.log(`${t.title}\n\n${renderTable(t.rows, t.columns)}\n`);
    for (const n of t.notes ?? []) console.log(`- ${n}`);
    console.log("");
  }
  console.log(`${preamble}\n\nReading:\n${reading}\n`);

  const outDir = join(BENCH_DIR, "out");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `last-${key}.json`), `${JSON.stringify({ command, opts, facts, tables }, null, 2)}\n`);
  if (write) {
    updateResultsFile(resultsPath, key, section);
    ctx.log(`updated ${relative(ROOT, resultsPath)} (section ${key})`);
  }
} catch (err) {
  console.error(err?.stack ?? err);
  exitCode = 1;
} finally {
  await ctx.cleanup();
}
process.exit(exitCode);
