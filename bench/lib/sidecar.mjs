// A sidecar (`ctensors serve`) as a measured child of the bench: started under GNU time (lifetime
// peak RSS), ready when its token file appears, stopped with SIGTERM sent to the node process itself
// (not to `time`), its JSON log lines collected. Also: /dev/shm usage sampled while a client runs.

import { spawn } from "node:child_process";
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { GNU_TIME } from "./child.mjs";

const MARK = "BENCH_MAXRSS_KIB=";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const kib = (pid, field) => {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
};

/**
 * @param {object} o
 * @param {string} o.cli       plugin's bin.js
 * @param {string} o.dir       a fresh directory for the socket (created 0700)
 * @param {string} o.keys      key dir from `ctensors keygen` (enc.jwk, sign.pub.jwk)
 * @param {string[]} [o.nodeArgs]  extra node flags (e.g. --cpu-prof)
 * @param {string[]} [o.serveArgs] extra `ctensors serve` options (e.g. --shm-dir DIR)
 */
export async function startSidecar({ cli, dir, keys, nodeArgs = [], serveArgs = [], cwd }) {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const socket = join(dir, "s.sock");
  const cmd = [
    process.execPath,
    ...nodeArgs,
    cli,
    "serve",
    "--socket",
    socket,
    "--key",
    join(keys, "enc.jwk"),
    "--trust",
    join(keys, "sign.pub.jwk"),
    ...serveArgs,
  ];
  const argv = GNU_TIME ? [GNU_TIME, "-f", `${MARK}%M`, ...cmd] : cmd;
  const child = spawn(argv[0], argv.slice(1), { cwd, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  let dead = null;
  exited.then((x) => {
    dead = x;
  });
  const t0 = performance.now();
  while (!existsSync(`${socket}.token`)) {
    if (dead) throw new Error(`sidecar exited before it was ready (${dead.signal ?? `exit ${dead.code}`}):\n${stderr.slice(-3000)}`);
    if (performance.now() - t0 > 30_000) {
      child.kill("SIGKILL");
      throw new Error(`sidecar not ready after 30 s:\n${stderr.slice(-3000)}`);
    }
    await sleep(20);
  }
  // The node process: time's only child (or the spawned process itself without GNU time).
  let pid = child.pid;
  if (GNU_TIME) {
    const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    if (kids.length !== 1)
      throw new Error(`cannot find the sidecar's pid under ${GNU_TIME} (${child.pid}): children ${JSON.stringify(kids)}`);
    pid = Number(kids[0]);
  }
  return {
    socket,
    pid,
    /** CPU seconds (user + system, all threads) the sidecar process has used so far. */
    cpuSeconds: () => processCpuSeconds(pid),
    readyMs: performance.now() - t0,
    /** SIGTERM, wait for the clean stop; returns its peak RSS and log events. */
    async stop() {
      const hwm = kib(pid, "VmHWM");
      process.kill(pid, "SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const { code, signal } = await exited;
      clearTimeout(timer);
      const m = new RegExp(`${MARK}(\\d+)`).exec(stderr);
      const events = stderr
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => {
          try {
            return JSON.parse(l);
          } catch {
            return null;
          }
        })
        .filter(Boolean);
      if (code !== 0) throw new Error(`sidecar stopped with ${signal ?? `exit ${code}`}:\n${stderr.slice(-3000)}`);
      return { maxRssKiB: m ? Number(m[1]) : hwm, events };
    },
  };
}

const CLK_TCK = 100; // USER_HZ: the unit of /proc/<pid>/stat times on Linux

/** utime + stime of a live process (all its threads), in seconds; null once it is gone. */
export function processCpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ").pop().split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/**
 * Runs one client against a fresh sidecar (`startSidecar` options) and stops it: the sample `run(sc)`
 * resolves with gets the sidecar's peak RSS, the /dev/shm peak over the run and the sidecar's
 * load.finished log line.
 */
export async function runWithSidecar(options, run) {
  const sc = await startSidecar(options);
  const shm = sampleFsUsage(shmDirOf(options.serveArgs ?? []));
  let sample;
  try {
    sample = await run(sc);
  } finally {
    const usage = shm.stop();
    const stopped = await sc.stop();
    if (sample)
      Object.assign(sample, {
        sidecarMaxRssKiB: stopped.maxRssKiB,
        shmPeakBytes: usage.peakBytes,
        sidecarLoad: stopped.events.find((e) => e.event === "load.finished") ?? null,
      });
  }
  return sample;
}

/** The region directory a sidecar started with these serve options uses. */
const shmDirOf = (serveArgs) => {
  const i = serveArgs.indexOf("--shm-dir");
  return i >= 0 ? serveArgs[i + 1] : "/dev/shm";
};

const HUGETLBFS_MAGIC = 0x958458f6;

/**
 * Samples used bytes of the file system at `path` (default /dev/shm) every `ms` until stop(). A
 * hugetlbfs mount without a size limit reports no blocks: its pool's used pages are counted instead
 * (total − free of its page size, the whole machine's).
 */
export function sampleFsUsage(path = "/dev/shm", ms = 10) {
  const used = () => {
    const s = statfsSync(path);
    if (s.type === HUGETLBFS_MAGIC && s.blocks === 0) {
      const base = `/sys/kernel/mm/hugepages/hugepages-${s.bsize / 1024}kB`;
      const n = (f) => Number(readFileSync(`${base}/${f}`, "utf8"));
      return (n("nr_hugepages") - n("free_hugepages")) * s.bsize;
    }
    return (s.blocks - s.bfree) * s.bsize;
  };
  const base = used();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, used());
  }, ms);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, used());
      return { baseBytes: base, peakBytes: peak - base };
    },
  };
}
