// Secure by default (CLI): whoever passes trust keys is asking for verification. `verify` fails on a
// file that is not signed and fully encrypted (a CryptoTensors file stripped of its reserved entries
// included) unless --allow-plaintext; `decrypt` refuses a file with nothing encrypted instead of copying
// its bytes out as "decrypted". The rule itself is container/open-checks.ts (requiredEncryption).

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../src/container/encrypt-file.js";
import { DIGESTS_KEY, RESERVED_KEYS } from "../src/container/reserved.js";
import { publicKeyOf, toJwk } from "../src/keys/jwk.js";
import { CLI, newEncryptionKey, newSigningKey, REPO_ROOT, sampleTensors, tempDir, writePlainSafetensors } from "./helpers.js";
import { tamper } from "./hostile-files.js";

const dir = tempDir("ctensors-secure-");
const key = newEncryptionKey("aes256gcm", "enc-1");
const signKey = newSigningKey("sign-1");
const keyFile = join(dir, "enc.jwk");
const pubFile = join(dir, "sign.pub.jwk");
const files = {
  plain: join(dir, "plain.safetensors"),
  full: join(dir, "full.safetensors"),
  partial: join(dir, "partial.safetensors"),
  stripped: join(dir, "stripped.safetensors"),
};

beforeAll(async () => {
  writeFileSync(keyFile, JSON.stringify(toJwk(key)));
  writeFileSync(pubFile, JSON.stringify(toJwk(publicKeyOf(signKey))));
  writePlainSafetensors(files.plain, sampleTensors());
  await encryptFile(files.plain, files.full, { key, signKey });
  await encryptFile(files.plain, files.partial, { key, signKey, tensors: ["model.layers.*"] });
  // The attack: drop the reserved entries; the tensor data is still ciphertext.
  writeFileSync(
    files.stripped,
    tamper(new Uint8Array(readFileSync(files.full)), (f) => [...RESERVED_KEYS, DIGESTS_KEY].forEach((k) => f.metadata.delete(k))),
  );
});

async function ct(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await execa("node", [CLI, ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    reject: false,
    timeout: 60_000,
    env: { CTENSORS_REGO_PYTHON: "" },
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
const verify = (file: string, ...extra: string[]) => ct("verify", file, "--trust", pubFile, "--key", keyFile, "--json", ...extra);

describe("verify", () => {
  it("a signed, fully encrypted file passes", async () => {
    const r = await verify(files.full);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, encrypted: true, signer: "sign-1" });
  });

  for (const which of ["stripped", "plain", "partial"] as const) {
    it(`a ${which} file fails with ERR_CT_NOT_CONFIDENTIAL (exit 4), and passes with --allow-plaintext`, async () => {
      const r = await verify(files[which]);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 4, stdout: "" });
      expect(r.stderr).toContain("[ERR_CT_NOT_CONFIDENTIAL]");
      const allowed = await verify(files[which], "--allow-plaintext");
      expect(allowed.code, allowed.stderr).toBe(0);
      expect(JSON.parse(allowed.stdout)).toMatchObject({ ok: true, encrypted: which === "partial" });
    });
  }

  it("--require-encrypted (now the default) is still accepted; with --allow-plaintext it is a usage error", async () => {
    expect((await verify(files.full, "--require-encrypted")).code).toBe(0);
    expect((await verify(files.partial, "--require-encrypted")).code).toBe(4);
    expect((await verify(files.full, "--require-encrypted", "--allow-plaintext")).code).toBe(2);
  });

  it("an empty folder does not verify", async () => {
    const empty = join(dir, "empty-model");
    await import("node:fs/promises").then((fs) => fs.mkdir(empty));
    const r = await verify(empty);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("[ERR_CT_FORMAT]");
  });
});

describe("decrypt", () => {
  it("a file with nothing encrypted: says so, exits 4, writes nothing", async () => {
    for (const which of ["stripped", "plain"] as const) {
      const out = join(dir, `${which}-out.safetensors`);
      const r = await ct("decrypt", files[which], out, "--key", keyFile, "--trust", pubFile);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 4, stdout: "" });
      expect(r.stderr).toContain("[ERR_CT_NOT_CONFIDENTIAL]");
      expect(r.stderr).toContain("neither encrypted nor signed");
      expect(existsSync(out)).toBe(false);
    }
  });

  it("a partially encrypted file still decrypts (refused with --require-encrypted)", async () => {
    const out = join(dir, "partial-out.safetensors");
    const r = await ct("decrypt", files.partial, out, "--key", keyFile, "--trust", pubFile);
    expect(r.code, r.stderr).toBe(0);
    expect(Buffer.from(readFileSync(out))).toEqual(Buffer.from(readFileSync(files.plain)));
    const strict = await ct(
      "decrypt",
      files.partial,
      join(dir, "strict-out.safetensors"),
      "--key",
      keyFile,
      "--trust",
      pubFile,
      "--require-encrypted",
    );
    expect(strict.code).toBe(4);
  });
});
