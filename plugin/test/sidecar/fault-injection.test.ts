// Fault injection for the sidecar: the real `ctensors serve` killed (SIGKILL) at each step of a load;
// real clients (the gRPC client of helpers.ts, and the Python shim in processes of its own) killed at
// each step; six concurrent clients with two killed mid-load; a full /dev/shm. After each: once the
// sidecar has restarted, no file in shared memory holds plaintext bytes of the models (file contents
// are scanned, not just names), and every client that survived got exact tensors.
//
// Every scenario runs in a mount namespace of its own with a private tmpfs on /dev/shm (unshare -m,
// held open by a `sleep`): sidecars and Python clients enter it with nsenter, this process reads it
// through /proc/<pid>/root. So what a kill leaves behind is seen exactly, and no other test's sidecar
// (they sweep too) removes it first. This needs root: the test fails, never skips, without it.

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync, statfsSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../src/container/encrypt-file.js";
import { publicKeyOf, toJwk } from "../../src/keys/jwk.js";
import {
  CLI,
  newEncryptionKey,
  newSigningKey,
  REPO_ROOT,
  tempDir,
  VENV_PYTHON,
  writePlainSafetensors,
  type PlainTensor,
} from "../helpers.js";
import type { LoadStart, RegionReady } from "../../src/sidecar/proto.js";
import { auth, eventually, newClient, rpcFailure, runLoad, tokenOf, unary } from "./helpers.js";

const dir = tempDir("ct-fi-");
const FAULT_CLIENT = join(import.meta.dirname, "fault_client.py");
const KiB = 1024;
const MiB = 1024 * KiB;
const encKey = newEncryptionKey("aes256gcm", "fi-enc");
const signKey = newSigningKey("fi-signer");
const keyFile = join(dir, "enc.jwk");
const pubFile = join(dir, "sign.pub.jwk");
// big: 8 x 4 MiB (one RESIDENT region of 32 MiB: long enough to be killed while it fills).
// small: 12 x 256 KiB (a 1 MiB streaming window holds four).
const bigTensors: PlainTensor[] = Array.from({ length: 8 }, (_, i) => ({ name: `layers.${i}.weight`, dtype: "F32", shape: [1024, 1024] }));
const smallTensors: PlainTensor[] = Array.from({ length: 12 }, (_, i) => ({ name: `blocks.${i}.weight`, dtype: "F32", shape: [128, 512] }));
const encBig = join(dir, "big.enc.safetensors");
const encSmall = join(dir, "small.enc.safetensors");
const smallExpected = join(dir, "small.expected.json");
let bigPlain = new Map<string, Uint8Array>();
let smallPlain = new Map<string, Uint8Array>();
let plaintextIndex: PlaintextIndex;
let socketCount = 0;

const RESIDENT: Partial<LoadStart> = { mode: "LOAD_MODE_RESIDENT" };
const STREAMING_1M: Partial<LoadStart> = { mode: "LOAD_MODE_STREAMING", window_bytes: MiB, window_count: 1 };

beforeAll(async () => {
  writeFileSync(keyFile, JSON.stringify(toJwk(encKey)), { mode: 0o600 });
  writeFileSync(pubFile, JSON.stringify(toJwk(publicKeyOf(signKey))));
  bigPlain = writePlainSafetensors(join(dir, "big.safetensors"), bigTensors);
  smallPlain = writePlainSafetensors(join(dir, "small.safetensors"), smallTensors);
  await encryptFile(join(dir, "big.safetensors"), encBig, { key: encKey, signKey });
  await encryptFile(join(dir, "small.safetensors"), encSmall, { key: encKey, signKey });
  plaintextIndex = new PlaintextIndex([...bigPlain.values(), ...smallPlain.values()]);
  // What the Python client compares with (fault_client.py verify): sha256, torch dtype, shape.
  const { createHash } = await import("node:crypto");
  const expected = Object.fromEntries(
    smallTensors.map((t) => [
      t.name,
      { sha256: createHash("sha256").update(smallPlain.get(t.name)!).digest("hex"), dtype: "torch.float32", shape: t.shape },
    ]),
  );
  writeFileSync(smallExpected, JSON.stringify(expected));
});

// --- plaintext scan ---------------------------------------------------------------------------------

/**
 * Every 64-byte block of the plaintext tensors, keyed by its first 8 bytes. Tensors sit at 64-byte
 * aligned offsets in regions, and the scan looks at every 8-byte aligned offset, so any block of
 * plaintext a file holds is found.
 */
class PlaintextIndex {
  private readonly blocks = new Map<number, Buffer[]>();

  constructor(tensors: Uint8Array[]) {
    for (const t of tensors) {
      const b = Buffer.from(t.buffer, t.byteOffset, t.byteLength);
      for (let o = 0; o + 64 <= b.length; o += 64) {
        const key = PlaintextIndex.key(b, o);
        const list = this.blocks.get(key) ?? [];
        list.push(b.subarray(o, o + 64));
        this.blocks.set(key, list);
      }
    }
  }

  private static key(b: Buffer, o: number): number {
    return b.readUInt32LE(o) * 2 ** 21 + (b.readUInt32LE(o + 4) & 0x1fffff);
  }

  /** Whether `data` holds any 64-byte block of plaintext at an 8-byte aligned offset. */
  holdsPlaintext(data: Buffer): boolean {
    for (let o = 0; o + 64 <= data.length; o += 8) {
      const list = this.blocks.get(PlaintextIndex.key(data, o));
      if (list?.some((block) => block.equals(data.subarray(o, o + 64)))) return true;
    }
    return false;
  }
}

/** The regular files under `shmDir` that hold plaintext of the test models (by content, whatever their name). */
function filesWithPlaintext(shmDir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(shmDir)) {
    const path = join(shmDir, name);
    try {
      const st = lstatSync(path);
      if (!st.isFile() || st.size === 0 || st.size > 2 * 1024 * MiB) continue;
      if (plaintextIndex.holdsPlaintext(readFileSync(path))) found.push(path);
    } catch {
      // gone meanwhile, or not readable: not one of ours
    }
  }
  return found;
}

function filesOf(instance: string, shmDir: string): string[] {
  return readdirSync(shmDir).filter((n) => n.startsWith(`ctensors-${instance}`));
}

/** Every region file in a private /dev/shm (whatever its name: all of it is the test's sidecars'). */
function regionFiles(shmDir: string): string[] {
  return readdirSync(shmDir).filter((n) => !n.endsWith(".live") && !n.endsWith(".binding"));
}

// --- a private /dev/shm ----------------------------------------------------------------------------

interface Namespace {
  holder: Proc;
  /** `/proc/<holder pid>/root`: prefixed to a path inside the namespace to reach it from here. */
  root: string;
  /** The namespace's /dev/shm, from here. */
  shm: string;
  /** Runs a command inside the namespace. */
  prefix: string[];
  /** Bytes in use in the namespace's /dev/shm. */
  used(): number;
}

async function privateShm(size: string): Promise<Namespace> {
  const holder = start("unshare", [
    "-m",
    "sh",
    "-c",
    `mount -t tmpfs -o size=${size},mode=1777 tmpfs /dev/shm && echo READY && exec sleep 900`,
  ]);
  running.add(holder.child);
  await eventually(() => holder.stdout().includes("READY") || holder.child.exitCode !== null, "the private tmpfs", 30_000);
  expect(holder.stdout(), `unshare -m and mount need root: ${holder.stderr()}`).toContain("READY");
  const root = `/proc/${holder.child.pid}/root`;
  const shm = `${root}/dev/shm`;
  return {
    holder,
    root,
    shm,
    prefix: ["nsenter", "-t", String(holder.child.pid), "-m", "--"],
    used: () => {
      const st = statfsSync(shm);
      return (st.blocks - st.bfree) * st.bsize;
    },
  };
}

// --- processes --------------------------------------------------------------------------------------

interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CTENSORS_SOCKET: "", ...env } });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

interface Sidecar extends Proc {
  ns: Namespace;
  socket: string;
  /** The shared-memory instance id (`shm_instance` of the startup line). */
  instance: string;
  events(name: string): Record<string, unknown>[];
}

/** `ctensors serve` on `socket` inside `ns`, once its startup line is out. */
async function serve(ns: Namespace, socket: string): Promise<Sidecar> {
  const argv = [...ns.prefix, process.execPath, CLI, "serve", "--socket", socket, "--key", keyFile, "--trust", pubFile];
  const proc = start(argv[0]!, argv.slice(1));
  running.add(proc.child);
  const events = (name: string) =>
    proc
      .stderr()
      .split("\n")
      .filter((l) => l.includes(`"event":"${name}"`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  await eventually(() => events("sidecar.started").length > 0 || proc.child.exitCode !== null, "the sidecar to start", 60_000);
  if (proc.child.exitCode !== null) throw new Error(`the sidecar did not start:\n${proc.stderr()}`);
  return { ...proc, ns, socket, instance: String(events("sidecar.started")[0]!.shm_instance), events };
}

async function kill9(proc: Proc): Promise<void> {
  proc.child.kill("SIGKILL");
  await proc.exit;
}

function newSocket(): string {
  return join(dir, "run", `s${socketCount++}.sock`);
}

/** The Python shim in a process of its own (fault_client.py), inside the sidecar's namespace. */
function python(sidecar: Sidecar, mode: string, model: string, ...extra: string[]): Proc {
  const argv = [...sidecar.ns.prefix, VENV_PYTHON, FAULT_CLIENT, sidecar.socket, mode, model, ...extra];
  const proc = start(argv[0]!, argv.slice(1), { PYTHONPATH: join(REPO_ROOT, "python-shim", "src") });
  running.add(proc.child);
  return proc;
}

async function pythonSays(proc: Proc, word: string): Promise<void> {
  await eventually(() => proc.stdout().startsWith(word) || proc.child.exitCode !== null, `the Python client to print ${word}`, 120_000);
  expect(proc.stdout(), proc.stderr()).toMatch(new RegExp(`^${word}`));
}

/** Calls `action` once, as soon as a region file appears in the private `shmDir` (inotify). */
function onRegionCreated(shmDir: string, action: () => void): () => void {
  let fired = false;
  const watcher = watch(shmDir, (_event, name) => {
    if (!fired && name && regionFiles(shmDir).includes(name)) {
      fired = true;
      action();
    }
  });
  return () => watcher.close();
}

// --- loads ------------------------------------------------------------------------------------------

/** Opens `source`, loads it as `start` says, checks every tensor byte for byte, closes the model. */
async function expectExactLoad(sidecar: Sidecar, source: string, want: Map<string, Uint8Array>, start: Partial<LoadStart> = RESIDENT) {
  const client = newClient(sidecar.socket);
  try {
    const md = auth(tokenOf(sidecar.socket));
    const { model_id } = await unary(client, "OpenModel", { source }, md);
    const got = await runLoad(client, md, { model_id, ...start }, { shmRoot: sidecar.ns.root });
    expect([...got.tensors.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, bytes] of want) expect(got.tensors.get(name)!.equals(Buffer.from(bytes)), name).toBe(true);
    await unary(client, "CloseModel", { model_id }, md);
  } finally {
    client.close();
  }
}

/** After a SIGKILL of `dead`: a new sidecar on its socket removes every file the dead one left, and serves exact tensors. */
async function restartAndCheck(dead: Sidecar): Promise<Sidecar> {
  const next = await serve(dead.ns, dead.socket);
  expect(filesWithPlaintext(dead.ns.shm)).toEqual([]);
  expect(regionFiles(dead.ns.shm)).toEqual([]); // nor a region the kill caught before it held any plaintext
  expect(filesOf(dead.instance, dead.ns.shm)).toEqual([]);
  expect(next.events("shm.swept")).toHaveLength(1); // `ctensors serve` says what it swept
  await expectExactLoad(next, encSmall, smallPlain, STREAMING_1M);
  return next;
}

async function stop(sidecar: Sidecar): Promise<void> {
  sidecar.child.kill("SIGTERM");
  expect(await sidecar.exit, sidecar.stderr()).toBe(0);
  expect(filesOf(sidecar.instance, sidecar.ns.shm)).toEqual([]);
}

// --- the sidecar killed -----------------------------------------------------------------------------

describe("the sidecar killed (SIGKILL) at each step of a load, then restarted", () => {
  let ns: Namespace;
  beforeAll(async () => {
    ns = await privateShm("128m");
  });
  afterAll(() => ns?.holder.child.kill("SIGKILL"));

  it("after OpenModel", async () => {
    const sidecar = await serve(ns, newSocket());
    const client = newClient(sidecar.socket);
    await unary(client, "OpenModel", { source: encBig }, auth(tokenOf(sidecar.socket)));
    client.close();
    await kill9(sidecar);
    await stop(await restartAndCheck(sidecar));
  });

  it("while a region is being created and filled: the region file is swept at restart", async () => {
    const sidecar = await serve(ns, newSocket());
    const client = newClient(sidecar.socket);
    const md = auth(tokenOf(sidecar.socket));
    const { model_id } = await unary(client, "OpenModel", { source: encBig }, md);
    const stopWatching = onRegionCreated(ns.shm, () => sidecar.child.kill("SIGKILL"));
    const readies: RegionReady[] = [];
    try {
      await rpcFailure(runLoad(client, md, { model_id, ...RESIDENT }, { shmRoot: ns.root, onReady: (r) => void readies.push(r) }));
    } finally {
      stopWatching();
      client.close();
    }
    await sidecar.exit;
    expect(readies).toEqual([]); // killed before the region was handed over
    expect(regionFiles(ns.shm)).toHaveLength(1); // what the kill leaves behind: the 32 MiB region
    await stop(await restartAndCheck(sidecar));
  });

  it("after the region is handed over, before the sidecar unlinks it: swept, and the client's mapping keeps exact bytes", async () => {
    const sidecar = await serve(ns, newSocket());
    const client = newClient(sidecar.socket);
    const md = auth(tokenOf(sidecar.socket));
    const { model_id } = await unary(client, "OpenModel", { source: encSmall }, md);
    const held: { fd: number; ready: RegionReady }[] = [];
    await rpcFailure(
      runLoad(
        client,
        md,
        { model_id, ...RESIDENT },
        {
          onReady: (ready) => {
            held.push({ fd: openSync(ns.root + ready.path, "r"), ready }); // the client's mapping; `mapped` is never sent
            sidecar.child.kill("SIGKILL");
            return "stop";
          },
        },
      ),
    );
    client.close();
    await sidecar.exit;
    expect(held).toHaveLength(1);
    const { fd, ready } = held[0]!;
    try {
      expect(filesWithPlaintext(ns.shm)).toEqual([ns.root + ready.path]); // the probe finds what a kill leaves behind
      const next = await restartAndCheck(sidecar);
      expect(next.events("shm.swept")).toEqual([
        expect.objectContaining({ dir: "/dev/shm", instances: 1, regions: 1, bytes: ready.region_bytes }),
      ]);
      expect(existsSync(ns.root + ready.path)).toBe(false);
      // The sweep unlinked the file without truncating it: the client still reads every tensor exactly.
      for (const p of ready.tensors) {
        const bytes = Buffer.alloc(p.byte_size);
        expect(readSync(fd, bytes, 0, p.byte_size, p.offset)).toBe(p.byte_size);
        expect(bytes.equals(Buffer.from(smallPlain.get(p.name)!)), p.name).toBe(true);
      }
      await stop(next);
    } finally {
      closeSync(fd);
    }
  });

  it("during release: after `done`, while the client closes the model", async () => {
    const sidecar = await serve(ns, newSocket());
    const client = newClient(sidecar.socket);
    const md = auth(tokenOf(sidecar.socket));
    const { model_id } = await unary(client, "OpenModel", { source: encSmall }, md);
    await runLoad(client, md, { model_id, ...STREAMING_1M }, { shmRoot: ns.root });
    const closing = unary(client, "CloseModel", { model_id }, md).catch(() => {});
    sidecar.child.kill("SIGKILL");
    await closing;
    client.close();
    await sidecar.exit;
    await stop(await restartAndCheck(sidecar));
  });

  it("a live sidecar on another socket keeps its regions while a restarted one sweeps the dead one's", async () => {
    const live = await serve(ns, newSocket());
    const dead = await serve(ns, newSocket());
    const [liveClient, deadClient] = [newClient(live.socket), newClient(dead.socket)];
    const [liveMd, deadMd] = [auth(tokenOf(live.socket)), auth(tokenOf(dead.socket))];
    // The live sidecar's region is announced and not yet mapped: its file is still named.
    const liveModel = (await unary(liveClient, "OpenModel", { source: encSmall }, liveMd)).model_id;
    let liveReady: RegionReady | null = null;
    const liveLoad = rpcFailure(
      runLoad(
        liveClient,
        liveMd,
        { model_id: liveModel, ...RESIDENT },
        {
          onReady: (ready, call) => {
            liveReady = ready;
            void restarted.then(() => call.cancel());
            return "stop";
          },
        },
      ),
    );
    let restart!: () => void; // then the live sidecar's client cancels its load
    const restarted = new Promise<void>((resolve) => (restart = resolve));
    await eventually(() => liveReady !== null, "the live sidecar's RegionReady");
    const deadModel = (await unary(deadClient, "OpenModel", { source: encSmall }, deadMd)).model_id;
    await rpcFailure(
      runLoad(
        deadClient,
        deadMd,
        { model_id: deadModel, ...RESIDENT },
        {
          onReady: () => {
            dead.child.kill("SIGKILL");
            return "stop";
          },
        },
      ),
    );
    await dead.exit;
    const next = await serve(ns, dead.socket);
    expect(next.events("shm.swept")).toEqual([expect.objectContaining({ instances: 1, regions: 1 })]);
    expect(filesOf(dead.instance, ns.shm)).toEqual([]);
    const path = ns.root + liveReady!.path;
    expect(filesWithPlaintext(ns.shm)).toEqual([path]); // the live one's region, untouched
    for (const p of liveReady!.tensors)
      expect(
        readFileSync(path)
          .subarray(p.offset, p.offset + p.byte_size)
          .equals(Buffer.from(smallPlain.get(p.name)!)),
      ).toBe(true);
    restart();
    expect((await liveLoad).code).toBe(1); // cancelled by the client: then the live sidecar unlinks it
    await eventually(() => !existsSync(path), "the live sidecar to release its region");
    liveClient.close();
    deadClient.close();
    await stop(next);
    await stop(live);
  });
});

// --- clients killed ---------------------------------------------------------------------------------

describe("clients killed (SIGKILL) at each step of a load", () => {
  let ns: Namespace;
  let sidecar: Sidecar;
  beforeAll(async () => {
    ns = await privateShm("128m");
    sidecar = await serve(ns, newSocket());
  });
  afterAll(() => ns?.holder.child.kill("SIGKILL"));

  async function expectReleasedAndServing(): Promise<void> {
    await eventually(() => regionFiles(ns.shm).length === 0, "the sidecar to release the dead client's regions", 30_000);
    expect(filesWithPlaintext(ns.shm)).toEqual([]);
    await expectExactLoad(sidecar, encSmall, smallPlain, RESIDENT);
  }

  /** The sources the sidecar holds open (Health). */
  async function openModels(): Promise<string[]> {
    const client = newClient(sidecar.socket);
    try {
      return (await unary(client, "Health", {}, auth(tokenOf(sidecar.socket)))).open_models as string[];
    } finally {
      client.close();
    }
  }

  it("after OpenModel (Python shim): the model is closed (its data keys zeroed), not held until the sidecar stops", async () => {
    const client = python(sidecar, "open-hang", encBig);
    await pythonSays(client, "OPENED");
    expect(await openModels()).toEqual([encBig]);
    const ended = sidecar.events("session.ended").length;
    await kill9(client);
    await eventually(() => sidecar.events("session.ended").length > ended, "the dead client's session to end", 30_000);
    expect(sidecar.events("session.ended").at(-1)).toMatchObject({ why: "client gone", released_models: 1 });
    expect(sidecar.events("model.closed").at(-1)).toMatchObject({ source: encBig });
    expect(await openModels()).toEqual([]);
    await expectReleasedAndServing();
  });

  it("while its region is being filled (Python shim)", async () => {
    const client = python(sidecar, "hold", encBig);
    const stopWatching = onRegionCreated(ns.shm, () => client.child.kill("SIGKILL"));
    try {
      expect(await client.exit).toBeNull(); // killed, not exited
    } finally {
      stopWatching();
    }
    expect(client.stdout()).toBe("");
    await expectReleasedAndServing();
  });

  it("holding a mapped streaming region (Python shim)", async () => {
    const client = python(sidecar, "stream-hang", encSmall);
    await pythonSays(client, "LOADING");
    await kill9(client);
    await expectReleasedAndServing();
  });

  it("after the load, holding every tensor (Python shim)", async () => {
    const client = python(sidecar, "hold", encSmall);
    await pythonSays(client, "LOADED");
    await kill9(client);
    await expectReleasedAndServing();
  });

  it("then the sidecar itself is killed and restarted: nothing left", async () => {
    await kill9(sidecar);
    await stop(await restartAndCheck(sidecar));
  });
});

describe("six concurrent clients, two killed mid-load", () => {
  it("the four others get exact tensors; nothing is left once the sidecar has restarted", { timeout: 300_000 }, async () => {
    const ns = await privateShm("128m");
    try {
      const sidecar = await serve(ns, newSocket());
      const doomed = [python(sidecar, "stream-hang", encSmall), python(sidecar, "stream-hang", encSmall)];
      const survivors = Array.from({ length: 4 }, () => python(sidecar, "verify", encSmall, smallExpected));
      await Promise.all(doomed.map((c) => pythonSays(c, "LOADING")));
      await Promise.all(doomed.map(kill9));
      for (const c of survivors) {
        expect(await c.exit, c.stdout() + c.stderr()).toBe(0);
        expect(c.stdout().trim()).toBe("OK");
      }
      await eventually(() => regionFiles(ns.shm).length === 0, "every region to be released", 30_000);
      await kill9(sidecar);
      await stop(await restartAndCheck(sidecar));
    } finally {
      ns.holder.child.kill("SIGKILL");
    }
  });
});

// --- a full /dev/shm --------------------------------------------------------------------------------

describe("a full /dev/shm (a private 1.5 MiB tmpfs)", () => {
  it("a load that does not fit fails cleanly; a dead sidecar's leftovers are swept at restart, freeing the space", {
    timeout: 300_000,
  }, async () => {
    const ns = await privateShm("1536k");
    try {
      expect(ns.used()).toBe(0);
      const first = await serve(ns, newSocket());
      // 3 MiB of tensors in one RESIDENT region: the tmpfs fills up mid-region.
      const client = newClient(first.socket);
      const md = auth(tokenOf(first.socket));
      const { model_id } = await unary(client, "OpenModel", { source: encSmall }, md);
      const full = await rpcFailure(runLoad(client, md, { model_id, ...RESIDENT }, { shmRoot: ns.root }));
      expect(full.ctCode, full.details).toBeDefined();
      expect(regionFiles(ns.shm)).toEqual([]);
      expect(ns.used()).toBe(0);
      // A 1 MiB streaming window fits.
      await expectExactLoad(first, encSmall, smallPlain, STREAMING_1M);
      // Killed once its window is filled and handed over: 1 MiB of plaintext stays in the tmpfs.
      await rpcFailure(
        runLoad(
          client,
          md,
          { model_id, ...STREAMING_1M },
          {
            onReady: () => {
              first.child.kill("SIGKILL");
              return "stop";
            },
          },
        ),
      );
      client.close();
      await first.exit;
      expect(filesWithPlaintext(ns.shm)).toHaveLength(1);
      expect(ns.used()).toBeGreaterThanOrEqual(MiB);

      // The next sidecar sweeps it (and says so), so that its own 1 MiB window fits again.
      const second = await restartAndCheck(first);
      expect(second.events("shm.swept")).toEqual([expect.objectContaining({ dir: "/dev/shm", instances: 1, regions: 1, bytes: MiB })]);
      second.child.kill("SIGTERM");
      expect(await second.exit, second.stderr()).toBe(0);
      expect(readdirSync(ns.shm)).toEqual([]);
      expect(ns.used()).toBe(0);
    } finally {
      ns.holder.child.kill("SIGKILL");
    }
  });
});
