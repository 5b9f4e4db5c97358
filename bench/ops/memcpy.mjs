// Child: memory bandwidth baseline. Buffer.copy of MIB MiB (default 256), after one untimed copy
// that faults the pages in; reports the median of REPS timed copies (and best and worst).
// usage: node bench/ops/memcpy.mjs [MIB] [REPS]
import { args, begin, finish } from "./_common.mjs";
import { randomFillSync } from "node:crypto";

const mib = Number(args[0] ?? 256);
const reps = Number(args[1] ?? 5);
const n = mib * 1024 * 1024;
const src = Buffer.allocUnsafe(n);
for (let off = 0; off < n; off += 64 * 1024 * 1024) randomFillSync(src, off, Math.min(64 * 1024 * 1024, n - off));
const dst = Buffer.alloc(n);
src.copy(dst); // fault in
const probe = begin();
const times = [];
for (let i = 0; i < reps; i++) {
  const t0 = performance.now();
  src.copy(dst);
  times.push((performance.now() - t0) / 1000);
}
times.sort((a, b) => a - b);
finish(probe, { bytes: n, reps, seconds: times[Math.floor(times.length / 2)], best: times[0], worst: times.at(-1) });
