// Regions on reserved huge pages (`ctensors serve --shm-dir`, shm/shm-dir.ts): a real hugetlbfs
// mounted over /dev/shm in a mount namespace of its own (private-shm.ts), the real `ctensors serve`
// and real clients (the Python shim, the gRPC client of helpers.ts) inside it. Tensors arrive
// byte-exact through regions of whole huge pages written through a mapping; a pool too small gives
// the sizing error with the huge-page remedy, up front or at the region's fallocate; the JS engine,
// which can only write(), is refused at start; a --shm-dir on a disk is refused (plaintext must stay
// in memory). Needs root (it reserves huge pages for the test with vm.nr_hugepages and gives them
// back after): without it the test fails, never skips.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hugetlbfsMounts } from "../../src/sidecar/shm/shm-dir.js";
import { CLI, tempDir, type PlainTensor } from "../helpers.js";
import { auth, eventually, newClient, runLoad, tokenOf, unary } from "./helpers.js";
import { namespaceWithSidecar, privateShm, serveIn, start, stopSidecar, type Namespace, type Sidecar } from "./private-shm.js";
import { runShim, writeShimModel, type ShimModel } from "./shim-model.js";

const MiB = 1024 * 1024;
const HUGE = 2 * MiB;
const dir = tempDir("ct-hugetlbfs-");
// 10 tensors, 3 MiB each (not a whole number of huge pages): 30 MiB of tensors.
const tensors: PlainTensor[] = Array.from({ length: 10 }, (_, i) => ({ name: `layers.${i}.weight`, dtype: "F32", shape: [768, 1024] }));
const MODEL_BYTES = 30 * MiB;
let m: ShimModel;
let sockets = 0;

// --- the huge page pool: 24 more 2 MiB pages (48 MiB) than were reserved before, given back at the end ---

const NR = "/proc/sys/vm/nr_hugepages";
const SYSFS = "/sys/kernel/mm/hugepages/hugepages-2048kB";
const sysfs = (name: string) => Number(readFileSync(join(SYSFS, name), "utf8"));
let reservedBefore: number | null = null;

beforeAll(async () => {
  reservedBefore = Number(readFileSync(NR, "utf8"));
  writeFileSync(NR, String(reservedBefore + 24));
  expect(sysfs("free_hugepages") - sysfs("resv_hugepages"), "the kernel did not reserve 24 more huge pages").toBeGreaterThanOrEqual(24);
  m = await writeShimModel(dir, tensors, "huge");
});
afterAll(() => {
  if (reservedBefore !== null) writeFileSync(NR, String(reservedBefore));
});

function serve(ns: Namespace, env: NodeJS.ProcessEnv = {}): Promise<Sidecar> {
  return serveIn(ns, join(dir, "run", `s${sockets++}.sock`), ["--key", m.keyFile, "--trust", m.pubFile], env);
}

/** Huge pages of the pool in use now (by anything: compared with the figure before a load). */
const poolUsed = () => sysfs("nr_hugepages") - sysfs("free_hugepages");

describe("regions on a hugetlbfs mount (no size limit: the pool's free pages)", () => {
  let ns: Namespace;
  let sidecar: Sidecar;
  let usedBefore = 0;

  beforeAll(() => {
    usedBefore = poolUsed();
  });
  namespaceWithSidecar("", "hugetlbfs", serve, (n, s) => {
    ns = n;
    sidecar = s;
  });

  it("the sidecar says where its regions are and what they are", () => {
    expect(sidecar.events("sidecar.started")[0]).toMatchObject({ shm_dir: "/dev/shm", shm_fs: "hugetlbfs", shm_page_bytes: HUGE });
  });

  it("ctensors.load_file (resident) gets every tensor byte-exact; the pages go back to the pool", { timeout: 120_000 }, async () => {
    expect(await runShim(ns, sidecar, "resident", m)).toEqual({ ok: true, tensors: 10, mismatch: [] });
    expect(sidecar.events("load.finished").at(-1)).toMatchObject({ mode: "resident", bytes: MODEL_BYTES });
    await eventually(() => ns.leftovers().length === 0 && poolUsed() === usedBefore, "the huge pages to be free again");
  });

  it("streaming (the vLLM loader's weight source) too", { timeout: 120_000 }, async () => {
    expect(await runShim(ns, sidecar, "vllm", m)).toEqual({ ok: true, tensors: 10, mismatch: [] });
    await eventually(() => ns.leftovers().length === 0 && poolUsed() === usedBefore, "the huge pages to be free again");
  });

  it("regions are whole huge pages, files of mode 0600, and hold the plaintext byte-exact", { timeout: 120_000 }, async () => {
    const client = newClient(sidecar.socket);
    try {
      const md = auth(tokenOf(sidecar.socket));
      for (const start of [
        { mode: "LOAD_MODE_RESIDENT" as const },
        { mode: "LOAD_MODE_STREAMING" as const, window_bytes: 5 * MiB, window_count: 2 },
      ]) {
        const { model_id } = await unary(client, "OpenModel", { source: m.model }, md);
        const got = await runLoad(client, md, { model_id, ...start }, { shmRoot: ns.root });
        for (const [name, bytes] of m.plain) expect(got.tensors.get(name)!.equals(Buffer.from(bytes)), `${start.mode} ${name}`).toBe(true);
        for (const r of got.readies) expect(r.region_bytes % HUGE, `${start.mode} region of ${r.region_bytes} bytes`).toBe(0);
        await unary(client, "CloseModel", { model_id }, md);
      }
    } finally {
      client.close();
    }
    await eventually(() => ns.leftovers().length === 0 && poolUsed() === usedBefore, "the huge pages to be free again");
  });
});

describe("a hugetlbfs mount too small (size=16m) for the model", () => {
  let ns: Namespace;
  let sidecar: Sidecar;

  namespaceWithSidecar("16m", "hugetlbfs", serve, (n, s) => {
    ns = n;
    sidecar = s;
  });

  it("a resident load is refused up front, naming the huge-page remedies", { timeout: 120_000 }, async () => {
    const result = await runShim(ns, sidecar, "resident", m);
    expect(result.ok).toBe(false);
    expect(result.code).toBe("ERR_CT_IO");
    expect(result.message).toContain("shared memory is too small");
    expect(result.message).toContain("vm.nr_hugepages");
    expect(result.message).toContain("hugepages-2Mi");
    expect(result.message).not.toContain("--shm-size");
  });

  it("streaming shrinks its window to the 16 MiB and delivers every tensor", { timeout: 120_000 }, async () => {
    expect(await runShim(ns, sidecar, "stream", m)).toEqual({ ok: true, tensors: 10, mismatch: [] });
    const started = sidecar.events("load.started").at(-1)!;
    expect(Number(started.window_bytes) * Number(started.window_count)).toBeLessThanOrEqual(16 * MiB);
  });
});

describe("huge pages reserved but the regions on /dev/shm", () => {
  it("the sidecar says at start which hugetlbfs mount --shm-dir could use", { timeout: 120_000 }, async () => {
    const ns = await privateShm("", "hugetlbfs", "/mnt");
    try {
      const sidecar = await serve(ns);
      expect(sidecar.events("sidecar.started")[0]).toMatchObject({ shm_dir: "/dev/shm", shm_fs: "tmpfs", shm_page_bytes: 4096 });
      // the first hugetlbfs mount of the namespace (ours at /mnt, or one the host had already)
      const mounts = hugetlbfsMounts(readFileSync(`/proc/${ns.holder.child.pid}/mounts`, "utf8")).map((m) => m.mount);
      expect(mounts).toContain("/mnt");
      const [hint] = sidecar.events("shm.huge_pages_available");
      expect(hint).toMatchObject({ mount: mounts[0], page_bytes: HUGE });
      expect(Number(hint!.free_bytes)).toBeGreaterThanOrEqual(HUGE);
      expect(String(hint!.hint)).toContain(`--shm-dir ${mounts[0]}`);
      expect(await stopSidecar(sidecar), sidecar.stderr()).toBe(0);
    } finally {
      ns.close();
    }
  });
});

describe("hugetlbfsMounts", () => {
  it("finds hugetlbfs mount points and their page sizes in /proc/mounts", () => {
    const mounts = [
      "tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0",
      "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0",
      "none /mnt/huge\\040pages hugetlbfs rw,relatime,mode=1777,pagesize=1024M 0 0",
      "none /mnt/old hugetlbfs rw,relatime 0 0",
      "/dev/vda / ext4 rw,relatime 0 0",
    ].join("\n");
    expect(hugetlbfsMounts(mounts)).toEqual([
      { mount: "/dev/hugepages", pageBytes: HUGE },
      { mount: "/mnt/huge pages", pageBytes: 1024 * MiB },
      { mount: "/mnt/old", pageBytes: HUGE },
    ]);
  });
});

describe("what the sidecar refuses to start with", () => {
  it("hugetlbfs with the JS engine (it can only write()): ERR_CT_UNSUPPORTED", { timeout: 120_000 }, async () => {
    const ns = await privateShm("", "hugetlbfs");
    try {
      const argv = [
        ...ns.prefix,
        process.execPath,
        CLI,
        "serve",
        "--socket",
        join(dir, "run", "js.sock"),
        "--key",
        m.keyFile,
        "--trust",
        m.pubFile,
      ];
      const proc = start(argv[0]!, argv.slice(1), { CTENSORS_ENGINE: "js" });
      expect(await proc.exit).not.toBe(0);
      expect(proc.stderr()).toContain("ERR_CT_UNSUPPORTED");
      expect(proc.stderr()).toContain("native engine");
      expect(ns.leftovers()).toEqual([]);
    } finally {
      ns.close();
    }
  });

  it("--shm-dir on a disk: exit 2, nothing created there", { timeout: 60_000 }, async () => {
    const proc = start(process.execPath, [
      CLI,
      "serve",
      "--socket",
      join(dir, "run", "disk.sock"),
      "--key",
      m.keyFile,
      "--trust",
      m.pubFile,
      "--shm-dir",
      dir,
    ]);
    expect(await proc.exit).toBe(2);
    expect(proc.stderr()).toContain("ERR_CT_USAGE");
    expect(proc.stderr()).toContain("is not a tmpfs or hugetlbfs mount");
    expect(proc.stderr()).toMatch(/never on a disk/);
    expect(readdirSync(dir).filter((n) => n.startsWith("ctensors-"))).toEqual([]);
  });
});
