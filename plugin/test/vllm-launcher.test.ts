// `ctensors vllm`, the launcher, as a user runs it: `node plugin/dist/cli/bin.js vllm …` in a child
// process, with a real sidecar (`ctensors serve`). The vLLM it runs here is a small recording script
// given with --vllm (it writes its argv, CTENSORS_SOCKET and the signals it gets to a file): these
// tests check the launcher's process handling. The launcher with real vLLM (`vllm serve`, HTTP, SIGINT)
// is tested in python-shim/tests_vllm (npm run test:vllm, part of npm test).

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { parseArgs } from "node:util";
import { serve } from "../src/cli/commands/serve.js";
import { sidecarServeArgs, vllm, vllmServeArgs } from "../src/cli/commands/vllm.js";
import { CLI, REPO_ROOT, tempDir } from "./helpers.js";

const dir = tempDir("ctensors-vllm-");
const FAKE = join(dir, "record-vllm.mjs");
let keys: string;

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ["CTENSORS_SOCKET", "CTENSORS_VLLM", "CTENSORS_KEY_TOKEN", "CRYPTOTENSOR_KEYS"]) delete env[k];
  return { ...env, ...extra };
}

function socketIn(name: string): string {
  const d = join(dir, name);
  mkdirSync(d, { mode: 0o700 });
  return join(d, "sidecar.sock");
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface Record_ {
  argv: string[];
  socket: string | undefined;
  socketExists: boolean;
  pid: number;
  signals: string[];
}

function readRecord(path: string): Record_ | undefined {
  if (!existsSync(path)) return undefined;
  const [first, ...rest] = readFileSync(path, "utf8").trim().split("\n");
  return { ...(JSON.parse(first!) as Omit<Record_, "signals">), signals: rest };
}

beforeAll(async () => {
  // The stand-in for vLLM: FAKE_MODE=wait (until SIGINT/SIGTERM, then exit 7), exit3, or kill9.
  writeFileSync(
    FAKE,
    `#!${process.execPath}
import { appendFileSync, existsSync, renameSync, writeFileSync } from "node:fs";
const rec = process.env.FAKE_RECORD;
const socket = process.env.CTENSORS_SOCKET;
// handlers first: the test signals as soon as the record exists
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, () => { appendFileSync(rec, s + "\\n"); setTimeout(() => process.exit(7), 100); });
// written whole, then renamed: the test never reads a half-written record
writeFileSync(rec + ".tmp", JSON.stringify({ argv: process.argv.slice(2), socket, socketExists: !!socket && existsSync(socket), pid: process.pid }) + "\\n");
renameSync(rec + ".tmp", rec);
const mode = process.env.FAKE_MODE ?? "wait";
if (mode === "exit3") process.exit(3);
if (mode === "kill9") process.kill(process.pid, "SIGKILL");
setInterval(() => {}, 1000);
`,
  );
  chmodSync(FAKE, 0o755);
  keys = join(dir, "keys");
  await execa("node", [CLI, "keygen", "--out", keys], { cwd: REPO_ROOT });
});

describe("vllmServeArgs", () => {
  it("adds --load-format cryptotensors, drops a leading serve, refuses other formats", () => {
    expect(vllmServeArgs(["org/name", "--port", "8000"])).toEqual(["org/name", "--port", "8000", "--load-format", "cryptotensors"]);
    expect(vllmServeArgs(["serve", "org/name"])).toEqual(["org/name", "--load-format", "cryptotensors"]);
    expect(vllmServeArgs(["m", "--load-format", "cryptotensors"])).toEqual(["m", "--load-format", "cryptotensors"]);
    expect(vllmServeArgs(["m", "--load-format=CryptoTensors"])).toEqual(["m", "--load-format=CryptoTensors"]);
    expect(() => vllmServeArgs(["m", "--load-format", "auto"])).toThrow(/--load-format must be cryptotensors, not "auto"/);
    expect(() => vllmServeArgs(["m", "--load-format=safetensors"])).toThrow(/not "safetensors"/);
    expect(() => vllmServeArgs(["m", "--load-format"])).toThrow(/not ""/);
    expect(() => vllmServeArgs([])).toThrow(/starting with the model/);
    expect(() => vllmServeArgs(["--port", "1"])).toThrow(/starting with the model/);
  });
});

describe("sidecarServeArgs", () => {
  const launcherArgs = (argv: string[]) => parseArgs({ args: argv, options: vllm.options, allowPositionals: true, strict: true }).values;

  it("forwards the release options (--allow-unsigned-release, --allow-rollback, --release-state) to the serve it starts", () => {
    const values = launcherArgs(["--trust", "t.jwk", "--allow-unsigned-release", "--allow-rollback", "--release-state", "/s/rel.json"]);
    const args = sidecarServeArgs("/run/s.sock", values);
    expect(args).toEqual([
      "--socket",
      "/run/s.sock",
      "--trust",
      "t.jwk",
      "--allow-unsigned-release",
      "--allow-rollback",
      "--release-state",
      "/s/rel.json",
    ]);
    // serve accepts every forwarded option, with the same meaning
    const served = parseArgs({ args, options: serve.options, allowPositionals: false, strict: true }).values;
    expect(served["allow-unsigned-release"]).toBe(true);
    expect(served["allow-rollback"]).toBe(true);
    expect(served["release-state"]).toBe("/s/rel.json");
  });

  it("forwards --shm-dir (regions on another tmpfs or on hugetlbfs) to the serve it starts", () => {
    const args = sidecarServeArgs("/run/s.sock", launcherArgs(["--key", "k.jwk", "--shm-dir", "/dev/hugepages"]));
    expect(args).toEqual(["--socket", "/run/s.sock", "--key", "k.jwk", "--shm-dir", "/dev/hugepages"]);
    expect(parseArgs({ args, options: serve.options, allowPositionals: false, strict: true }).values["shm-dir"]).toBe("/dev/hugepages");
  });

  it("leaves the secure defaults alone when no release option is given", () => {
    const args = sidecarServeArgs("/run/s.sock", launcherArgs(["--key", "k.jwk"]));
    expect(args).toEqual(["--socket", "/run/s.sock", "--key", "k.jwk"]);
  });
});

describe("ctensors vllm", () => {
  it("says clearly that vLLM is not installed (exit 127), before starting anything", async () => {
    const socket = socketIn("none");
    const byName = await execa(
      "node",
      [CLI, "vllm", "--socket", socket, "--key", join(keys, "enc.jwk"), "--vllm", "ctensors-no-such-vllm", "--", "m"],
      {
        reject: false,
        extendEnv: false,
        env: baseEnv(),
      },
    );
    expect(byName.exitCode).toBe(127);
    expect(byName.stderr).toMatch(/vLLM is not installed: no executable "ctensors-no-such-vllm" was found on PATH/);
    expect(byName.stderr).toMatch(/pip install vllm/);
    expect(existsSync(socket)).toBe(false);
    // the default, `vllm`, on a PATH without it
    const onPath = await execa(process.execPath, [CLI, "vllm", "--socket", socket, "--", "m"], {
      reject: false,
      extendEnv: false,
      env: baseEnv({ PATH: join(dir, "empty-bin") }),
    });
    expect(onPath.exitCode).toBe(127);
    expect(onPath.stderr).toMatch(/no executable "vllm" was found on PATH/);
    const byPath = await execa("node", [CLI, "vllm", "--socket", socket, "--vllm", join(dir, "nope", "vllm"), "--", "m"], {
      reject: false,
      extendEnv: false,
      env: baseEnv(),
    });
    expect(byPath.exitCode).toBe(127);
    expect(byPath.stderr).toMatch(/no executable ".*nope\/vllm" was found\./);
  });

  it("refuses another --load-format (usage, exit 2)", async () => {
    const r = await execa("node", [CLI, "vllm", "--vllm", FAKE, "--", "m", "--load-format", "safetensors"], {
      reject: false,
      extendEnv: false,
      env: baseEnv(),
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--load-format must be cryptotensors/);
  });

  it("starts a sidecar, runs vLLM wired to it, forwards SIGTERM, returns vLLM's code and stops the sidecar", async () => {
    const socket = socketIn("own");
    const record = join(dir, "own.rec");
    const launcher = execa(
      "node",
      [
        CLI,
        "vllm",
        "--socket",
        socket,
        "--key",
        join(keys, "enc.jwk"),
        "--trust",
        join(keys, "sign.pub.jwk"),
        "--vllm",
        FAKE,
        "--",
        "/models/enc",
        "--port",
        "8000",
      ],
      { reject: false, extendEnv: false, env: baseEnv({ FAKE_RECORD: record }) },
    );
    const rec = await waitFor("vLLM to start", () => readRecord(record));
    expect(rec.argv).toEqual(["serve", "/models/enc", "--port", "8000", "--load-format", "cryptotensors"]);
    expect(rec.socket).toBe(socket);
    expect(rec.socketExists).toBe(true); // the sidecar answered before vLLM was started
    expect(existsSync(`${socket}.token`)).toBe(true);

    launcher.kill("SIGTERM");
    const r = await launcher;
    expect(readRecord(record)!.signals).toEqual(["SIGTERM"]); // forwarded once
    expect(r.exitCode).toBe(7); // vLLM's exit code
    expect(r.stderr).toMatch(/starting the sidecar on/);
    expect(r.stderr).toMatch(/stopping the sidecar/);
    expect(r.stderr).toMatch(/"event":"sidecar.stopped"/);
    expect(existsSync(socket)).toBe(false);
    expect(pidAlive(rec.pid)).toBe(false);
  });

  it("forwards SIGINT too", async () => {
    const socket = socketIn("int");
    const record = join(dir, "int.rec");
    const args = [
      CLI,
      "vllm",
      "--socket",
      socket,
      "--key",
      join(keys, "enc.jwk"),
      "--trust",
      join(keys, "sign.pub.jwk"),
      "--vllm",
      FAKE,
      "--",
      "m",
    ];
    const launcher = execa("node", args, { reject: false, extendEnv: false, env: baseEnv({ FAKE_RECORD: record }) });
    await waitFor("vLLM to start", () => readRecord(record));
    launcher.kill("SIGINT");
    const r = await launcher;
    expect(readRecord(record)!.signals).toEqual(["SIGINT"]);
    expect(r.exitCode).toBe(7);
    expect(existsSync(socket)).toBe(false);
  });

  it("reuses a running sidecar and leaves it running; passes vLLM's exit code and death by signal", async () => {
    const socket = socketIn("shared");
    const sidecar = execa(
      "node",
      [CLI, "serve", "--socket", socket, "--key", join(keys, "enc.jwk"), "--trust", join(keys, "sign.pub.jwk")],
      { reject: false },
    );
    try {
      await waitFor("the sidecar", () => (existsSync(`${socket}.token`) ? true : undefined));
      const record = join(dir, "shared.rec");
      const r = await execa("node", [CLI, "vllm", "--socket", socket, "--key", join(keys, "enc.jwk"), "--vllm", FAKE, "--", "m"], {
        reject: false,
        extendEnv: false,
        env: baseEnv({ FAKE_RECORD: record, FAKE_MODE: "exit3" }),
      });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(/using the sidecar already running on/);
      expect(r.stderr).toMatch(/--key ignored/);
      expect(r.stderr).not.toMatch(/stopping the sidecar/);
      expect(readRecord(record)!.socket).toBe(socket);

      // the socket comes from $CTENSORS_SOCKET when --socket is absent
      const killed = await execa("node", [CLI, "vllm", "--vllm", FAKE, "--", "m"], {
        reject: false,
        extendEnv: false,
        env: baseEnv({ FAKE_RECORD: record, FAKE_MODE: "kill9", CTENSORS_SOCKET: socket }),
      });
      expect(killed.exitCode).toBe(128 + 9);
      expect(readRecord(record)!.socket).toBe(socket);
      expect(existsSync(socket)).toBe(true);
      expect(sidecar.exitCode).toBeNull(); // still serving
    } finally {
      sidecar.kill("SIGTERM");
      await sidecar;
    }
  });

  it("fails clearly (exit 8) when the sidecar it starts cannot start (a missing key file), without running vLLM", async () => {
    const socket = socketIn("bad");
    const r = await execa("node", [CLI, "vllm", "--socket", socket, "--key", join(dir, "missing.jwk"), "--vllm", FAKE, "--", "m"], {
      reject: false,
      extendEnv: false,
      env: baseEnv({ FAKE_RECORD: join(dir, "bad.rec") }),
    });
    expect(r.exitCode).toBe(8);
    expect(r.stderr).toMatch(/ctensors vllm: error \[ERR_CT_IO\]: the sidecar exited before it was ready/);
    expect(existsSync(join(dir, "bad.rec"))).toBe(false); // vLLM was never started
  });
});
