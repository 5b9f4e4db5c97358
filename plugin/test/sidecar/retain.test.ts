// `retained` in a streaming Load: the client keeps a region whose tensors it still uses. The sidecar
// announces that it accepts it (accepts_retained, window_count in every streaming RegionReady), takes
// the region out of its window (closes its fd at once, never writes it again), and fills a new region
// instead. A retained, unknown, unmapped, consumed or resident region is ERR_CT_BAD_REQUEST. In-process
// sidecar, real encrypted model, the Node client of helpers.ts (an open fd stands in for a mapping).

import { status, type ClientDuplexStream, type StatusObject } from "@grpc/grpc-js";
import { closeSync, existsSync, openSync, readdirSync, readlinkSync, readSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../src/container/encrypt-file.js";
import { TrustStore } from "../../src/keys/trust.js";
import { startSidecar, type SidecarHandle } from "../../src/sidecar/index.js";
import { silentLogger } from "../../src/sidecar/log.js";
import type { LoadStart, RegionReady } from "../../src/sidecar/proto.js";
import { newEncryptionKey, newSigningKey, tempDir, writePlainSafetensors, type PlainTensor } from "../helpers.js";
import { auth, eventually, newClient, openRegions, rpcFailure, runLoad, tokenOf, unary, type SidecarClient } from "./helpers.js";

const MiB = 1024 * 1024;
const dir = tempDir("ct-retain-");
const encKey = newEncryptionKey();
const signKey = newSigningKey("publisher-1");
// 700 kB each: one tensor per 1 MiB region.
const tensors: PlainTensor[] = Array.from({ length: 6 }, (_, i) => ({ name: `layers.${i}.weight`, dtype: "F32", shape: [175, 1000] }));
const model = join(dir, "model.enc.safetensors");
let expected = new Map<string, Uint8Array>();
let sidecar: SidecarHandle;
let client: SidecarClient;
let modelId: string;
const md = () => auth(tokenOf(join(dir, "run", "s.sock")));

beforeAll(async () => {
  expected = writePlainSafetensors(join(dir, "model.safetensors"), tensors);
  await encryptFile(join(dir, "model.safetensors"), model, { key: encKey, signKey });
  sidecar = await startSidecar({
    socketPath: join(dir, "run", "s.sock"),
    keys: [encKey],
    trust: new TrustStore([signKey]),
    logger: silentLogger,
  });
  client = newClient(join(dir, "run", "s.sock"));
  modelId = (await unary(client, "OpenModel", { source: model }, md())).model_id;
});

afterAll(async () => {
  await unary(client, "CloseModel", { model_id: modelId }, md()).catch(() => {});
  client?.close();
  await sidecar?.close();
});

/** The fds of this process (the in-process sidecar's and the test's) open on `path`. */
function fdsOn(path: string): number {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).replace(/ \(deleted\)$/, "") === path) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

function read(fd: number, offset: number, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  expect(readSync(fd, out, 0, bytes, offset)).toBe(bytes);
  return out;
}

interface Kept {
  fd: number;
  path: string;
  ready: RegionReady;
}

/**
 * A streaming Load that reads every tensor, then releases each region as `release` says (the default
 * consumes). A retained region's fd stays open (the client's "mapping") and is returned.
 */
function streamLoad(start: Partial<LoadStart>, release: (ready: RegionReady, n: number) => "consumed" | "retained") {
  return new Promise<{ readies: RegionReady[]; got: Map<string, Buffer>; kept: Kept[]; fdsOnKept: number[] }>((resolve, reject) => {
    const call = client.Load!(md()) as ClientDuplexStream<object, any>;
    const fds = new Map<number, { fd: number; path: string }>();
    const readies: RegionReady[] = [];
    const got = new Map<string, Buffer>();
    const kept: Kept[] = [];
    const fdsOnKept: number[] = [];
    let problem: unknown = null;
    call.on("data", (msg: { ready?: RegionReady; done?: unknown }) => {
      if (problem) return;
      try {
        if (msg.done) return void call.end();
        const ready = msg.ready!;
        readies.push(ready);
        if (kept.length) fdsOnKept.push(fdsOn(kept[0]!.path));
        if (ready.path) {
          expect(fds.has(ready.region_id)).toBe(false);
          fds.set(ready.region_id, { fd: openSync(ready.path, "r"), path: ready.path });
          call.write({ mapped: { region_id: ready.region_id } });
        }
        const region = fds.get(ready.region_id);
        if (!region) throw new Error(`region ${ready.region_id} was never mapped (or was retained)`);
        for (const p of ready.tensors) got.set(p.name, read(region.fd, p.offset, p.byte_size));
        const how = release(ready, readies.length - 1);
        if (how === "retained") {
          fds.delete(ready.region_id);
          kept.push({ ...region, ready });
        }
        call.write({ [how]: { region_id: ready.region_id } });
      } catch (err) {
        problem = err;
        call.cancel();
      }
    });
    call.on("error", () => {});
    call.on("status", (s: StatusObject) => {
      for (const { fd } of fds.values()) closeSync(fd);
      if (problem) reject(problem);
      else if (s.code === status.OK) resolve({ readies, got, kept, fdsOnKept });
      else reject(new Error(`Load failed: ${s.code} ${s.details}`));
    });
    call.write({ start: { model_id: modelId, mode: "LOAD_MODE_STREAMING", window_bytes: MiB, ...start } });
  });
}

describe("retained regions", () => {
  it("streaming RegionReady says the sidecar accepts `retained` and gives the window's count; resident does not", async () => {
    const streaming = await runLoad(client, md(), { model_id: modelId, mode: "LOAD_MODE_STREAMING", window_bytes: MiB, window_count: 3 });
    expect(streaming.readies.every((r) => r.accepts_retained && r.window_count === 3)).toBe(true);
    const resident = await runLoad(client, md(), { model_id: modelId, mode: "LOAD_MODE_RESIDENT" });
    expect(resident.readies.every((r) => !r.accepts_retained && r.window_count === 0)).toBe(true);
  });

  it("a retained region is never written again, its fd is closed at once, and a new region takes its place", async () => {
    // A one-region window; the client keeps the 1st and the 4th batch.
    const { readies, got, kept, fdsOnKept } = await streamLoad({ window_count: 1 }, (_r, n) =>
      n === 0 || n === 3 ? "retained" : "consumed",
    );
    expect([...got.keys()]).toEqual(tensors.map((t) => t.name));
    for (const [name, bytes] of got) expect(Buffer.compare(bytes, Buffer.from(expected.get(name)!)), name).toBe(0);
    // Region ids: 1 (kept), 2 (new, reused twice, kept), 3 (new, reused): a retained id never comes back.
    expect(readies.map((r) => [r.region_id, r.path !== ""])).toEqual([
      [1, true],
      [2, true],
      [2, false],
      [2, false],
      [3, true],
      [3, false],
    ]);
    expect(kept.map((k) => k.ready.region_id)).toEqual([1, 2]);
    // The sidecar's fd on the first kept region was closed while the load went on: only the test's is left.
    expect(fdsOnKept.at(-1)).toBe(1);
    // The kept regions still hold their own batch, after the whole stream: nothing overwrote them.
    for (const k of kept) {
      for (const p of k.ready.tensors) {
        expect(Buffer.compare(read(k.fd, p.offset, p.byte_size), Buffer.from(expected.get(p.name)!)), p.name).toBe(0);
      }
      expect(existsSync(k.path)).toBe(false); // unlinked: its pages live only as long as the client's mapping
      closeSync(k.fd);
    }
    await eventually(() => openRegions().size === 0, "every region fd to be closed");
  });

  it("a client that keeps every region gets a new one for every batch, within the window", async () => {
    const { readies, got, kept } = await streamLoad({ window_count: 2 }, () => "retained");
    expect(got.size).toBe(tensors.length);
    expect(readies.every((r) => r.path !== "")).toBe(true);
    expect(kept.map((k) => k.ready.region_id)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const k of kept) closeSync(k.fd);
    await eventually(() => openRegions().size === 0, "every region fd to be closed");
  });

  it("`retained` of an unknown, unmapped, already retained or consumed region, or in a resident load, is ERR_CT_BAD_REQUEST", async () => {
    type Misbehave = (ready: RegionReady, call: ClientDuplexStream<object, any>) => void;
    const rid = (r: RegionReady) => ({ region_id: r.region_id });
    const streaming: Misbehave[] = [
      (r, c) => (c.write({ mapped: rid(r) }), c.write({ retained: { region_id: r.region_id + 7 } })), // unknown region
      (r, c) => c.write({ retained: rid(r) }), // before mapped
      (r, c) => (c.write({ mapped: rid(r) }), c.write({ retained: rid(r) }), c.write({ retained: rid(r) })), // twice
      (r, c) => (c.write({ mapped: rid(r) }), c.write({ retained: rid(r) }), c.write({ consumed: rid(r) })), // consumed after retained
      (r, c) => (c.write({ mapped: rid(r) }), c.write({ consumed: rid(r) }), c.write({ retained: rid(r) })), // its batch was consumed
    ];
    const cases: [Partial<LoadStart>, Misbehave][] = [
      ...streaming.map((m): [Partial<LoadStart>, Misbehave] => [{ mode: "LOAD_MODE_STREAMING", window_bytes: MiB, window_count: 1 }, m]),
      // (before `mapped`: once every resident region is mapped the load is done and later messages are moot)
      [{ mode: "LOAD_MODE_RESIDENT" }, (r, c) => (c.write({ retained: rid(r) }), c.write({ mapped: rid(r) }))],
    ];
    for (const [i, [start, misbehave]] of cases.entries()) {
      let first = true;
      const f = await rpcFailure(
        runLoad(
          client,
          md(),
          { model_id: modelId, ...start },
          {
            onReady: (ready, call) => {
              if (first) misbehave(ready, call);
              first = false;
              return "stop";
            },
          },
        ),
      ).catch((err: Error) => ({ code: -1, details: `case ${i}: ${err.message}`, ctCode: undefined }));
      expect(f, `case ${i}`).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
      expect(f.details).toMatch(i === 5 ? /only for streaming loads/ : /retained|not announced/);
      await eventually(() => openRegions().size === 0, "every region fd to be closed");
    }
  });
});
