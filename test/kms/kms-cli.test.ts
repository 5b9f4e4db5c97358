// `ctensors encrypt --kms` and `ctensors rewrap --new-kms` against a real OpenBao server: the master key
// is generated and wrapped by Transit, recorded (wrapped) in the signed header; the reference
// implementation reads the file once given the unwrapped master key; rewrap rotates to a new Transit
// key version, moves a model from a local key into the key service and back, without touching tensor data.

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoTensorsReader, readHeader } from "../../plugin/src/container/reader.js";
import { toJwk } from "../../plugin/src/keys/jwk.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import { tokenAuth } from "../../plugin/src/kms/vault-auth.js";
import { VaultTransitProvider } from "../../plugin/src/kms/vault-transit.js";
import {
  CLI,
  newEncryptionKey,
  newSigningKey,
  REPO_ROOT,
  sampleTensors,
  tempDir,
  VENV_PYTHON,
  writePlainSafetensors,
} from "../../plugin/test/helpers.js";
import { Bao } from "./bao.js";

const dir = tempDir("ctensors-kms-cli-");
const REF_TOOL = join(REPO_ROOT, "test", "interop", "ref_tool.py");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sign = newSigningKey("publisher");
const trust = new TrustStore([sign]);
const paths = {
  sign: join(dir, "sign.jwk"),
  pub: join(dir, "sign.pub.jwk"),
  plain: join(dir, "plain.safetensors"),
  writerToken: join(dir, "writer.token"),
};
let bao: Bao;
let ref: string;
let expected: Map<string, Uint8Array>;
let operator: VaultTransitProvider;

async function ctensors(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa("node", [CLI, ...args], {
    reject: false,
    env: { ...env, BAO_TOKEN: undefined, VAULT_TOKEN: undefined, BAO_ADDR: undefined, VAULT_ADDR: undefined },
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function ok(args: string[]): Promise<string> {
  const r = await ctensors(args);
  expect(r.exitCode, `ctensors ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

async function tensorsOf(file: string, keys = [] as Parameters<typeof CryptoTensorsReader.open>[1]["keys"]): Promise<Map<string, string>> {
  const r = await CryptoTensorsReader.open(file, { keys, trust, requireEncrypted: true });
  try {
    const out = new Map<string, string>();
    for (const t of r.tensors) out.set(t.name, sha(await r.readTensor(t.name)));
    return out;
  } finally {
    await r.close();
  }
}

const expectedHashes = () => new Map([...expected].map(([n, b]) => [n, sha(b)]));

beforeAll(async () => {
  bao = await Bao.start();
  await bao.createTransitKey("model-a");
  await bao.writePolicy("publisher", ["model-a"], ["datakey/plaintext", "decrypt"]);
  writeFileSync(paths.writerToken, (await bao.createToken(["publisher"])).token, { mode: 0o600 });
  ref = `vault-transit://127.0.0.1:${new URL(bao.address).port}/transit/keys/model-a`;
  writeFileSync(paths.sign, JSON.stringify(toJwk(sign)));
  writeFileSync(paths.pub, JSON.stringify(toJwk({ kind: "sign", x: sign.x, kid: sign.kid })));
  expected = writePlainSafetensors(paths.plain, sampleTensors());
  operator = new VaultTransitProvider({ address: bao.address, auth: tokenAuth({ token: bao.rootToken }) });
});
afterAll(async () => bao?.dispose());

describe("encrypt --kms", () => {
  const out = join(dir, "kms.safetensors");

  it("wraps a fresh master key with Transit and records it, signed, in the header; the plaintext key is written nowhere", async () => {
    await ok(["encrypt", paths.plain, out, "--kms", ref, "--kms-token-file", paths.writerToken, "--sign-key", paths.sign]);
    const { crypto } = await readHeader(out);
    expect(crypto!.keys.enc.kid).toMatch(/^vault:v1:[A-Za-z0-9+/=]+$/);
    expect(crypto!.keys.enc.jku).toBe(ref);
    expect(bao.releases("transit/datakey/plaintext/model-a")).toHaveLength(1);
    // The released key opens it, and no file of this test run holds it.
    const master = await operator.unwrap(crypto!.keys.enc);
    expect(await tensorsOf(out, [master])).toEqual(expectedHashes());
    const b64 = Buffer.from(master.k).toString("base64");
    for (const f of [out, paths.plain, bao.auditPath]) expect(readFileSync(f).includes(b64), f).toBe(false);
    // The signature covers the reference: pointing the model at another key service breaks it.
    const bytes = readFileSync(out);
    const forged = Buffer.from(bytes.toString("latin1").replace("/transit/keys/model-a", "/transit/keys/model-b"), "latin1");
    writeFileSync(join(dir, "forged.safetensors"), forged);
    await expect(CryptoTensorsReader.open(join(dir, "forged.safetensors"), { trust })).rejects.toMatchObject({
      code: "ERR_CT_SIGNATURE_INVALID",
    });
  });

  it("the reference cryptotensors reads the model once given the unwrapped master key (direct, by kid, from the environment)", async () => {
    const { crypto } = await readHeader(out);
    const master = await operator.unwrap(crypto!.keys.enc);
    const jwk = join(dir, "released.jwk"); // test only: the operator hands the released key to the reference
    writeFileSync(jwk, JSON.stringify(toJwk(master)), { mode: 0o600 });
    for (const via of ["direct", "registry", "env"]) {
      const r = await execa(VENV_PYTHON, [REF_TOOL, "read", "--in", out, "--enc-key", jwk, "--sign-key", paths.pub, "--keys-via", via], {
        reject: false,
      });
      const res = JSON.parse(String(r.stdout)) as { ok: boolean; message?: string; tensors?: Record<string, { sha256: string }> };
      expect(res.ok, `${via}: ${res.message}`).toBe(true);
      for (const [name, bytes] of expected) {
        if (bytes.length) expect(res.tensors![name]!.sha256, `${via} ${name}`).toBe(sha(bytes));
      }
    }
  });

  it("refuses --key with --kms, a malformed reference, and a publisher without permission (typed, exit 6)", async () => {
    const both = await ctensors([
      "encrypt",
      paths.plain,
      join(dir, "x.safetensors"),
      "--kms",
      ref,
      "--key",
      paths.sign,
      "--kms-token-file",
      paths.writerToken,
      "--sign-key",
      paths.sign,
    ]);
    expect(both.exitCode).toBe(2);
    const bad = await ctensors([
      "encrypt",
      paths.plain,
      join(dir, "x.safetensors"),
      "--kms",
      "vault-transit://127.0.0.1/nokeys",
      "--kms-token-file",
      paths.writerToken,
      "--sign-key",
      paths.sign,
    ]);
    expect(bad.exitCode).toBe(2);
    const nobody = join(dir, "nobody.token");
    writeFileSync(nobody, (await bao.createToken(["default"])).token);
    const denied = await ctensors([
      "encrypt",
      paths.plain,
      join(dir, "x.safetensors"),
      "--kms",
      ref,
      "--kms-token-file",
      nobody,
      "--sign-key",
      paths.sign,
    ]);
    expect(denied.exitCode).toBe(6);
    expect(denied.stderr).toMatch(/ERR_CT_KEY_NOT_FOUND/);
    expect(denied.stderr).toMatch(/permission denied/);
    expect(denied.stderr).not.toContain(readFileSync(nobody, "utf8"));
  });
});

describe("rewrap with a key service", () => {
  it("rotates to the Transit key's new version without touching tensor data; the old version can then be disabled", async () => {
    await bao.createTransitKey("rot");
    await bao.writePolicy("rot", ["rot"], ["datakey/plaintext", "decrypt"]);
    const tokenFile = join(dir, "rot.token");
    writeFileSync(tokenFile, (await bao.createToken(["rot"])).token);
    const rotRef = ref.replace("model-a", "rot");
    const v1 = join(dir, "rot-v1.safetensors");
    const v2 = join(dir, "rot-v2.safetensors");
    await ok(["encrypt", paths.plain, v1, "--kms", rotRef, "--kms-token-file", tokenFile, "--sign-key", paths.sign]);
    await bao.api("POST", "transit/keys/rot/rotate", {});
    await ok(["rewrap", v1, v2, "--new-kms", rotRef, "--kms-token-file", tokenFile, "--sign-key", paths.sign, "--trust", paths.pub]);
    const h1 = await readHeader(v1);
    const h2 = await readHeader(v2);
    expect(h2.crypto!.keys.enc.kid).toMatch(/^vault:v2:/);
    // Tensor data unchanged: same bytes after each header.
    expect(readFileSync(v2).subarray(h2.header.dataStart).equals(readFileSync(v1).subarray(h1.header.dataStart))).toBe(true);
    await bao.api("POST", "transit/keys/rot/config", { min_decryption_version: 2 });
    await expect(operator.unwrap(h1.crypto!.keys.enc)).rejects.toMatchObject({ reason: "refused" });
    expect(await tensorsOf(v2, [await operator.unwrap(h2.crypto!.keys.enc)])).toEqual(expectedHashes());
  });

  it("moves a local-key model into the key service and back out", async () => {
    const local = newEncryptionKey("aes256gcm", "local-1");
    const localJwk = join(dir, "local.jwk");
    writeFileSync(localJwk, JSON.stringify(toJwk(local)));
    const a = join(dir, "local.safetensors");
    const b = join(dir, "into-kms.safetensors");
    const c = join(dir, "out-of-kms.safetensors");
    await ok(["encrypt", paths.plain, a, "--key", localJwk, "--sign-key", paths.sign]);
    await ok([
      "rewrap",
      a,
      b,
      "--key",
      localJwk,
      "--new-kms",
      ref,
      "--kms-token-file",
      paths.writerToken,
      "--sign-key",
      paths.sign,
      "--trust",
      paths.pub,
    ]);
    const hb = await readHeader(b);
    expect(hb.crypto!.keys.enc.jku).toBe(ref);
    await expect(CryptoTensorsReader.open(b, { keys: [local], trust })).rejects.toMatchObject({ code: "ERR_CT_KEY_NOT_FOUND" });
    expect(await tensorsOf(b, [await operator.unwrap(hb.crypto!.keys.enc)])).toEqual(expectedHashes());
    const back = newEncryptionKey("aes256gcm", "local-2");
    const backJwk = join(dir, "back.jwk");
    writeFileSync(backJwk, JSON.stringify(toJwk(back)));
    await ok(["rewrap", b, c, "--new-key", backJwk, "--kms-token-file", paths.writerToken, "--sign-key", paths.sign, "--trust", paths.pub]);
    const hc = await readHeader(c);
    expect([hc.crypto!.keys.enc.kid, hc.crypto!.keys.enc.jku]).toEqual(["local-2", undefined]);
    expect(await tensorsOf(c, [back])).toEqual(expectedHashes());
  });

  it("a KMS model cannot be rewrapped by an identity the service refuses (typed, exit 6)", async () => {
    const nobody = join(dir, "nobody2.token");
    writeFileSync(nobody, (await bao.createToken(["default"])).token);
    const newJwk = join(dir, "new.jwk");
    writeFileSync(newJwk, JSON.stringify(toJwk(newEncryptionKey("aes256gcm", "new-1"))));
    const r = await ctensors([
      "rewrap",
      join(dir, "kms.safetensors"),
      join(dir, "y.safetensors"),
      "--new-key",
      newJwk,
      "--kms-token-file",
      nobody,
      "--sign-key",
      paths.sign,
      "--trust",
      paths.pub,
    ]);
    expect(r.exitCode).toBe(6);
    expect(r.stderr).toMatch(/ERR_CT_KEY_NOT_FOUND.*permission denied/s);
  });
});
