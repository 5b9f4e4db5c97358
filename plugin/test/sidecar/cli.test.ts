// `ctensors serve` as a process: the plugin's CLI loads the sidecar at run time, prints the startup
// line (JSON on stderr, no key material), serves, and on SIGTERM exits 0 removing socket and token.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { encryptFile } from "../../src/container/encrypt-file.js";
import { publicKeyOf, toJwk } from "../../src/keys/jwk.js";
import { CLI, newEncryptionKey, newSigningKey, sampleTensors, tempDir, writePlainSafetensors } from "../helpers.js";
import { auth, eventually, newClient, runLoad, tokenOf, unary } from "./helpers.js";

const dir = tempDir("ct-cli-");

function serve(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, "serve", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CTENSORS_SOCKET: "" },
  });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stderr: () => err, exit };
}

describe("ctensors serve", () => {
  it("serves until SIGTERM, then exits 0 and removes socket and token", async () => {
    const key = newEncryptionKey("aes256gcm", "enc-cli");
    const signKey = newSigningKey("sign-cli");
    const keyFile = join(dir, "enc.jwk");
    const pubFile = join(dir, "sign.pub.jwk");
    writeFileSync(keyFile, JSON.stringify(toJwk(key)), { mode: 0o600 });
    writeFileSync(pubFile, JSON.stringify(toJwk(publicKeyOf(signKey))));
    const plain = join(dir, "plain.safetensors");
    const enc = join(dir, "enc.safetensors");
    const data = writePlainSafetensors(plain, sampleTensors());
    await encryptFile(plain, enc, { key, signKey });

    const socket = join(dir, "sock", "sidecar.sock");
    const proc = serve(["--socket", socket, "--key", keyFile, "--trust", pubFile, "--require-encrypted"]);
    try {
      await eventually(() => existsSync(`${socket}.token`) || proc.child.exitCode !== null, "the token file", 30_000);
      expect(proc.child.exitCode, proc.stderr()).toBeNull();
      expect(statSync(join(dir, "sock")).mode & 0o777).toBe(0o700);
      expect(statSync(`${socket}.token`).mode & 0o777).toBe(0o600);
      // The token file appears when the socket listens; the startup log line follows it.
      await eventually(() => proc.stderr().includes("sidecar.started") || proc.child.exitCode !== null, "the startup log line", 30_000);
      const started = JSON.parse(
        proc
          .stderr()
          .split("\n")
          .find((l) => l.includes("sidecar.started"))!,
      );
      expect(started).toMatchObject({ level: "info", socket, require_encrypted: true, trusted_signers: ["sign-cli"], keys: 1 });

      const client = newClient(socket);
      const md = auth(tokenOf(socket));
      const { model_id } = await unary(client, "OpenModel", { source: enc }, md);
      const got = await runLoad(client, md, { model_id, mode: "LOAD_MODE_STREAMING" });
      for (const [name, bytes] of data) expect(got.tensors.get(name)!.equals(Buffer.from(bytes)), name).toBe(true);
      client.close();

      proc.child.kill("SIGTERM");
      expect(await proc.exit).toBe(0);
      expect(existsSync(socket)).toBe(false);
      expect(existsSync(`${socket}.token`)).toBe(false);
      expect(proc.stderr()).toContain("sidecar.stopped");
      // No key material in anything it printed.
      const jwk = toJwk(key) as { k: string };
      expect(proc.stderr()).not.toContain(jwk.k);
      expect(proc.stderr()).not.toContain(Buffer.from(key.k).toString("hex"));
    } finally {
      if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
    }
  });

  it("SIGINT stops it too; a refused socket directory is an I/O error (exit 8)", async () => {
    const socket = join(dir, "sock2", "s.sock");
    // (Without a trusted signer only --allow-plaintext starts: cli-serve-setup.test.ts.)
    const proc = serve(["--socket", socket, "--allow-plaintext"]);
    await eventually(() => existsSync(`${socket}.token`) || proc.child.exitCode !== null, "the token file", 30_000);
    proc.child.kill("SIGINT");
    expect(await proc.exit).toBe(0);
    expect(existsSync(socket)).toBe(false);

    const loose = join(dir, "loose");
    mkdirSync(loose, { mode: 0o777 });
    const bad = serve(["--socket", join(loose, "s.sock"), "--allow-plaintext"]);
    expect(await bad.exit).toBe(8);
    expect(bad.stderr()).toMatch(/ERR_CT_IO.*group and others must have no access/);
  });

  it("serves only signed, fully encrypted models unless --allow-plaintext; both flags at once are a usage error", async () => {
    const plain = join(dir, "plain-2.safetensors");
    writePlainSafetensors(plain, sampleTensors());
    const pubFile = join(dir, "strict-sign.pub.jwk");
    writeFileSync(pubFile, JSON.stringify(toJwk(publicKeyOf(newSigningKey("strict")))));
    for (const [flags, requireEncrypted] of [
      [["--trust", pubFile], true],
      [["--allow-plaintext"], false],
    ] as const) {
      const socket = join(dir, `sock-${flags.length}`, "s.sock");
      const proc = serve(["--socket", socket, ...flags]);
      try {
        await eventually(() => proc.stderr().includes("sidecar.started") || proc.child.exitCode !== null, "the startup log line", 30_000);
        const started = JSON.parse(
          proc
            .stderr()
            .split("\n")
            .find((l) => l.includes("sidecar.started"))!,
        );
        expect(started.require_encrypted).toBe(requireEncrypted);
        const client = newClient(socket);
        const opened = unary(client, "OpenModel", { source: plain }, auth(tokenOf(socket)));
        if (requireEncrypted)
          await expect(opened).rejects.toMatchObject({ details: expect.stringContaining("neither encrypted nor signed") });
        else expect((await opened).tensors).toHaveLength(sampleTensors().length);
        client.close();
        proc.child.kill("SIGTERM");
        expect(await proc.exit).toBe(0);
      } finally {
        if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
      }
    }
    const both = serve(["--socket", join(dir, "sock-both", "s.sock"), "--allow-plaintext", "--require-encrypted"]);
    expect(await both.exit).toBe(2);
  });

  it("has --help, naming the default socket rule", async () => {
    const { stdout, status } = spawnSync(process.execPath, [CLI, "serve", "--help"], { encoding: "utf8" });
    expect(status).toBe(0);
    expect(stdout).toContain("usage: ctensors serve");
    expect(stdout).toMatch(/--socket PATH .*\$XDG_RUNTIME_DIR\/ctensors\/sidecar\.sock/);
    expect(stdout).toContain("--allow-plaintext");
  });
});
