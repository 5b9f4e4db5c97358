// Item 5 of issue 7: decrypt-only throughput of the sidecar's engine, against openssl speed -decrypt
// measured in the same run. Each child (ops/engine-decrypt.mjs) opens the v2 file (untimed), packs every
// tensor into one /dev/shm region as the sidecar does, and decrypts the whole model into it 3 times:
// round 1 into fresh tmpfs pages (first touch), rounds 2–3 into the same, already-touched pages (what a
// reused streaming window sees). Engines and I/O variants, interleaved per repeat:
//   native-1t         the same on one thread (CTENSORS_THREADS=1): thread scaling
//   native            pread of the file into a 256 KiB per-thread buffer → EVP → pwrite into the region (default)
//   native, mmap      the file and the region both mapped; EVP reads and writes the mappings
//                     (CTENSORS_NATIVE_SRC=map CTENSORS_NATIVE_DST=map)
//   js                node:crypto, one tensor at a time into a scratch buffer, then pwrite (the JS fallback)
//   native, hugetlbfs with --hugetlb DIR: the region on reserved huge pages (serve --shm-dir), written
//                     through a mapping

import { rowFromSamples } from "../lib/rows.mjs";
import { median } from "../lib/stats.mjs";

const VARIANTS = [
  { id: "native", label: "native engine (pread → EVP → pwrite, 256 KiB pieces)", engine: "native", env: {} },
  { id: "native-1t", label: "native engine, 1 thread (CTENSORS_THREADS=1)", engine: "native", env: { CTENSORS_THREADS: "1" } },
  {
    id: "native-mmap",
    label: "native engine, file and region mmapped instead",
    engine: "native",
    env: { CTENSORS_NATIVE_SRC: "map", CTENSORS_NATIVE_DST: "map" },
  },
  { id: "js", label: "JS engine (node:crypto per tensor + pwrite)", engine: "js", env: {} },
];

export default {
  name: "engine",
  title: "Decrypt-only: the sidecar's engine into a /dev/shm region vs openssl speed",
  async run(ctx) {
    const { sizeMiB, reps } = ctx.opts;
    const keys = await ctx.keys();
    const enc = await ctx.encrypted(sizeMiB);
    const variants = ctx.opts.hugetlbDir
      ? [
          ...VARIANTS,
          {
            id: "native-huge",
            label: "native engine, region on hugetlbfs (serve --shm-dir; written through a mapping)",
            engine: "native",
            env: { CTENSORS_BENCH_SHM_DIR: ctx.opts.hugetlbDir },
          },
        ]
      : VARIANTS;
    const s = Object.fromEntries(variants.map((v) => [v.id, []]));
    for (let rep = 0; rep < reps; rep++) {
      ctx.log(`engine ${rep + 1}/${reps}`);
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(i + rep) % variants.length];
        await ctx.warm(enc.path);
        s[v.id].push(await ctx.op("engine-decrypt.mjs", [enc.path, keys, v.engine, "3"], { env: v.env }));
      }
    }
    const rows = [];
    for (const v of variants) {
      rows.push(
        rowFromSamples({
          id: `engine-${v.id}-fresh`,
          op: `${v.label}: fresh region (first touch)`,
          samples: s[v.id],
          compare: { openssl: "dec" },
        }),
      );
      if (v.engine === "native")
        rows.push(
          rowFromSamples({
            id: `engine-${v.id}-alloc`,
            op: "  └ fresh region including its allocation (fallocate at creation, as a load creates it)",
            samples: s[v.id],
            secondsOf: (x) => x.result.rounds[0] + x.result.createSeconds,
            memory: false,
            cpu: false,
            compare: { openssl: "dec" },
          }),
        );
      rows.push(
        rowFromSamples({
          id: `engine-${v.id}-touched`,
          op: "  └ same region again (pages already touched)",
          samples: s[v.id],
          secondsOf: (x) => median(x.result.rounds.slice(1)),
          memory: false,
          cpu: false,
          compare: { openssl: "dec" },
        }),
      );
    }
    const threads = s.native[0]?.result.threads;
    const faults = (id) => Math.round(median(s[id].map((x) => x.result.minorFaults)));
    const cpuPerGiB = (id, touched) =>
      median(s[id].map((x) => (touched ? median(x.result.roundCpu.slice(1)) : x.result.roundCpu[0]) / (x.result.bytes / 2 ** 30)));
    const allocCpu = (id) => median(s[id].map((x) => (x.result.roundCpu[0] + x.result.createCpuSeconds) / (x.result.bytes / 2 ** 30)));
    const gbps = (id, f) => median(s[id].map((x) => x.result.bytes / 1e9 / f(x)));
    const fresh = (x) => x.result.rounds[0] + x.result.createSeconds;
    const touched = (x) => median(x.result.rounds.slice(1));
    const notes = [
      `thread scaling (native, GB/s, median): 1 thread ${gbps("native-1t", fresh).toFixed(2)} fresh incl. allocation / ${gbps("native-1t", touched).toFixed(2)} touched; ` +
        `${threads} threads ${gbps("native", fresh).toFixed(2)} / ${gbps("native", touched).toFixed(2)}; ` +
        `CPU s/GiB fresh incl. allocation: 1 thread ${allocCpu("native-1t").toFixed(3)}, ${threads} threads ${allocCpu("native").toFixed(3)}`,
      `${(s.native[0].result.bytes / 2 ** 20).toFixed(0)} MiB of tensors (v2, 2 MiB chunks) decrypted into one region; native engine threads: ${threads}; ${reps} repeat(s) per variant, median shown; "peak RSS" and CPU/wall cover all 3 rounds`,
      `minor page faults per child (median): native ${faults("native")}, native mmap ${faults("native-mmap")}, js ${faults("js")}${s["native-huge"] ? `, native on hugetlbfs ${faults("native-huge")}` : ""}`,
      `CPU seconds per GiB (all threads; less sensitive than wall time to other load on the machine), fresh / touched: native ${cpuPerGiB("native", false).toFixed(3)} / ${cpuPerGiB("native", true).toFixed(3)}, native mmap ${cpuPerGiB("native-mmap", false).toFixed(3)} / ${cpuPerGiB("native-mmap", true).toFixed(3)}, js ${cpuPerGiB("js", false).toFixed(3)} / ${cpuPerGiB("js", true).toFixed(3)}` +
        (s["native-huge"]
          ? `, native on hugetlbfs ${cpuPerGiB("native-huge", false).toFixed(3)} / ${cpuPerGiB("native-huge", true).toFixed(3)} (incl. allocation ${allocCpu("native-huge").toFixed(3)})`
          : "") +
        " (openssl's single-core decrypt rate, in the Baselines table, gives the AES-only CPU cost: 1.074 / (GB/s) s per GiB)",
    ];
    return { rows, notes };
  },
};
