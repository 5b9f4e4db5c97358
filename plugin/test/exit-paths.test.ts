// What every kind of exit of `ctensors keygen|encrypt|decrypt|rewrap` leaves behind: the complete
// output, or nothing (no half-written file, no staging folder, no plaintext), under SIGINT, SIGTERM,
// SIGHUP and SIGKILL, and a full disk. The real CLI runs in a child process (needs `npm run build`).
// The test hook CTENSORS_TEST_PAUSE_AT (plugin/src/io/test-pause.ts) stops the child at a chosen step
// of publishing its output; one test interrupts a large write without the hook.

import { execa, type ResultPromise } from "execa";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join, relative } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, tempDir, writePlainSafetensors, type PlainTensor } from "./helpers.js";

const dir = tempDir("ctensors-exit-");
chmodSync(dir, 0o700);
const keys = join(dir, "keys");
const enc = join(keys, "enc.jwk");
const sign = join(keys, "sign.jwk");
const pub = join(keys, "sign.pub.jwk");

function env(extra: Record<string, string> = {}): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("CTENSORS_") && k !== "CRYPTOTENSOR_KEYS") e[k] = v;
  return { ...e, ...extra };
}

async function ct(args: string[], extra: Record<string, string> = {}) {
  const r = await execa("node", [CLI, ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    reject: false,
    extendEnv: false,
    env: env(extra),
    timeout: 120_000,
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Starts `ctensors ARGS` and resolves once it printed the test-pause line (or a given stderr pattern). */
async function startPaused(args: string[], pauseAt: string, extra: Record<string, string> = {}): Promise<{ child: ResultPromise }> {
  const child = execa("node", [CLI, ...args, "--quiet"], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    reject: false,
    extendEnv: false,
    env: env({ CTENSORS_TEST_PAUSE_AT: pauseAt, ...extra }),
    timeout: 120_000,
  });
  let stderr = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes(`ctensors: test pause at ${pauseAt}`)) resolve();
    });
    child.then((r) => reject(new Error(`ctensors exited (${r.exitCode}) before pausing at ${pauseAt}: ${stderr}`)), reject);
  });
  return { child }; // (not `child` itself: an async function would wait for the thenable it returns)
}

/** Every entry under `root`, relative, directories marked with a trailing slash. */
function entriesUnder(root: string): string[] {
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .map((e) => relative(root, join(e.parentPath, e.name)) + (e.isDirectory() ? "/" : ""))
    .sort();
}

/** 12 tensors in 3 shards of 4, with a shard index: the model of the finding (2 shards done → 8 of 12 tensors). */
const SHARDS = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"];
// An encrypted folder: the files of the plain one, plus the signed release manifest `encrypt` writes.
const MODEL_FILES = ["config.json", "model.safetensors.index.json", "model.sig", ...SHARDS].sort();
const plainModel = join(dir, "plain-model");
const encModel = join(dir, "enc-model");
const plainFile = join(dir, "plain.safetensors");
const encFile = join(dir, "enc.safetensors");
let plaintextProbe: Buffer;
/** A plaintext tensor of plainFile. */
let fileProbe: Buffer;

function shardTensors(s: number): PlainTensor[] {
  return [0, 1, 2, 3].map((i) => ({ name: `model.layers.${s * 4 + i}.weight`, dtype: "F32", shape: [64, 64] }));
}

/** No regular file under `root` holds the probe bytes (a plaintext tensor of the model). */
function noPlaintextUnder(root: string): void {
  for (const rel of entriesUnder(root)) {
    const p = join(root, rel);
    if (rel.endsWith("/") || lstatSync(p).isSymbolicLink()) continue;
    expect(readFileSync(p).includes(plaintextProbe), `${rel} holds plaintext`).toBe(false);
  }
}

beforeAll(async () => {
  expect((await ct(["keygen", "--out", keys])).code).toBe(0);
  mkdirSync(plainModel);
  const weightMap: Record<string, string> = {};
  for (const [s, shard] of SHARDS.entries()) {
    const data = writePlainSafetensors(join(plainModel, shard), shardTensors(s));
    for (const name of data.keys()) weightMap[name] = shard;
    if (s === 0) plaintextProbe = Buffer.from(data.get("model.layers.0.weight")!);
  }
  writeFileSync(join(plainModel, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  writeFileSync(join(plainModel, "config.json"), "{}");
  expect((await ct(["encrypt", plainModel, encModel, "--key", enc, "--sign-key", sign])).code).toBe(0);
  fileProbe = Buffer.from(writePlainSafetensors(plainFile, shardTensors(0)).get("model.layers.0.weight")!);
  expect((await ct(["encrypt", plainFile, encFile, "--key", enc, "--sign-key", sign])).code).toBe(0);
}, 120_000);

const CATCHABLE = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

describe("a model folder interrupted while shard 3 of 3 is written (finding 2)", () => {
  for (const signal of CATCHABLE) {
    it(`encrypt, ${signal}: exit 128+signo, no output folder, no staging folder; verify --require-encrypted fails`, async () => {
      const parent = join(dir, `enc-${signal}`);
      mkdirSync(parent);
      const out = join(parent, "out");
      const { child } = await startPaused(["encrypt", plainModel, out, "--key", enc, "--sign-key", sign], "file:3");
      child.kill(signal);
      const r = await child;
      expect(r.exitCode).toBe(128 + constants.signals[signal]);
      expect(String(r.stderr)).toContain(`interrupted by ${signal}`);
      expect(entriesUnder(parent)).toEqual([]);
      const verify = await ct(["verify", out, "--trust", pub, "--require-encrypted"]);
      expect(verify.code).not.toBe(0);
    });
  }

  it("encrypt, SIGKILL: no output folder; at most an empty hidden staging folder (no shard, signed or not)", async () => {
    const parent = join(dir, "enc-SIGKILL");
    mkdirSync(parent);
    const out = join(parent, "out");
    const { child } = await startPaused(["encrypt", plainModel, out, "--key", enc, "--sign-key", sign], "file:3");
    child.kill("SIGKILL");
    await child;
    expect(existsSync(out)).toBe(false);
    const left = entriesUnder(parent);
    expect(
      left.every((e) => /^\.out\.[0-9a-f]{12}\.partial\/$/.test(e)),
      left.join(", "),
    ).toBe(true);
    expect((await ct(["verify", out, "--trust", pub, "--require-encrypted"])).code).not.toBe(0);
  });

  for (const signal of [...CATCHABLE, "SIGKILL"] as const) {
    it(`decrypt, ${signal} with 2 of 3 shards decrypted: no output and no plaintext anywhere`, async () => {
      const parent = join(dir, `dec-${signal}`);
      mkdirSync(parent);
      const out = join(parent, "out");
      const { child } = await startPaused(["decrypt", encModel, out, "--key", enc, "--trust", pub], "file:3");
      child.kill(signal);
      const r = await child;
      if (signal !== "SIGKILL") {
        expect(r.exitCode).toBe(128 + constants.signals[signal]);
        expect(entriesUnder(parent)).toEqual([]);
      }
      expect(existsSync(out)).toBe(false);
      noPlaintextUnder(parent);
      expect(
        entriesUnder(parent).filter((e) => !e.endsWith("/")),
        "no file at all",
      ).toEqual([]);
    });
  }

  it("decrypt, SIGINT when every file is complete but the folder is not yet renamed into place: nothing", async () => {
    const parent = join(dir, "dec-folder-step");
    mkdirSync(parent);
    const { child } = await startPaused(["decrypt", encModel, join(parent, "out"), "--key", enc, "--trust", pub], "folder");
    expect(
      entriesUnder(parent).some((e) => e.endsWith(`/${SHARDS[2]}`)),
      "the staging folder is complete at this step",
    ).toBe(true);
    child.kill("SIGINT");
    expect((await child).exitCode).toBe(130);
    expect(entriesUnder(parent)).toEqual([]);
  });

  it("rewrap of a folder, SIGTERM: nothing", async () => {
    const parent = join(dir, "rewrap-SIGTERM");
    mkdirSync(parent);
    const { child } = await startPaused(
      ["rewrap", encModel, join(parent, "out"), "--key", enc, "--new-key", enc, "--sign-key", sign, "--trust", pub],
      "file:2",
    );
    child.kill("SIGTERM");
    expect((await child).exitCode).toBe(143);
    expect(entriesUnder(parent)).toEqual([]);
  });

  it("uninterrupted: the folder appears complete, and --force replaces an existing one whole", async () => {
    const out = join(dir, "whole", "out");
    expect((await ct(["encrypt", plainModel, out, "--key", enc, "--sign-key", sign])).code).toBe(0);
    expect(entriesUnder(out)).toEqual(MODEL_FILES);
    expect((await ct(["verify", out, "--trust", pub, "--require-encrypted"])).code).toBe(0);
    writeFileSync(join(out, "stale.safetensors"), "old");
    expect((await ct(["encrypt", plainModel, out, "--key", enc, "--sign-key", sign, "--force"])).code).toBe(0);
    expect(entriesUnder(out)).toEqual(MODEL_FILES);
    expect(entriesUnder(join(dir, "whole"))).toEqual(["out/", ...MODEL_FILES.map((f) => `out/${f}`)]);
  });

  it("--force interrupted: the existing output is left as it was", async () => {
    const parent = join(dir, "force-kept");
    const out = join(parent, "out");
    expect((await ct(["encrypt", plainModel, out, "--key", enc, "--sign-key", sign])).code).toBe(0);
    const before = entriesUnder(parent).map((e) => [e, e.endsWith("/") ? "" : readFileSync(join(parent, e)).toString("hex")]);
    const { child } = await startPaused(["encrypt", plainModel, out, "--key", enc, "--sign-key", sign, "--force"], "folder");
    child.kill("SIGINT");
    expect((await child).exitCode).toBe(130);
    expect(entriesUnder(parent).map((e) => [e, e.endsWith("/") ? "" : readFileSync(join(parent, e)).toString("hex")])).toEqual(before);
  });
});

describe("a single file interrupted with its data fully written (finding 2)", () => {
  for (const signal of ["SIGINT", "SIGKILL"] as const) {
    it(`decrypt, ${signal}: the unnamed output never appears`, async () => {
      const parent = join(dir, `dec-file-${signal}`);
      mkdirSync(parent);
      const { child } = await startPaused(["decrypt", encFile, join(parent, "out.safetensors"), "--key", enc, "--trust", pub], "file:1");
      expect(entriesUnder(parent), "an unnamed file has no name while it is written").toEqual([]);
      child.kill(signal);
      await child;
      expect(entriesUnder(parent)).toEqual([]);
    });
  }

  for (const signal of CATCHABLE) {
    it(`without the native addon (named temporary), decrypt, ${signal}: the .partial file is removed`, async () => {
      const parent = join(dir, `dec-named-${signal}`);
      mkdirSync(parent);
      const { child } = await startPaused(["decrypt", encFile, join(parent, "out.safetensors"), "--key", enc, "--trust", pub], "file:1", {
        CTENSORS_ENGINE: "js",
      });
      const partial = entriesUnder(parent);
      expect(partial).toHaveLength(1);
      expect(partial[0]).toMatch(/^\.out\.safetensors\.[0-9a-f]{12}\.partial$/);
      expect(readFileSync(join(parent, partial[0]!)).includes(fileProbe), "the temporary holds the plaintext").toBe(true);
      child.kill(signal);
      expect((await child).exitCode).toBe(128 + constants.signals[signal]);
      expect(entriesUnder(parent)).toEqual([]);
    });
  }

  it("encrypt and rewrap, SIGTERM: nothing", async () => {
    for (const [label, args] of [
      ["encrypt", ["encrypt", plainFile, "OUT", "--key", enc, "--sign-key", sign]],
      ["rewrap", ["rewrap", encFile, "OUT", "--key", enc, "--new-key", enc, "--sign-key", sign, "--trust", pub]],
    ] as const) {
      for (const engine of ["native", "js"]) {
        const parent = join(dir, `file-${label}-${engine}`);
        mkdirSync(parent);
        const { child } = await startPaused(
          args.map((a) => (a === "OUT" ? join(parent, "out.safetensors") : a)),
          "file:1",
          engine === "js" ? { CTENSORS_ENGINE: "js" } : {},
        );
        child.kill("SIGTERM");
        expect((await child).exitCode).toBe(143);
        expect(entriesUnder(parent), `${label} ${engine}`).toEqual([]);
      }
    }
  });

  it("a large decrypt interrupted mid-write without any test hook leaves nothing", async () => {
    const big = join(dir, "big");
    mkdirSync(big);
    // 96 MiB of tensors: long enough for the JS engine to be caught while writing its temporary.
    const tensors: PlainTensor[] = Array.from({ length: 24 }, (_, i) => ({ name: `w${i}`, dtype: "F32", shape: [1024, 1024] }));
    writePlainSafetensors(join(big, "plain.safetensors"), tensors);
    expect(
      (await ct(["encrypt", join(big, "plain.safetensors"), join(big, "enc.safetensors"), "--key", enc, "--sign-key", sign])).code,
    ).toBe(0);
    const parent = join(big, "out");
    mkdirSync(parent);
    const child = execa(
      "node",
      [CLI, "decrypt", join(big, "enc.safetensors"), join(parent, "out.safetensors"), "--key", enc, "--trust", pub],
      {
        cwd: REPO_ROOT,
        stdin: "ignore",
        reject: false,
        extendEnv: false,
        env: env({ CTENSORS_ENGINE: "js" }),
        timeout: 120_000,
      },
    );
    let seen = false;
    for (let i = 0; i < 3000 && !seen && child.exitCode === null; i++) {
      seen = entriesUnder(parent).some((e) => e.endsWith(".partial"));
      if (!seen) await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen, "the temporary was seen while being written").toBe(true);
    child.kill("SIGINT");
    expect((await child).exitCode).toBe(130);
    expect(entriesUnder(parent)).toEqual([]);
  }, 120_000);
});

describe("a full disk (finding 11)", () => {
  const root = process.getuid?.() === 0;
  // `unshare -m` gives the command a private mount namespace in which a 5 MB tmpfs is mounted over an
  // empty folder; the listing after the command runs inside the same namespace.
  async function onSmallDisk(args: string[], extra: Record<string, string> = {}) {
    const mnt = join(dir, `small-${Math.random().toString(16).slice(2)}`);
    mkdirSync(mnt);
    const cli = ["node", CLI, ...args.map((a) => a.replace("MNT", mnt))].map((a) => `'${a}'`).join(" ");
    const script = `mount -t tmpfs -o size=5m tmpfs '${mnt}' && { ${cli}; echo "rc=$?"; ls -A '${mnt}'; }`;
    const r = await execa("unshare", ["-m", "sh", "-c", script], {
      cwd: REPO_ROOT,
      reject: false,
      extendEnv: false,
      env: env(extra),
      timeout: 120_000,
    });
    const lines = String(r.stdout).split("\n");
    const at = lines.findIndex((l) => l.startsWith("rc="));
    return { code: Number(lines[at]!.slice(3)), left: lines.slice(at + 1).filter(Boolean), stderr: String(r.stderr) };
  }
  let bigPlain: string;
  let bigEnc: string;
  beforeAll(async () => {
    bigPlain = join(dir, "disk-plain.safetensors");
    bigEnc = join(dir, "disk-enc.safetensors");
    writePlainSafetensors(
      bigPlain,
      Array.from({ length: 4 }, (_, i) => ({ name: `w${i}`, dtype: "F32", shape: [1024, 768] })),
    ); // 12 MiB
    expect((await ct(["encrypt", bigPlain, bigEnc, "--key", enc, "--sign-key", sign])).code).toBe(0);
  }, 60_000);

  for (const engine of ["native", "js"]) {
    it.runIf(root)(
      `encrypt, decrypt and rewrap (${engine} engine) exit 8 with the path and a remedy, and leave nothing`,
      async () => {
        const extra = engine === "js" ? { CTENSORS_ENGINE: "js" } : {};
        for (const args of [
          ["encrypt", bigPlain, "MNT/out.safetensors", "--key", enc, "--sign-key", sign],
          ["decrypt", bigEnc, "MNT/out.safetensors", "--key", enc, "--trust", pub],
          ["rewrap", bigEnc, "MNT/out.safetensors", "--key", enc, "--new-key", enc, "--sign-key", sign, "--trust", pub],
        ]) {
          const r = await onSmallDisk(args, extra);
          expect(r.code, `${args[0]}: ${r.stderr}`).toBe(8);
          expect(r.stderr).toContain("[ERR_CT_IO]");
          expect(r.stderr).toMatch(/no space left on device writing \S*out\.safetensors: free space or choose another output folder/);
          expect(r.stderr).not.toContain("unexpected error");
          expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
          expect(r.left, args[0]).toEqual([]);
        }
      },
      120_000,
    );
  }

  it.runIf(root)(
    "a model folder: fits → appears whole; does not fit → exit 8, nothing left (no staging folder)",
    async () => {
      const fits = await onSmallDisk(["encrypt", plainModel, "MNT/model", "--key", enc, "--sign-key", sign]);
      expect(fits.code, fits.stderr).toBe(0);
      expect(fits.left).toEqual(["model"]);
      const model = join(dir, "disk-model");
      mkdirSync(model);
      writePlainSafetensors(join(model, "a.safetensors"), [{ name: "a", dtype: "F32", shape: [1024, 1024] }]);
      writePlainSafetensors(join(model, "b.safetensors"), [{ name: "b", dtype: "F32", shape: [1024, 1024] }]);
      const r = await onSmallDisk(["encrypt", model, "MNT/model", "--key", enc, "--sign-key", sign]);
      expect(r.code, r.stderr).toBe(8);
      expect(r.stderr).toContain("no space left on device");
      expect(r.left).toEqual([]);
    },
    60_000,
  );
});

describe("keygen (findings 11 and 13)", () => {
  it("refuses an existing folder open to group or others, writes nothing, and suggests no chmod", async () => {
    const shared = join(dir, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const r = await ct(["keygen", "--out", shared]);
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toContain("[ERR_CT_IO]");
    expect(r.stderr).toContain("0777");
    expect(r.stderr).not.toMatch(/chmod/);
    expect(readdirSync(shared)).toEqual([]);
    chmodSync(shared, 0o750);
    expect((await ct(["keygen", "--out", shared])).code).toBe(8);
  });

  it("refuses a sticky world-writable folder like /tmp without suggesting to change it", async () => {
    // a folder of the test's own with /tmp's mode (1777), so that old code writes its keys there, not into /tmp
    const sticky = join(dir, "sticky");
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const r = await ct(["keygen", "--out", sticky]);
    expect(r.code).toBe(8);
    expect(r.stderr).toContain("1777");
    expect(r.stderr).not.toMatch(/chmod/);
    expect(readdirSync(sticky)).toEqual([]);
  });

  it("refuses an --out that is a symbolic link to a folder", async () => {
    const real = join(dir, "real-keys");
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(dir, "link-keys"));
    expect((await ct(["keygen", "--out", join(dir, "link-keys")])).code).toBe(8);
    expect(readdirSync(real)).toEqual([]);
  });

  it("--force replaces a symbolic link at enc.jwk instead of writing through it", async () => {
    const out = join(dir, "kg-link");
    expect((await ct(["keygen", "--out", out])).code).toBe(0);
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "do not touch\n");
    const { rmSync } = await import("node:fs");
    rmSync(join(out, "enc.jwk"));
    symlinkSync(victim, join(out, "enc.jwk"));
    const r = await ct(["keygen", "--out", out, "--force"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("do not touch\n");
    const st = lstatSync(join(out, "enc.jwk"));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(out, "enc.jwk"), "utf8")).kty).toBe("oct");
  });

  it("a dangling symbolic link at sign.jwk counts as an existing key without --force (nothing created through it)", async () => {
    const out = join(dir, "kg-dangling");
    mkdirSync(out, { mode: 0o700 });
    const target = join(dir, "dangling-target");
    symlinkSync(target, join(out, "sign.jwk"));
    const r = await ct(["keygen", "--out", out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--force");
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(out)).toEqual(["sign.jwk"]);
  });

  it("--out naming an existing file: ERR_CT_IO (exit 8), not an unexpected error", async () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    const r = await ct(["keygen", "--out", file]);
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toContain("[ERR_CT_IO]");
    expect(r.stderr).toContain(file);
    expect(r.stderr).not.toContain("unexpected error");
  });

  for (const engine of ["native", "js"]) {
    it.runIf(process.getuid?.() === 0)(`a full disk during keygen (${engine} file helpers): exit 8, no key file left`, async () => {
      const mnt = join(dir, `kg-small-${engine}`);
      mkdirSync(mnt);
      // a 4 KiB tmpfs that is already full: the first key file cannot be written
      const script = `mount -t tmpfs -o size=4k tmpfs '${mnt}' && mkdir -m 700 '${mnt}/k' && head -c 8192 /dev/zero > '${mnt}/fill' 2>/dev/null; node '${CLI}' keygen --out '${mnt}/k'; echo "rc=$?"; ls -A '${mnt}/k'`;
      const r = await execa("unshare", ["-m", "sh", "-c", script], {
        reject: false,
        extendEnv: false,
        env: env(engine === "js" ? { CTENSORS_ENGINE: "js" } : {}),
      });
      const lines = String(r.stdout).split("\n");
      const at = lines.findIndex((l) => l.startsWith("rc="));
      expect(lines[at], String(r.stderr)).toBe("rc=8");
      expect(String(r.stderr)).toMatch(/no space left on device writing \S*enc\.jwk/);
      expect(lines.slice(at + 1).filter(Boolean)).toEqual([]);
    });
  }
});
