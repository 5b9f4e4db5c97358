// `ctensors verify --key` shows progress on stderr when it is a terminal: run under a real
// pseudo-terminal (util-linux `script`) with stdout sent to a file, so the terminal shows stderr only.
// --quiet silences it, --json output stays pure JSON, and a stderr that is not a terminal gets nothing.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../src/container/encrypt-file.js";
import { publicKeyOf, toJwk } from "../src/keys/jwk.js";
import { CLI, newEncryptionKey, newSigningKey, tempDir, writePlainSafetensors } from "./helpers.js";

const dir = tempDir("ct-verify-progress-");
const keyFile = join(dir, "enc.jwk");
const pubFile = join(dir, "sign.pub.jwk");
const model = join(dir, "model.safetensors");
const enc = join(dir, "enc.safetensors");

beforeAll(async () => {
  const key = newEncryptionKey();
  const signKey = newSigningKey();
  writeFileSync(keyFile, JSON.stringify(toJwk(key)), { mode: 0o600 });
  writeFileSync(pubFile, JSON.stringify(toJwk(publicKeyOf(signKey))));
  // Several MiB in a few tensors: the bar moves tensor by tensor.
  writePlainSafetensors(model, [
    { name: "a", dtype: "F32", shape: [512, 1024] },
    { name: "b", dtype: "F32", shape: [512, 1024] },
    { name: "c", dtype: "F32", shape: [512, 1024] },
  ]);
  await encryptFile(model, enc, { key, signKey });
});

/** Runs `ctensors verify ARGS` with stderr on a pseudo-terminal and stdout in a file: what the terminal showed, and stdout. */
async function onTerminal(args: string[], name: string): Promise<{ code: number; terminal: string; stdout: string }> {
  const out = join(dir, `${name}.stdout`);
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const command = [process.execPath, CLI, "verify", ...args].map(quote).join(" ");
  // -e: script exits with the command's status; -f: flush as it goes; the log file is discarded.
  const r = await execa("script", ["-qefc", `${command} > ${quote(out)}`, "/dev/null"], {
    reject: false,
    stdin: "ignore",
    timeout: 60_000,
    env: { ...process.env, COLUMNS: "120", LINES: "40" },
  });
  return { code: r.exitCode ?? -1, terminal: String(r.stdout), stdout: readFileSync(out, "utf8") };
}

describe("verify progress", () => {
  it("--key on a terminal: a progress bar on stderr, up to 100%; --json output on stdout stays pure JSON", async () => {
    const r = await onTerminal([enc, "--trust", pubFile, "--key", keyFile, "--json"], "json");
    expect(r.code, r.terminal).toBe(0);
    expect(r.terminal).toContain("[1/1] enc.safetensors");
    expect(r.terminal).toContain("100%");
    expect(r.terminal).toContain("6.3 MB");
    const json = JSON.parse(r.stdout) as { ok: boolean; tensorsChecked: number };
    expect(json).toMatchObject({ ok: true, tensorsChecked: 3 });
  });

  it("the text report goes to stdout after the bar, never into it", async () => {
    const r = await onTerminal([enc, "--trust", pubFile, "--key", keyFile], "text");
    expect(r.code, r.terminal).toBe(0);
    expect(r.terminal).toContain("100%");
    expect(r.stdout).toMatch(/^.*enc\.safetensors: OK, signed by trusted key .*; 3 tensor\(s\) authenticated\n$/);
    expect(r.stdout).not.toContain("%");
  });

  it("--quiet on a terminal shows nothing", async () => {
    const r = await onTerminal([enc, "--trust", pubFile, "--key", keyFile, "--quiet"], "quiet");
    expect(r.code, r.terminal).toBe(0);
    expect(r.terminal).toBe("");
    expect(r.stdout).toContain("3 tensor(s) authenticated");
  });

  it("a stderr that is not a terminal gets no progress", async () => {
    const r = await execa(process.execPath, [CLI, "verify", enc, "--trust", pubFile, "--key", keyFile], { reject: false, stdin: "ignore" });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe("");
  });
});
