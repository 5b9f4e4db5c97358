// A container's small /dev/shm (Docker's 64 MB default), reproduced with a private tmpfs (private-shm.ts):
// the real `ctensors serve` and real clients (the Python shim, the vLLM loader's weight source, the
// gRPC client of helpers.ts) inside it. A model larger than /dev/shm streams (the window shrinks to fit,
// never below the largest tensor); a resident load is refused up front with the sizing error (needed
// and free bytes, the remedies); a /dev/shm that fills up during a load (another process took the
// space) gives the same error, from the region's allocation (native engine) or from the writes (JS
// engine); a largest tensor that cannot fit once is refused. Nothing is left in /dev/shm after any.

import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { beforeAll, describe, expect, it } from "vitest";
import { tempDir, type PlainTensor } from "../helpers.js";
import type { LoadStart } from "../../src/sidecar/proto.js";
import { auth, eventually, newClient, rpcFailure, runLoad, tokenOf, unary } from "./helpers.js";
import { namespaceWithSidecar, privateShm, serveIn, stopSidecar, type Namespace, type Sidecar } from "./private-shm.js";
import { runShim, writeShimModel, type ShimModel } from "./shim-model.js";

const MiB = 1024 * 1024;
const dir = tempDir("ct-smallshm-");
// 10 x 8 MiB: 80 MiB of tensors, more than the 64 MiB /dev/shm; the largest tensor (8 MiB) fits.
const tensors: PlainTensor[] = Array.from({ length: 10 }, (_, i) => ({ name: `layers.${i}.weight`, dtype: "F32", shape: [2048, 1024] }));
const MODEL_BYTES = 80 * MiB;
let m: ShimModel;
let sockets = 0;

beforeAll(async () => {
  m = await writeShimModel(dir, tensors, "shm");
});

function newSocket(): string {
  return join(dir, "run", `s${sockets++}.sock`);
}

function serve(ns: Namespace, env: NodeJS.ProcessEnv = {}): Promise<Sidecar> {
  return serveIn(ns, newSocket(), ["--key", m.keyFile, "--trust", m.pubFile], env);
}

function expectSizingError(message: string, needed: number): void {
  expect(message).toContain(`needs ${needed} bytes`);
  expect(message).toMatch(/\d+ bytes \([\d.]+ MiB\) are free/);
  for (const remedy of ["--shm-size=", "--ipc=host", "medium: Memory", "sizeLimit"]) expect(message).toContain(remedy);
  expect(message).not.toMatch(/status \d/);
}

async function gone(ns: Namespace): Promise<void> {
  await eventually(() => ns.leftovers().length === 0 && ns.used() === 0, "/dev/shm to be empty again");
}

describe("a model larger than a 64 MiB /dev/shm", () => {
  let ns: Namespace;
  let sidecar: Sidecar;

  namespaceWithSidecar("64m", "tmpfs", serve, (n, s) => {
    ns = n;
    sidecar = s;
  });

  it("the vLLM loader's weights stream with the sidecar's default window, shrunk to fit", { timeout: 180_000 }, async () => {
    const result = await runShim(ns, sidecar, "vllm", m);
    expect(result).toEqual({ ok: true, tensors: 10, mismatch: [] });
    const started = sidecar.events("load.started").at(-1)!;
    expect(started).toMatchObject({ mode: "streaming", bytes: MODEL_BYTES });
    const window = Number(started.window_bytes) * Number(started.window_count);
    expect(window).toBeLessThanOrEqual(64 * MiB);
    expect(Number(started.window_bytes)).toBeGreaterThanOrEqual(8 * MiB);
    expect(Number(started.window_bytes)).toBeLessThan(256 * MiB); // the default, had it not been shrunk
    await gone(ns);
  });

  it("a model that keeps every weight gets the sizing error naming the regions it keeps, never wrong bytes", {
    timeout: 180_000,
  }, async () => {
    // The vLLM loader's default (copy "auto") retains each region the model still uses; the window's
    // next region is then measured against what the kept regions left free.
    const result = await runShim(ns, sidecar, "vllm-keep", m);
    expect(result).toMatchObject({ ok: false, code: "ERR_CT_IO" });
    expect(result.message).toMatch(
      /a new region of its window: the client keeps \d+ region\(s\) \(\d+ bytes\) whose tensors it still uses/,
    );
    expect(result.message).toContain("--shm-size=");
    await gone(ns);
  });

  it("ctensors.safe_open().stream() (Python shim) streams it too", { timeout: 180_000 }, async () => {
    expect(await runShim(ns, sidecar, "stream", m)).toEqual({ ok: true, tensors: 10, mismatch: [] });
    await gone(ns);
  });

  it("a window asked larger than /dev/shm (4 x 256 MiB) is shrunk: every byte arrives", { timeout: 120_000 }, async () => {
    const client = newClient(sidecar.socket);
    try {
      const md = auth(tokenOf(sidecar.socket));
      const { model_id } = await unary(client, "OpenModel", { source: m.model }, md);
      const got = await runLoad(
        client,
        md,
        { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: 256 * MiB, window_count: 4 },
        { shmRoot: ns.root },
      );
      for (const [name, bytes] of m.plain) expect(got.tensors.get(name)!.equals(Buffer.from(bytes)), name).toBe(true);
      const regionBytes = got.readies[0]!.region_bytes;
      const regions = new Set(got.readies.map((r) => r.region_id)).size;
      expect(regions * regionBytes).toBeLessThanOrEqual(64 * MiB);
      expect(regionBytes).toBeGreaterThanOrEqual(8 * MiB);
      await unary(client, "CloseModel", { model_id }, md);
    } finally {
      client.close();
    }
    await gone(ns);
  });

  it("a resident load (ctensors.load_file) is refused up front with the sizing error; nothing is created", {
    timeout: 180_000,
  }, async () => {
    const result = await runShim(ns, sidecar, "resident", m);
    expect(result.ok).toBe(false);
    expect(result.code).toBe("ERR_CT_IO");
    expectSizingError(result.message!, MODEL_BYTES);
    expect(result.message).toContain("streaming mode (it needs 8.0 MiB at least, which fits)");
    expect(sidecar.events("rpc.refused").at(-1)).toMatchObject({ error_code: "ERR_CT_IO", mode: "resident" });
    await gone(ns);
  });
});

describe("/dev/shm filling up during a load (another process takes the space)", () => {
  // The sidecar is stopped (SIGSTOP) as soon as its first region file appears, the rest of the tmpfs
  // is filled, and the sidecar continued: the load must then fail with the sizing error, whether the
  // shortage shows at a region's allocation (native engine: fallocate) or at a write (JS engine).
  for (const engine of ["native", "js"] as const) {
    it(`fails with the sizing error, RESOURCE_EXHAUSTED, nothing left behind (${engine} engine)`, { timeout: 180_000 }, async () => {
      const ns = await privateShm("64m");
      const sidecar = await serve(ns, { CTENSORS_ENGINE: engine });
      const client = newClient(sidecar.socket);
      const ballast = join(ns.shm, "ballast");
      const { watch } = await import("node:fs");
      const watcher = watch(ns.shm, (_event, name) => {
        if (!name?.startsWith("ctensors-") || name.endsWith(".live") || name.endsWith(".binding")) return;
        watcher.close();
        sidecar.child.kill("SIGSTOP");
        fill(ballast);
        sidecar.child.kill("SIGCONT");
      });
      try {
        const md = auth(tokenOf(sidecar.socket));
        const { model_id } = await unary(client, "OpenModel", { source: m.model }, md);
        const start: Partial<LoadStart> = { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: 24 * MiB, window_count: 2 };
        const failure = await rpcFailure(runLoad(client, md, start, { shmRoot: ns.root }));
        expect(failure.ctCode, failure.details).toBe("ERR_CT_IO");
        expect(failure.code).toBe(status.RESOURCE_EXHAUSTED);
        expectSizingError(failure.details, 48 * MiB);
        expect(failure.details).toContain("for its window of 2 x 25165824 bytes");
      } finally {
        watcher.close();
        client.close();
        unlinkSync(ballast);
      }
      await gone(ns);
      expect(await stopSidecar(sidecar), sidecar.stderr()).toBe(0);
      expect(ns.leftovers()).toEqual([]);
      ns.close();
    });
  }
});

/** Writes `path` until its file system is full. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(MiB, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
}

describe("a largest tensor that cannot fit once (a 4 MiB /dev/shm, 8 MiB tensors)", () => {
  it("streaming is refused with the sizing error naming the largest tensor", { timeout: 120_000 }, async () => {
    const ns = await privateShm("4m");
    const sidecar = await serve(ns);
    const client = newClient(sidecar.socket);
    try {
      const md = auth(tokenOf(sidecar.socket));
      const { model_id } = await unary(client, "OpenModel", { source: m.model }, md);
      const failure = await rpcFailure(runLoad(client, md, { model_id, mode: "LOAD_MODE_STREAMING" }, { shmRoot: ns.root }));
      expect(failure.ctCode).toBe("ERR_CT_IO");
      expect(failure.code).toBe(status.RESOURCE_EXHAUSTED);
      expectSizingError(failure.details, 8 * MiB);
      expect(failure.details).toContain("its largest tensor, at the least");
      expect(ns.leftovers()).toEqual([]);
    } finally {
      client.close();
    }
    expect(await stopSidecar(sidecar), sidecar.stderr()).toBe(0);
    expect(ns.leftovers()).toEqual([]);
    ns.close();
  });
});
