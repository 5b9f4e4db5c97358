// The sidecar path end to end, against a plain load and the reference, on the run's synthetic model:
//   baseline   safetensors.torch.load_file(plain) + clone() of every tensor (python child)
//   reference  cryptotensors safe_open + get_tensor × all on the encrypted file (ops/ref_load.py)
//   resident   ctensors.load_file(encrypted, socket=…) + clone() of every tensor; the zero-copy
//              load_file alone is a sub-row of the same children
//   streaming  safe_open(…).stream(copy=True) keeping every tensor, default window and 64 MiB × 2
// Each sidecar mode gets its own sidecar process per repeat (`ctensors serve` under GNU time, stopped
// with SIGTERM after the client): its lifetime peak RSS is that mode's. /dev/shm usage is sampled by
// this process while the client runs. A node child (ops/sidecar-steps.mjs) replays the sidecar's
// per-tensor loop with its own building blocks to show where the sidecar's time goes.

import { statfsSync } from "node:fs";
import { ROOT } from "../lib/context.mjs";
import { rowFromSamples } from "../lib/rows.mjs";
import { runWithSidecar } from "../lib/sidecar.mjs";
import { max, median } from "../lib/stats.mjs";

const { streamingWindowBytes } = await import(new URL("../../plugin/dist/sidecar/load-plan.js", import.meta.url).href);

const SMALL_WINDOW = 64 * 1024 * 1024;
const WINDOW_COUNT = 2; // the sidecar's default, sent explicitly so the bound is known here
const DEFAULT_WINDOW = 256 * 1024 * 1024; // the sidecar's defaultWindowBytes

// One sidecar for one client run: the sample gets the sidecar's peak RSS, the /dev/shm peak and the
// sidecar's load.finished log line; with `verify`, the client compares every tensor with the plain model.
function sidecarRunner(ctx, { cli, keys, plain, enc }) {
  const verified = {};
  const runner = { count: 0, verified, run: null };
  runner.run = async (args, verify, file = enc, serveArgs = []) => {
    await ctx.warm(file.path);
    const sample = await runWithSidecar({ cli, dir: ctx.path(`sc${++runner.count}`), keys, serveArgs, cwd: ROOT }, async (sc) => {
      const cpu0 = sc.cpuSeconds();
      const s = await ctx.op("sidecar_load.py", [
        args[0],
        file.path,
        sc.socket,
        ...args.slice(1),
        ...(verify ? ["--verify", plain.path] : []),
      ]);
      s.sidecarCpuSeconds = sc.cpuSeconds() - cpu0;
      return s;
    });
    if (verify) {
      const what = `${args.join(" ")}${file === enc ? "" : " (v1 file)"}${serveArgs.length ? ` (${serveArgs.join(" ")})` : ""}`;
      verified[what] = /^BENCH_VERIFY ok$/m.test(sample.stdout);
      if (!verified[what]) ctx.log(`verify failed: ${sample.stdout.slice(-2000)} ${sample.stderr.slice(-2000)}`);
    }
    return sample;
  };
  return runner;
}

// The timed operations, each `async (keep) => …` adding one sample to its list in `s`.
function timedOps(ctx, s, withSidecar, { keys, plain, enc, enc1, useRef, streamingOnly, hugetlbDir }) {
  const stream = streamingOnly ? "stream-drop" : "stream";
  if (streamingOnly) {
    return [
      async (keep) => keep(s.sdef, await withSidecar([stream, "0", String(WINDOW_COUNT)])),
      async (keep) => keep(s.ssmall, await withSidecar([stream, String(SMALL_WINDOW), String(WINDOW_COUNT)])),
    ];
  }
  const ops = [
    async (keep) => {
      await ctx.warm(plain.path);
      keep(s.plain, await ctx.op("sidecar_load.py", ["plain-clone", plain.path]));
    },
    async (keep) => keep(s.res, await withSidecar(["resident"])),
    async (keep) => keep(s.sdef, await withSidecar([stream, "0", String(WINDOW_COUNT)])),
    async (keep) => keep(s.ssmall, await withSidecar([stream, String(SMALL_WINDOW), String(WINDOW_COUNT)])),
    async (keep) => keep(s.res1, await withSidecar(["resident"], false, enc1)),
    ...(hugetlbDir ? [async (keep) => keep(s.resHuge, await withSidecar(["resident"], false, enc, ["--shm-dir", hugetlbDir]))] : []),
    async (keep) => {
      await ctx.warm(enc.path);
      // the JS engine's per-tensor loop, replayed step by step (the native engine has no such steps)
      keep(s.steps, await ctx.op("sidecar-steps.mjs", [enc.path, keys], { env: { CTENSORS_ENGINE: "js" } }));
    },
  ];
  if (useRef) {
    ops.push(async (keep) => {
      await ctx.warm(enc.path);
      keep(s.ref, await ctx.op("ref_load.py", [enc.path, keys, "--load-file"]));
    });
    ops.push(async (keep) => {
      await ctx.warm(enc1.path);
      keep(s.ref1, await ctx.op("ref_load.py", [enc1.path, keys, "--load-file"]));
    });
  }
  return ops;
}

// Runs every op `reps` times, rotating the order per repeat.
async function repeatOps(ctx, ops, reps) {
  for (let rep = 0; rep < reps; rep++) {
    ctx.log(`sidecar ${rep + 1}/${reps}`);
    const keep = (list, sample) => list.push(sample);
    for (let i = 0; i < ops.length; i++) await ops[(i + rep) % ops.length](keep);
  }
}

const sidecarPeaks = (row, samples) => ({
  ...row,
  sidecarPeakRssMiB: max(samples.map((x) => x.sidecarMaxRssKiB)) / 1024,
  shmPeakMiB: max(samples.map((x) => x.shmPeakBytes)) / 2 ** 20,
});
const mib = (b) => (b / 2 ** 20).toFixed(0);
// The streaming window the sidecar puts in effect for a requested size (raised to the largest tensor).
const windowFor = (plain) => (req) =>
  streamingWindowBytes(
    req,
    plain.tensors.map((t) => t.bytes),
    DEFAULT_WINDOW,
  );

function streamingOnlyReport(ctx, s, { plain, enc }) {
  const window = windowFor(plain);
  return {
    rows: [
      sidecarPeaks(
        rowFromSamples({
          id: "sc-stream-default",
          op: `ours streaming: stream(copy=True), each tensor dropped, default window (256 MiB × ${WINDOW_COUNT})`,
          samples: s.sdef,
        }),
        s.sdef,
      ),
      sidecarPeaks(
        rowFromSamples({
          id: "sc-stream-small",
          op: `ours streaming: stream(copy=True), each tensor dropped, window 64 MiB × ${WINDOW_COUNT}`,
          samples: s.ssmall,
        }),
        s.ssmall,
      ),
    ],
    notes: [
      `model: ${plain.tensors.length} bf16 tensors, ${mib(plain.dataBytes)} MiB of tensor data, largest ${plain.largest.name} ${mib(plain.largest.bytes)} MiB; encrypted file (v2) ${mib(enc.bytes)} MiB; page cache ${ctx.opts.cold ? "dropped before each run (cold)" : "warm"}`,
      `streaming-only run (--streaming-only): the client copies each tensor out of the window and drops it; "sidecar peak RSS" is the sidecar process's lifetime peak (GNU time); windows in effect ${mib(window(DEFAULT_WINDOW))} MiB and ${mib(window(SMALL_WINDOW))} MiB × ${WINDOW_COUNT} (raised to the largest tensor)`,
      `sidecar engine: ${process.env.CTENSORS_ENGINE || "auto (native when built)"}; no byte-for-byte check in this mode (the main run checks)`,
    ],
    columns: ["op", "seconds", "range", "gbps", "cpu", "clientPeak", "opPeak", "sidecarPeak", "shmPeak"],
    extra: { streamingOnly: { sizeMiB: plain.dataBytes / 2 ** 20 } },
  };
}

function mainRows(s, useRef) {
  const ref = useRef ? "sc-ref-load" : undefined;
  const rows = [
    rowFromSamples({ id: "sc-plain-clone", op: "baseline: safetensors load_file(plain) + clone × all", samples: s.plain }),
    rowFromSamples({
      id: "sc-plain-load",
      op: "  └ load_file alone (mmap views, untouched)",
      samples: s.plain,
      secondsOf: (x) => x.result.loadSeconds,
      memory: false,
      cpu: false,
    }),
    sidecarPeaks(
      rowFromSamples({
        id: "sc-resident-clone",
        op: "ours resident: ctensors.load_file + clone × all",
        samples: s.res,
        compare: { baseline: "sc-plain-clone", reference: ref },
      }),
      s.res,
    ),
    rowFromSamples({
      id: "sc-resident-zc",
      op: "  └ load_file alone (zero-copy views, untouched)",
      samples: s.res,
      secondsOf: (x) => x.result.loadSeconds,
      memory: false,
      cpu: false,
      compare: { baseline: "sc-plain-clone", reference: ref },
    }),
    rowFromSamples({
      id: "sc-resident-touch",
      op: "  └ load_file + one read of every 4 KiB page of every view (no copy)",
      samples: s.res,
      secondsOf: (x) => x.result.loadSeconds + x.result.touchSeconds,
      memory: false,
      cpu: false,
      compare: { baseline: "sc-plain-clone", reference: ref },
    }),
    sidecarPeaks(
      rowFromSamples({
        id: "sc-stream-default",
        op: `ours streaming: stream(copy=True), default window (256 MiB × ${WINDOW_COUNT})`,
        samples: s.sdef,
        compare: { baseline: "sc-plain-clone", reference: ref },
      }),
      s.sdef,
    ),
    sidecarPeaks(
      rowFromSamples({
        id: "sc-stream-small",
        op: `ours streaming: stream(copy=True), window 64 MiB × ${WINDOW_COUNT}`,
        samples: s.ssmall,
        compare: { baseline: "sc-plain-clone", reference: ref },
      }),
      s.ssmall,
    ),
  ];
  rows.push(
    sidecarPeaks(
      rowFromSamples({
        id: "sc-resident-v1-zc",
        op: "ours resident, v1 file: ctensors.load_file (zero-copy views)",
        samples: s.res1,
        secondsOf: (x) => x.result.loadSeconds,
        compare: { baseline: "sc-plain-clone", reference: useRef ? "sc-ref-load-v1" : undefined },
      }),
      s.res1,
    ),
  );
  if (s.resHuge.length) {
    rows.push(
      sidecarPeaks(
        rowFromSamples({
          id: "sc-resident-huge-clone",
          op: "ours resident, regions on hugetlbfs (serve --shm-dir): load_file + clone × all",
          samples: s.resHuge,
          compare: { baseline: "sc-plain-clone", reference: ref },
        }),
        s.resHuge,
      ),
      rowFromSamples({
        id: "sc-resident-huge-zc",
        op: "  └ load_file alone (zero-copy views, untouched)",
        samples: s.resHuge,
        secondsOf: (x) => x.result.loadSeconds,
        memory: false,
        cpu: false,
        compare: { baseline: "sc-plain-clone", reference: ref },
      }),
      rowFromSamples({
        id: "sc-resident-huge-touch",
        op: "  └ load_file + one read of every 4 KiB page of every view (no copy)",
        samples: s.resHuge,
        secondsOf: (x) => x.result.loadSeconds + x.result.touchSeconds,
        memory: false,
        cpu: false,
        compare: { baseline: "sc-plain-clone", reference: ref },
      }),
    );
  }
  if (useRef) {
    rows.push(
      rowFromSamples({
        id: "sc-ref-load",
        op: "reference: cryptotensors.torch.load_file (registry keys), v2 file",
        samples: s.ref,
        compare: { baseline: "sc-plain-clone" },
      }),
    );
    rows.push(
      rowFromSamples({
        id: "sc-ref-load-v1",
        op: "reference: cryptotensors.torch.load_file (registry keys), v1 file",
        samples: s.ref1,
        compare: { baseline: "sc-plain-clone" },
      }),
    );
  }
  return rows;
}

// Medians of the JS engine's replayed per-tensor loop (ops/sidecar-steps.mjs).
function stepMedians(steps) {
  const med = (k) => median(steps.map((x) => x.result[k]));
  return {
    seconds: med("seconds"),
    open: med("openSeconds"),
    region: med("regionSeconds"),
    read: med("readSeconds"),
    decrypt: med("decryptSeconds"),
    write: med("writeSeconds"),
    zero: med("zeroSeconds"),
    cpuPerWall: median(steps.map((x) => x.result.cpuSeconds / x.result.seconds)),
    bytes: steps[0].result.bytes,
  };
}

// CPU seconds per GiB of tensor data, all processes (the client's CPU time in its timed section, plus
// the sidecar's over the client's whole run, OpenModel included), median over the samples.
export function cpuPerGiB(s, dataBytes) {
  const gib = dataBytes / 2 ** 30;
  const med = (list, f) => (list.length ? median(list.map(f)) / gib : null);
  const sc = (x) => x.sidecarCpuSeconds ?? 0;
  return {
    plainClone: med(s.plain, (x) => x.result.cpuSeconds),
    residentTouch: med(s.res, (x) => x.result.loadCpuSeconds + x.result.touchCpuSeconds + sc(x)),
    residentTouchSidecar: med(s.res, sc),
    hugeTouch: med(s.resHuge, (x) => x.result.loadCpuSeconds + x.result.touchCpuSeconds + sc(x)),
    hugeTouchSidecar: med(s.resHuge, sc),
    residentClone: med(s.res, (x) => x.result.cpuSeconds + sc(x)),
    streamDefault: med(s.sdef, (x) => x.result.cpuSeconds + sc(x)),
    reference: med(s.ref, (x) => x.result.cpuSeconds),
  };
}

function cpuPerGiBNote(s, dataBytes, useRef) {
  const c = cpuPerGiB(s, dataBytes);
  const f = (v) => (v == null ? "—" : v.toFixed(2));
  return (
    `CPU seconds per GiB, all processes (client + sidecar; steadier than wall time on a shared machine, and what decides the result with more cores), median: ` +
    `ours resident load_file + touch every page ${f(c.residentTouch)} (sidecar ${f(c.residentTouchSidecar)})` +
    (c.hugeTouch == null ? "" : `, the same with regions on hugetlbfs ${f(c.hugeTouch)} (sidecar ${f(c.hugeTouchSidecar)})`) +
    `, ours resident + clone ${f(c.residentClone)}, ` +
    `ours streaming (default window) ${f(c.streamDefault)}, ${useRef ? `reference load_file ${f(c.reference)}, ` : ""}plain load_file + clone ${f(c.plainClone)}`
  );
}

// The sidecar's own load.finished log line, median over the samples.
function sidecarLoadMedian(list) {
  const l = list.map((x) => x.sidecarLoad).filter(Boolean);
  return l.length ? { ms: median(l.map((e) => e.ms)), gbps: median(l.map((e) => e.gb_per_s)), regions: l[0].regions } : null;
}

function mainReport(ctx, s, { plain, enc, enc1, useRef, nSidecars, verified }) {
  const rows = mainRows(s, useRef);
  const largest = plain.largest.bytes;
  const window = windowFor(plain);
  const faults = (list) => Math.round(median(list.map((x) => x.result.minorFaults ?? 0)));
  const steps = stepMedians(s.steps);
  const sidecarSide = {
    resident: sidecarLoadMedian(s.res),
    residentHuge: sidecarLoadMedian(s.resHuge),
    streamDefault: sidecarLoadMedian(s.sdef),
    streamSmall: sidecarLoadMedian(s.ssmall),
  };
  const notes = [
    `model: ${plain.tensors.length} bf16 tensors, ${mib(plain.dataBytes)} MiB of tensor data, largest ${plain.largest.name} ${mib(largest)} MiB; encrypted file ${mib(enc.bytes)} MiB (v2) and ${mib(enc1.bytes)} MiB (v1). Page cache ${ctx.opts.cold ? "dropped (echo 3 > /proc/sys/vm/drop_caches) before every run: cold" : "warm for every run"}. Sidecar engine: ${process.env.CTENSORS_ENGINE || "auto (native when built)"}.`,
    "every client ends up with every tensor in its own memory and keeps them to the end (reference excepted: its op drops each tensor at once, as in the codec part); imports outside the timed section; the sidecar modes' times include OpenModel (signature check, DEK unwrap) over gRPC",
    `one sidecar process per mode and repeat (${nSidecars} in all), started before the client and stopped with SIGTERM after it; "sidecar peak RSS" is its lifetime peak (GNU time), max over repeats. "/dev/shm peak" is statfs(/dev/shm) used bytes sampled every 10 ms during the client run, minus its value before`,
    `streaming windows: the sidecar raises window_bytes to the largest tensor, so "64 MiB" is in effect ${mib(window(SMALL_WINDOW))} MiB × ${WINDOW_COUNT} here (bound ${mib(window(SMALL_WINDOW) * WINDOW_COUNT)} MiB), the default ${mib(window(DEFAULT_WINDOW))} MiB × ${WINDOW_COUNT} (bound ${mib(window(DEFAULT_WINDOW) * WINDOW_COUNT)} MiB)`,
    `the sidecar's own load.finished log (median): resident ${sidecarSide.resident?.ms ?? "—"} ms (${sidecarSide.resident?.gbps ?? "—"} GB/s, ${sidecarSide.resident?.regions ?? "—"} region(s))${sidecarSide.residentHuge ? `, resident on hugetlbfs ${sidecarSide.residentHuge.ms} ms (${sidecarSide.residentHuge.gbps} GB/s)` : ""}, streaming default ${sidecarSide.streamDefault?.ms ?? "—"} ms, 64 MiB ${sidecarSide.streamSmall?.ms ?? "—"} ms (from its start message to done, after OpenModel)`,
    `loaded tensors verified equal to safetensors' load of the plain model (separate untimed runs before the repeats): ${Object.keys(verified).length ? (Object.values(verified).every(Boolean) ? `yes (${Object.keys(verified).join(", ")})` : "NO") : "not checked"}`,
    `client minor page faults during the operation (median): baseline ${faults(s.plain)}, resident ${faults(s.res)}${s.resHuge.length ? `, resident on hugetlbfs ${faults(s.resHuge)}` : ""}, streaming default ${faults(s.sdef)}, 64 MiB ${faults(s.ssmall)}${useRef ? `, reference ${faults(s.ref)}` : ""} (1 GiB = 262144 pages of 4 KiB)`,
    `the JS engine's sidecar loop replayed in a node child (ops/sidecar-steps.mjs with CTENSORS_ENGINE=js, same reader, ShmRegion and packing; median of ${s.steps.length}): ${steps.seconds.toFixed(2)} s for ${mib(steps.bytes)} MiB = open ${steps.open.toFixed(2)} s + region create ${steps.region.toFixed(2)} s + readTensorInto (read + AES-GCM) ${steps.decrypt.toFixed(2)} s + pwrite to /dev/shm ${steps.write.toFixed(2)} s + zeroing ${steps.zero.toFixed(2)} s; a separate read-only pass of the same bytes takes ${steps.read.toFixed(2)} s; CPU/wall ${steps.cpuPerWall.toFixed(2)}`,
  ];
  notes.push(cpuPerGiBNote(s, plain.dataBytes, useRef));
  if (s.resHuge.length)
    notes.push(
      `regions on hugetlbfs: \`ctensors serve --shm-dir ${ctx.opts.hugetlbDir}\` (bench --hugetlb), huge pages of ${mib(statfsSync(ctx.opts.hugetlbDir).bsize)} MiB reserved by the operator (bench/README.md); "/dev/shm peak" for those rows is the huge page pool's use`,
    );
  if (!useRef) notes.push("reference not measured (--no-reference)");
  return {
    rows,
    notes,
    columns: ["op", "seconds", "range", "gbps", "baseline", "reference", "cpu", "clientPeak", "opPeak", "sidecarPeak", "shmPeak"],
    extra: {
      sidecar: {
        steps,
        sidecarSide,
        cpuPerGiB: cpuPerGiB(s, plain.dataBytes),
        windows: { small: window(SMALL_WINDOW), def: window(DEFAULT_WINDOW), count: WINDOW_COUNT },
        largestMiB: largest / 2 ** 20,
        dataMiB: plain.dataBytes / 2 ** 20,
      },
    },
  };
}

export default {
  name: "sidecar",
  title: "Sidecar: load into a Python process (ours resident / streaming) vs a plain load and the reference",
  async run(ctx) {
    const { sizeMiB, reps } = ctx.opts;
    if (!ctx.python) throw new Error("the sidecar part needs the .venv (npm run setup)");
    const useRef = ctx.opts.reference;
    const streamingOnly = ctx.opts.streamingOnly;
    const keys = await ctx.keys();
    const plain = await ctx.plain(sizeMiB);
    const enc = await ctx.encrypted(sizeMiB);
    const enc1 = streamingOnly ? null : await ctx.encrypted(sizeMiB, 1);
    const hugetlbDir = streamingOnly ? null : ctx.opts.hugetlbDir;
    const files = { keys, plain, enc, enc1, useRef, streamingOnly, hugetlbDir };
    const s = { plain: [], ref: [], res: [], sdef: [], ssmall: [], steps: [], res1: [], ref1: [], resHuge: [] };
    const sidecars = sidecarRunner(ctx, { cli: ctx.cli, keys, plain, enc });
    const ops = timedOps(ctx, s, sidecars.run, files);
    // Untimed check first, in runs of their own (the comparison loads the plain model too, which
    // would otherwise show in the client's lifetime peak RSS). Skipped in streaming-only runs (sizes
    // where the client cannot hold the model twice).
    if (!streamingOnly) {
      ctx.log("sidecar: byte-for-byte check (untimed)");
      await sidecars.run(["resident"], true);
      await sidecars.run(["resident"], true, enc1);
      await sidecars.run(["stream", String(SMALL_WINDOW), String(WINDOW_COUNT)], true);
      // also the huge pages' first use (a hypervisor may back them only now): not in the timed runs
      if (hugetlbDir) await sidecars.run(["resident"], true, enc, ["--shm-dir", hugetlbDir]);
    }
    await repeatOps(ctx, ops, reps);
    const { verified } = sidecars;
    if (Object.values(verified).some((ok) => !ok))
      throw new Error(`tensors loaded through the sidecar differ from the plain model: ${JSON.stringify(verified)}`);
    if (streamingOnly) return streamingOnlyReport(ctx, s, files);
    return mainReport(ctx, s, { ...files, nSidecars: sidecars.count, verified });
  },
};
