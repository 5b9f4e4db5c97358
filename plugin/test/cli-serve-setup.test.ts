// `ctensors serve` never starts silently with a setup that serves nothing: without a trusted signer,
// under the secure default, it refuses to start (exit 2) and names the options that fix it; a setup
// that serves only some models starts with a warning (a JSON log line, as the sidecar's own) naming them.

import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { checkServeSetup } from "../src/cli/serve-setup.js";
import { publicKeyOf, toJwk } from "../src/keys/jwk.js";
import { CLI, newEncryptionKey, newSigningKey, tempDir } from "./helpers.js";

const dir = tempDir("ct-serve-setup-");
const keyFile = join(dir, "enc.jwk");
const pubFile = join(dir, "sign.pub.jwk");
writeFileSync(keyFile, JSON.stringify(toJwk(newEncryptionKey())), { mode: 0o600 });
writeFileSync(pubFile, JSON.stringify(toJwk(publicKeyOf(newSigningKey()))));

const env = { ...process.env, CTENSORS_SOCKET: "" };

/** Starts serve, waits for its startup line, stops it with SIGTERM; returns its stderr and exit code. */
async function startAndStop(socket: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, "serve", "--socket", socket, ...args], { stdio: ["ignore", "ignore", "pipe"], env });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!stderr.includes("sidecar.started") && child.exitCode === null && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  expect(stderr, "the startup line").toContain("sidecar.started");
  child.kill("SIGTERM");
  return { code: await exit, stderr };
}

function warnings(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((l) => l.includes('"event":"sidecar.setup_incomplete"'))
    .map((l) => {
      const line = JSON.parse(l) as { level: string; warning: string };
      expect(line.level).toBe("warn");
      return line.warning;
    });
}

describe("ctensors serve without keys or trust", () => {
  it("refuses to start without a trusted signer (secure default), naming --trust, --trust-store and --key; creates nothing", async () => {
    for (const args of [[], ["--key", keyFile], ["--require-encrypted"]]) {
      const socket = join(dir, `refused-${args.length}`, "s.sock");
      const r = await execa(process.execPath, [CLI, "serve", "--socket", socket, ...args], {
        reject: false,
        stdin: "ignore",
        env,
        timeout: 60_000,
      });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain("ctensors serve: error [ERR_CT_USAGE]: no trusted signer");
      expect(r.stderr).toContain("it would refuse every model");
      expect(r.stderr).toContain("--trust sign.pub.jwk or --trust-store JWKS");
      if (args[0] === "--key") expect(r.stderr).not.toContain("--keys JWKS");
      else expect(r.stderr).toContain("--key enc.jwk or --keys JWKS");
      expect(r.stderr).toContain("usage: ctensors serve");
      expect(existsSync(join(dir, `refused-${args.length}`))).toBe(false);
    }
  });

  it("starts with a trusted signer but no master key, warning that only files naming a file:// key set can be decrypted", async () => {
    const r = await startAndStop(join(dir, "nokey", "s.sock"), ["--trust", pubFile]);
    expect(r.code).toBe(0);
    const w = warnings(r.stderr);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^no master key: .*--key enc\.jwk or --keys JWKS, or a key-service identity/);
  });

  it("--allow-plaintext with nothing else starts, warning about both", async () => {
    const r = await startAndStop(join(dir, "plain", "s.sock"), ["--allow-plaintext"]);
    expect(r.code).toBe(0);
    const w = warnings(r.stderr);
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/^no trusted signer: only unsigned plain models can be served.*--trust sign\.pub\.jwk or --trust-store JWKS/);
    expect(w[1]).toMatch(/^no master key/);
    // Before the sidecar's own startup line.
    expect(r.stderr.indexOf("sidecar.setup_incomplete")).toBeLessThan(r.stderr.indexOf("sidecar.started"));
  });

  it("a complete setup starts without a warning", async () => {
    const r = await startAndStop(join(dir, "full", "s.sock"), ["--key", keyFile, "--trust", pubFile]);
    expect(r.code).toBe(0);
    expect(warnings(r.stderr)).toEqual([]);
  });

  it("a key service counts as a source of master keys", () => {
    expect(checkServeSetup({ trusted: 1, keys: 0, kms: true, allowPlaintext: false })).toEqual([]);
    expect(checkServeSetup({ trusted: 1, keys: 0, kms: false, allowPlaintext: false })).toHaveLength(1);
    expect(() => checkServeSetup({ trusted: 0, keys: 1, kms: true, allowPlaintext: false })).toThrow(/no trusted signer/);
  });
});
