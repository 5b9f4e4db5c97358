// A private /dev/shm for a test: a mount namespace of its own (unshare -m) with a tmpfs of a chosen
// size on /dev/shm, held open by a `sleep`. Sidecars and clients enter it with nsenter; the test
// process reads it through /proc/<holder pid>/root. This is how a container's small /dev/shm (Docker's
// 64 MB default) is reproduced without a container runtime. Needs root: a test that uses it fails,
// never skips, without it.

import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, statfsSync } from "node:fs";
import { afterAll, beforeAll, expect } from "vitest";
import { CLI } from "../helpers.js";
import { eventually } from "./helpers.js";

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** Spawns `command` (killed at the end of the test file if still running), collecting its output. */
export function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CTENSORS_SOCKET: "", ...env } });
  running.add(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

export interface Namespace {
  holder: Proc;
  /** `/proc/<holder pid>/root`: prefixed to a path inside the namespace to reach it from here. */
  root: string;
  /** The namespace's /dev/shm, from here. */
  shm: string;
  /** Runs a command inside the namespace. */
  prefix: string[];
  /** Bytes in use in the namespace's /dev/shm. */
  used(): number;
  /** Files in the namespace's /dev/shm other than liveness sockets. */
  leftovers(): string[];
  close(): void;
}

/**
 * A mount namespace whose /dev/shm is a fresh tmpfs of `size` (mount's syntax: 64m, 1536k), or with
 * `fs` "hugetlbfs" a hugetlbfs mount of the host's reserved huge pages (`size` "" for no limit);
 * `at` mounts it elsewhere instead of on /dev/shm (`shm` and `leftovers` then look there).
 */
export async function privateShm(size: string, fs: "tmpfs" | "hugetlbfs" = "tmpfs", at = "/dev/shm"): Promise<Namespace> {
  const options = [size ? `size=${size}` : "", "mode=1777"].filter(Boolean).join(",");
  const holder = start("unshare", ["-m", "sh", "-c", `mount -t ${fs} -o ${options} ${fs} ${at} && echo READY && exec sleep 900`]);
  await eventually(() => holder.stdout().includes("READY") || holder.child.exitCode !== null, "the private tmpfs", 30_000);
  expect(holder.stdout(), `unshare -m and mount need root: ${holder.stderr()}`).toContain("READY");
  const root = `/proc/${holder.child.pid}/root`;
  const shm = `${root}${at}`;
  return {
    holder,
    root,
    shm,
    prefix: ["nsenter", "-t", String(holder.child.pid), "-m", "--"],
    used: () => {
      const st = statfsSync(shm);
      return (st.blocks - st.bfree) * st.bsize;
    },
    leftovers: () => readdirSync(shm).filter((n) => !n.endsWith(".live")),
    close: () => void holder.child.kill("SIGKILL"),
  };
}

export interface Sidecar extends Proc {
  socket: string;
  events(name: string): Record<string, unknown>[];
}

/** `ctensors serve --socket <socket> ...args` inside `ns`, once its startup line is out. */
export async function serveIn(ns: Namespace, socket: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Sidecar> {
  const argv = [...ns.prefix, process.execPath, CLI, "serve", "--socket", socket, ...args];
  const proc = start(argv[0]!, argv.slice(1), env);
  const events = (name: string) =>
    proc
      .stderr()
      .split("\n")
      .filter((l) => l.includes(`"event":"${name}"`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  await eventually(() => events("sidecar.started").length > 0 || proc.child.exitCode !== null, "the sidecar to start", 60_000);
  if (proc.child.exitCode !== null) throw new Error(`the sidecar did not start:\n${proc.stderr()}`);
  return { ...proc, socket, events };
}

/** SIGTERM, and the exit status (0 for an orderly stop). */
export async function stopSidecar(sidecar: Sidecar): Promise<number | null> {
  sidecar.child.kill("SIGTERM");
  return sidecar.exit;
}

/**
 * For a describe block: a namespace (`privateShm(size, fs)`) and a sidecar `serve` starts in it before
 * the block's tests (handed to `use`), stopped after them with an orderly stop (exit 0) and nothing left
 * in the namespace's /dev/shm.
 */
export function namespaceWithSidecar(
  size: string,
  fs: "tmpfs" | "hugetlbfs",
  serve: (ns: Namespace) => Promise<Sidecar>,
  use: (ns: Namespace, sidecar: Sidecar) => void,
): void {
  let ns: Namespace | undefined;
  let sidecar: Sidecar | undefined;
  beforeAll(async () => {
    ns = await privateShm(size, fs);
    sidecar = await serve(ns);
    use(ns, sidecar);
  }, 120_000);
  afterAll(async () => {
    if (sidecar) expect(await stopSidecar(sidecar), sidecar.stderr()).toBe(0);
    if (ns) {
      expect(ns.leftovers()).toEqual([]);
      ns.close();
    }
  });
}
