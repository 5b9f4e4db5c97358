// Facts about the machine a run happened on, for the report.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { opensslVersion } from "./openssl.mjs";

function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

export async function machineFacts({ python, workDir }) {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1].split(/\s+/) ?? [];
  const aesFlags = ["aes", "pclmulqdq", "avx2", "vaes", "vpclmulqdq", "avx512f", "sha_ni"].filter((f) => flags.includes(f));
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const pyVersions = python
    ? tryRun(python, [
        "-c",
        "import sys, torch, safetensors, importlib.metadata as m; print(sys.version.split()[0], torch.__version__, safetensors.__version__, m.version('cryptotensors'))",
      ])
    : null;
  const [pyV, torchV, stV, ctV] = pyVersions?.split(" ") ?? [];
  return {
    date: new Date().toISOString(),
    nproc: tryRun("nproc", []) ?? String(os.availableParallelism()),
    cpu: model,
    cpuFlags: aesFlags.join(" "),
    memGiB: (memKiB / 1024 / 1024).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    systemOpenssl: await opensslVersion(),
    python: pyV ?? null,
    torch: torchV ?? null,
    safetensors: stV ?? null,
    cryptotensors: ctV ?? null,
    workDir,
    workFs: tryRun("stat", ["-f", "-c", "%T", workDir]),
    hugePages: shmHugePages(),
  };
}

/**
 * Whether the sidecar's regions can get huge pages: /dev/shm's tmpfs `huge=` mount option (none =
 * never), the kernel's shmem THP setting and reserved hugetlb pages. Regions are written with pwrite,
 * so only `huge=always` or `huge=within_size` on the mount (or shmem_enabled `force`) would give them
 * huge pages; "absent" means every region page is 4 KiB.
 */
export function shmHugePages(dir = "/dev/shm") {
  const read = (p) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  const mount = read("/proc/mounts")
    .split("\n")
    .map((l) => l.split(" "))
    .findLast((f) => f[1] === dir);
  const huge = /(?:^|,)huge=([a-z_]+)/.exec(mount?.[3] ?? "")?.[1] ?? "never";
  const shmem = /\[(\w+)\]/.exec(read("/sys/kernel/mm/transparent_hugepage/shmem_enabled"))?.[1] ?? "unknown";
  const hugetlb = Number(/^HugePages_Total:\s+(\d+)/m.exec(read("/proc/meminfo"))?.[1] ?? 0);
  const used = shmem === "force" || (shmem !== "deny" && (huge === "always" || huge === "within_size"));
  return { dir, mountHuge: huge, shmemEnabled: shmem, hugetlbPages: hugetlb, used };
}

/** Free bytes on the file system holding `dir`. */
export function freeBytes(dir) {
  const out = tryRun("df", ["--output=avail", "-B1", dir]);
  const n = Number(out?.split("\n").at(-1)?.trim());
  return Number.isFinite(n) ? n : null;
}

/** MemAvailable from /proc/meminfo, bytes. */
export function availableMemoryBytes() {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : null;
}

/** Aggregate CPU counters from /proc/stat (jiffies). */
export function cpuTimes() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { total: f.reduce((a, b) => a + b, 0), idle: idle + iowait, steal: steal ?? 0, busy: user + nice + system + irq + softirq };
}

/** Machine-wide CPU use between two cpuTimes() samples: busy and steal as shares of all CPU time. */
export function cpuShare(a, b) {
  const total = b.total - a.total || 1;
  return { busy: (b.busy - a.busy) / total, steal: (b.steal - a.steal) / total };
}

export function loadAverage() {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** This process's CPU time plus that of its waited-for children (jiffies, /proc/self/stat). */
export function ownCpuTicks() {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat
    .slice(stat.lastIndexOf(")") + 2)
    .split(" ")
    .map(Number); // f[0] is field 3 (state)
  return f[11] + f[12] + f[13] + f[14]; // utime stime cutime cstime (fields 14–17)
}
