// Shared by the Node child processes in bench/ops: memory probes and the result protocol.
// A child prints exactly one line `BENCH_RESULT {json}` on stdout; everything else is free text.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const KIB_FIELDS = ["VmRSS", "VmHWM", "RssAnon", "RssFile"];

/** Memory figures (KiB) from /proc/self/status. */
export function memStatus() {
  const text = readFileSync("/proc/self/status", "utf8");
  const out = {};
  for (const f of KIB_FIELDS) {
    const m = new RegExp(`^${f}:\\s+(\\d+) kB`, "m").exec(text);
    out[f] = m ? Number(m[1]) : null;
  }
  return out;
}

/**
 * Starts the measured section: records the peak so far, then resets the kernel's peak-RSS counter
 * (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0) so that VmHWM at the end is the peak of the
 * operation alone. Returns the probe to hand to {@link finish}.
 */
export function begin() {
  const before = memStatus();
  let reset = false;
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    reset = true;
  } catch {
    reset = false;
  }
  return { t0: performance.now(), cpu0: process.cpuUsage(), faults0: process.resourceUsage().minorPageFault, before, reset };
}

/**
 * Ends the measured section and prints the result line. `fields` may override `seconds` (e.g. a
 * median of repeats); cpuSeconds is user + system time of all the process's threads (libuv's pool too).
 */
export function finish(probe, fields) {
  const seconds = (performance.now() - probe.t0) / 1000;
  const cpu = process.cpuUsage(probe.cpu0);
  const after = memStatus();
  const result = {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    minorFaults: process.resourceUsage().minorPageFault - probe.faults0,
    ...fields,
    rssStartKiB: probe.before.VmRSS,
    prePeakKiB: probe.before.VmHWM,
    opPeakKiB: probe.reset ? after.VmHWM : null,
    rssEndKiB: after.VmRSS,
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
  return result;
}

/** Keys written by `ctensors keygen --out DIR` (reference JWK spelling). */
export function loadKeyDir(dir, api) {
  const read = (f) => api.parseJwk(JSON.parse(readFileSync(join(dir, f), "utf8")), f);
  return { enc: read("enc.jwk"), sign: read("sign.jwk"), trust: new api.TrustStore([read("sign.pub.jwk")]) };
}

/** The built package (run `npm run build` first). */
export function loadApi() {
  return import(new URL("../../plugin/dist/index.js", import.meta.url).href);
}

/** argv after the script: positional arguments only. */
export const args = process.argv.slice(2);
