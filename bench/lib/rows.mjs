// Table rows from child-process samples. Speeds are GB/s with GB = 1e9 bytes of tensor data.

import { GB, max, median, min, MiB } from "./stats.mjs";

/**
 * @param {object} o
 * @param {string} o.id          stable id, used by other rows' `compare`
 * @param {string} o.op          label
 * @param {object[]} o.samples   runChild results (one per repeat)
 * @param {(s: object) => number} [o.secondsOf]  which time to use (default result.seconds)
 * @param {boolean} [o.memory]   report the samples' memory figures (default true)
 * @param {{ openssl?: "enc" | "dec", reference?: string, baseline?: string }} [o.compare]  ids of the rows to divide by
 */
export function rowFromSamples({ id, op, samples, secondsOf = (s) => s.result.seconds, memory = true, cpu = true, compare, note }) {
  const secs = samples.map(secondsOf);
  const seconds = median(secs);
  const bytes = samples[0].result.bytes;
  const kib = (f) => samples.map(f).filter((v) => typeof v === "number");
  const peak = kib((s) => s.maxRssKiB);
  const opPeak = kib((s) => s.result.opPeakKiB);
  const start = kib((s) => s.result.rssStartKiB);
  return {
    id,
    op,
    n: samples.length,
    seconds,
    minSeconds: min(secs),
    maxSeconds: max(secs),
    bytes,
    gbps: bytes / seconds / GB,
    cpuPerWall: cpu ? median(samples.map((s) => s.result.cpuSeconds / s.result.seconds)) : null,
    peakRssMiB: memory && peak.length ? max(peak) / 1024 : null,
    opPeakRssMiB: memory && opPeak.length ? max(opPeak) / 1024 : null,
    rssStartMiB: memory && start.length ? median(start) / 1024 : null,
    compare,
    note,
  };
}

/** A row for a rate measured elsewhere (openssl speed). */
export function rateRow({ id, op, bytesPerSecond, note }) {
  return {
    id,
    op,
    n: 1,
    seconds: null,
    bytes: null,
    gbps: bytesPerSecond / GB,
    cpuPerWall: null,
    peakRssMiB: null,
    opPeakRssMiB: null,
    rssStartMiB: null,
    note,
  };
}

/** Fills each row's ratios (throughput ÷ baseline throughput) from the rows of all parts. */
export function resolveRatios(allRows) {
  const byId = new Map(allRows.map((r) => [r.id, r]));
  const ratio = (row, id) => (byId.has(id) && row.gbps ? row.gbps / byId.get(id).gbps : null);
  for (const r of allRows) {
    const c = r.compare ?? {};
    r.vsOpenssl1 = c.openssl ? ratio(r, `openssl-${c.openssl}-1`) : null;
    r.vsOpenssl2 = c.openssl ? ratio(r, `openssl-${c.openssl}-2`) : null;
    r.vsReference = c.reference ? ratio(r, c.reference) : null;
    r.vsBaseline = c.baseline ? ratio(r, c.baseline) : null;
    r.vsReferenceId = c.reference ?? null;
  }
  return byId;
}

export { MiB };
