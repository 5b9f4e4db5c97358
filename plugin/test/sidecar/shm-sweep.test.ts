// The shared-memory instance, its liveness socket and the sweep of dead instances' regions, on a
// temporary directory in place of /dev/shm: what is removed (regions and liveness socket of an
// instance whose socket refuses connections), and everything that must be left alone (a live
// instance, a stopped one, other users' files, names that are not ours, files that are not regular,
// regions that no liveness socket accounts for). The sidecar killed for real: fault-injection.test.ts.

import { spawn } from "node:child_process";
import {
  chownSync,
  closeSync,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers.js";
import { LIVENESS_NAME, REGION_NAME, ShmInstance } from "../../src/sidecar/shm/instance.js";
import { ShmRegion } from "../../src/sidecar/shm/region.js";
import { probeLiveness, sweepStaleRegions } from "../../src/sidecar/shm/sweep.js";
import { eventually } from "./helpers.js";

const hex = (n: number) => Array.from({ length: n }, () => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join("");
const OTHER_UID = 54321;

function shmDir(): string {
  const dir = join(tempDir("ct-sweep-"), "shm");
  mkdirSync(dir, { mode: 0o1777 });
  return dir;
}

/**
 * The state SIGKILL leaves: a liveness socket file nobody listens on any more. (Listening under one
 * name, renaming, then closing: the listener is gone and the renamed file stays, as after a kill.)
 */
async function deadInstance(dir: string, id = hex(16)): Promise<string> {
  const binding = join(dir, `bind-${id}`);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(binding, resolve));
  renameSync(binding, join(dir, `ctensors-${id}.live`));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return id;
}

function region(dir: string, id: string, bytes = 4096): string {
  const path = join(dir, `ctensors-${id}-${hex(32)}`);
  writeFileSync(path, Buffer.alloc(bytes, 7), { mode: 0o600 });
  return path;
}

describe("sweepStaleRegions", () => {
  it("removes every region and the liveness socket of a dead instance, and reports them", async () => {
    const dir = shmDir();
    const id = await deadInstance(dir);
    const paths = [region(dir, id, 4096), region(dir, id, 1000)];
    expect(await probeLiveness(join(dir, `ctensors-${id}.live`))).toBe("dead");
    expect(await sweepStaleRegions(dir)).toEqual({ instances: 1, regions: 2, bytes: 5096, unattributed: 0 });
    for (const p of paths) expect(existsSync(p)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
    expect(await sweepStaleRegions(dir)).toEqual({ instances: 0, regions: 0, bytes: 0, unattributed: 0 });
  });

  it("never touches a live instance's regions (in this process or another, running or stopped)", async () => {
    const dir = shmDir();
    const mine = await ShmInstance.start(dir);
    const mineRegion = await ShmRegion.create(4096, mine);
    // Another process listening on its liveness socket, then stopped (SIGSTOP), then killed.
    const id = hex(16);
    const child = spawn(
      process.execPath,
      ["-e", "require('net').createServer().listen(process.argv[1], () => console.log('up'))", join(dir, `b-${id}`)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let up = "";
    child.stdout!.on("data", (d) => (up += d));
    try {
      await eventually(() => up.includes("up"), "the child to listen");
      renameSync(join(dir, `b-${id}`), join(dir, `ctensors-${id}.live`));
      const theirs = region(dir, id);
      expect(await sweepStaleRegions(dir)).toEqual({ instances: 0, regions: 0, bytes: 0, unattributed: 0 });
      child.kill("SIGSTOP");
      expect(await probeLiveness(join(dir, `ctensors-${id}.live`))).toBe("live"); // stopped is not dead
      expect(await sweepStaleRegions(dir)).toEqual({ instances: 0, regions: 0, bytes: 0, unattributed: 0 });
      expect(existsSync(theirs) && existsSync(mineRegion.path)).toBe(true);
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
      expect(await sweepStaleRegions(dir)).toEqual({ instances: 1, regions: 1, bytes: 4096, unattributed: 0 });
      expect(existsSync(theirs)).toBe(false);
      expect(existsSync(mineRegion.path) && existsSync(mine.livenessPath)).toBe(true);
    } finally {
      child.kill("SIGKILL");
      await mineRegion.dispose({ handedOver: false });
      await mine.close();
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it("leaves other users' files, other names, non-regular files, and regions no liveness socket accounts for", async () => {
    const dir = shmDir();
    const id = await deadInstance(dir);
    const outside = join(tempDir("ct-sweep-outside-"), "target");
    writeFileSync(outside, "keep");
    const kept = [
      join(dir, `ctensors-${hex(32)}`), // a region of a sidecar from before instances existed
      join(dir, "ctensors-fake-0123"),
      join(dir, `ctensors-${id}-notes.txt`),
      join(dir, `ctensors-${id}-${hex(32)}.tmp`),
      join(dir, "unrelated"),
    ];
    for (const p of kept) writeFileSync(p, "x");
    const asDir = join(dir, `ctensors-${id}-${hex(32)}`);
    mkdirSync(asDir);
    const asLink = join(dir, `ctensors-${id}-${hex(32)}`);
    symlinkSync(outside, asLink);
    const othersRegion = region(dir, id);
    chownSync(othersRegion, OTHER_UID, OTHER_UID);
    const ownRegion = region(dir, id);
    // No liveness socket: cannot be judged, left alone (and counted).
    const orphan = region(dir, hex(16));
    // A dead instance of another user.
    const otherId = await deadInstance(dir);
    chownSync(join(dir, `ctensors-${otherId}.live`), OTHER_UID, OTHER_UID);
    const otherUsers = region(dir, otherId);
    chownSync(otherUsers, OTHER_UID, OTHER_UID);
    // A "liveness socket" that is a regular file.
    const fakeId = hex(16);
    writeFileSync(join(dir, `ctensors-${fakeId}.live`), "");
    const underFake = region(dir, fakeId);

    expect(await sweepStaleRegions(dir)).toEqual({ instances: 1, regions: 1, bytes: 4096, unattributed: 1 });
    expect(existsSync(ownRegion)).toBe(false);
    expect(existsSync(join(dir, `ctensors-${id}.live`))).toBe(false);
    for (const p of [...kept, asDir, othersRegion, orphan, otherUsers, underFake, join(dir, `ctensors-${otherId}.live`)])
      expect(existsSync(p), p).toBe(true);
    expect(lstatSync(asLink).isSymbolicLink()).toBe(true);
    expect(existsSync(outside)).toBe(true);
  });
});

describe("ShmInstance and ShmRegion", () => {
  it("a liveness socket (0600) answered while the instance runs and removed at close; region names carry the instance id", async () => {
    const dir = shmDir();
    const instance = await ShmInstance.start(dir);
    expect(instance.id).toMatch(/^[0-9a-f]{16}$/);
    expect(LIVENESS_NAME.exec(`ctensors-${instance.id}.live`)?.[1]).toBe(instance.id);
    const st = lstatSync(instance.livenessPath);
    expect(st.isSocket() && (st.mode & 0o777) === 0o600).toBe(true);
    expect(await probeLiveness(instance.livenessPath)).toBe("live");
    const r = await ShmRegion.create(100, instance);
    expect(REGION_NAME.exec(r.path.slice(dir.length + 1))?.[1]).toBe(instance.id);
    expect(lstatSync(r.path).mode & 0o777).toBe(0o600);
    await r.dispose({ handedOver: false });
    await instance.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("dispose truncates a region never handed over; a handed-over one keeps its bytes for the client's mapping", async () => {
    const dir = shmDir();
    const instance = await ShmInstance.start(dir);
    try {
      const data = Buffer.alloc(8192, 0xab);
      const [secret, handed] = [await ShmRegion.create(8192, instance), await ShmRegion.create(8192, instance)];
      await secret.write(data, 0);
      await handed.write(data, 0);
      // Another holder of each file (a process that opened it; a client that mapped it).
      const [a, b] = [openSync(secret.path, "r"), openSync(handed.path, "r")];
      await secret.dispose({ handedOver: false });
      await handed.dispose({ handedOver: true });
      expect(existsSync(secret.path) || existsSync(handed.path)).toBe(false);
      expect(fstatSync(a).size).toBe(0);
      const back = Buffer.alloc(8192);
      expect(readSync(b, back, 0, 8192, 0)).toBe(8192);
      expect(back.equals(data)).toBe(true);
      closeSync(a);
      closeSync(b);
    } finally {
      await instance.close();
    }
  });
});
