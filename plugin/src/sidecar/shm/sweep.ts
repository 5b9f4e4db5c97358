// Removes the regions of sidecars that died without cleaning up (SIGKILL, OOM kill, power to the
// process cut mid-load): they hold decrypted tensors in /dev/shm until someone unlinks them.
//
// A region is attributed by its name to a sidecar instance (`ctensors-<id>-<32 hex>`), and an
// instance is judged by its liveness socket `ctensors-<id>.live` (instance.ts): only when connecting
// to it is refused (ECONNREFUSED: the socket exists and nobody listens, so its owner is gone) are the
// instance's regions and socket removed. Anything else keeps them: a connection (alive, even if
// stopped or busy), EAGAIN (alive with a full backlog), EACCES, a timeout, no liveness socket at all.
// Only files of this user are touched (other users' files are never ours to judge), only regular
// files under region names, and never anything under another name.
//
// Swept regions are unlinked, not truncated: a client of the dead sidecar may still map one (it had
// mapped it, and the sidecar died before unlinking), and a mapping past the end of a truncated file
// is SIGBUS. When nothing maps a region, unlinking frees its pages at once.

import { connect } from "node:net";
import { lstat, readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { LIVENESS_NAME, REGION_NAME, SHM_DIR } from "./instance.js";

/** How long a liveness probe may take before the instance is assumed alive. */
const PROBE_TIMEOUT_MS = 2000;

export type Liveness = "live" | "dead" | "unknown";

export interface SweepReport {
  /** Dead instances whose files were removed. */
  instances: number;
  /** Regions removed, and the bytes they held. */
  regions: number;
  bytes: number;
  /** Regions of this user left alone because their instance has no liveness socket (it cannot be judged). */
  unattributed: number;
}

/** Connects to a liveness socket: "dead" only on ECONNREFUSED. */
export function probeLiveness(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Liveness> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (verdict: Liveness) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => done("unknown"), timeoutMs);
    socket.once("connect", () => done("live"));
    socket.once("error", (err: NodeJS.ErrnoException) => done(err.code === "ECONNREFUSED" ? "dead" : "unknown"));
  });
}

async function ownStat(path: string, uid: number | undefined) {
  const st = await lstat(path).catch(() => null);
  if (!st || (uid !== undefined && st.uid !== uid)) return null;
  return st;
}

/** Sweeps `dir` (default /dev/shm) once. Never throws for a file it cannot read or remove: it leaves it. */
export async function sweepStaleRegions(dir = SHM_DIR): Promise<SweepReport> {
  const report: SweepReport = { instances: 0, regions: 0, bytes: 0, unattributed: 0 };
  const uid = process.geteuid?.();
  const regionsOf = new Map<string, string[]>();
  const withLiveness = new Set<string>();
  for (const name of await readdir(dir)) {
    const region = REGION_NAME.exec(name);
    if (region) {
      const list = regionsOf.get(region[1]!) ?? [];
      list.push(join(dir, name));
      regionsOf.set(region[1]!, list);
      continue;
    }
    const liveness = LIVENESS_NAME.exec(name);
    if (liveness) withLiveness.add(liveness[1]!);
  }

  for (const [id, regions] of regionsOf) {
    if (withLiveness.has(id)) continue;
    for (const path of regions) if (await ownStat(path, uid)) report.unattributed++;
  }

  for (const id of withLiveness) {
    const livenessPath = join(dir, `ctensors-${id}.live`);
    const st = await ownStat(livenessPath, uid);
    if (!st?.isSocket() || (await probeLiveness(livenessPath)) !== "dead") continue;
    // Regions first, the liveness socket last: a sweep cut short is finished by the next one.
    for (const path of regionsOf.get(id) ?? []) {
      const region = await ownStat(path, uid);
      if (!region?.isFile()) continue;
      try {
        await unlink(path);
        report.regions++;
        report.bytes += region.size;
      } catch {
        // removed by a concurrent sweep, or not ours to remove
      }
    }
    await unlink(livenessPath).catch(() => {});
    report.instances++;
  }
  return report;
}
