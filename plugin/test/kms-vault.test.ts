// The Vault Transit provider against a real OpenBao server (test/kms/bao.ts): envelope generate and
// release, each identity (token file, AppRole, JWT), and each failure the service can give: revoked or
// expired token, removed policy, disabled key version, wrong credentials, unreachable, slow, sealed,
// restarted. Every release is in the server's audit log.

import { generateKeyPairSync, sign as signData } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bao, freePort } from "../../test/kms/bao.js";
import { hasKmsOptions, kmsProviderFromArgs } from "../src/kms/cli-args.js";
import { KmsError } from "../src/kms/provider.js";
import { appRoleAuth, jwtAuth, tokenAuth, type VaultAuth } from "../src/kms/vault-auth.js";
import { parseTransitReference, VaultTransitProvider } from "../src/kms/vault-transit.js";
import { tempDir } from "./helpers.js";

const dir = tempDir("ctensors-kms-");
let bao: Bao;
let ref: string;

function provider(auth: VaultAuth, extra: Partial<ConstructorParameters<typeof VaultTransitProvider>[0]> = {}): VaultTransitProvider {
  return new VaultTransitProvider({ address: bao.address, auth, timeoutMs: 2000, retries: 1, backoffMs: 50, ...extra });
}

function secretFile(name: string, value: string): string {
  const path = join(dir, name);
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  return path;
}

async function refusal(p: Promise<unknown>): Promise<KmsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KmsError);
  return err as KmsError;
}

beforeAll(async () => {
  bao = await Bao.start();
  await bao.createTransitKey("m1");
  await bao.writePolicy("release-m1", ["m1"]);
  ref = `vault-transit://127.0.0.1:${new URL(bao.address).port}/transit/keys/m1`;
});
afterAll(async () => bao?.dispose());

describe("references", () => {
  it("parses vault-transit://HOST:PORT/MOUNT/keys/NAME and refuses anything else", () => {
    expect(parseTransitReference("vault-transit://Bao.internal:8200/team/transit/keys/llama-3")).toEqual({
      host: "bao.internal:8200",
      mount: "team/transit",
      name: "llama-3",
      reference: "vault-transit://bao.internal:8200/team/transit/keys/llama-3",
    });
    for (const bad of [
      "vault-transit://h/transit/m1",
      "vault-transit://h/keys/m1",
      "https://h/transit/keys/m1",
      "vault-transit://h/tr ansit/keys/m1",
      "vault-transit://h/transit/keys/m1?x=1",
    ]) {
      expect(() => parseTransitReference(bad), bad).toThrow(expect.objectContaining({ code: "ERR_CT_USAGE" }));
    }
  });

  it("never sends credentials over plain HTTP to a host that is not loopback", () => {
    expect(() => provider(tokenAuth({ token: "t" }), { address: "http://bao.example:8200" })).toThrow(/plain HTTP/);
  });
});

describe("key-service options", () => {
  it("one identity, secrets from files or the environment, and an address required for a sidecar", () => {
    expect(hasKmsOptions({ key: "x" })).toBe(false);
    expect(hasKmsOptions({ "kms-role-id": "r" })).toBe(true);
    expect(() => kmsProviderFromArgs({ "kms-role-id": "r" }, { env: {}, requireAddress: false })).toThrow(/--kms-secret-id-file/);
    expect(() =>
      kmsProviderFromArgs({ "kms-token-file": "t", "kms-jwt-role": "j", "kms-jwt-file": "f" }, { env: {}, requireAddress: false }),
    ).toThrow(/one key-service identity/);
    expect(() => kmsProviderFromArgs({}, { env: {}, requireAddress: false })).toThrow(/no key-service identity/);
    expect(() => kmsProviderFromArgs({ "kms-token-file": "t" }, { env: {}, requireAddress: true })).toThrow(/--kms-address/);
    expect(
      kmsProviderFromArgs({ "kms-token-file": "t" }, { env: { BAO_ADDR: "http://127.0.0.1:8200" }, requireAddress: true }).identity,
    ).toBe("token from t");
    expect(kmsProviderFromArgs({}, { env: { BAO_TOKEN: "s.x" }, requireAddress: false }).identity).toBe("token");
    expect(() =>
      kmsProviderFromArgs({ "kms-address": "http://bao.example:8200", "kms-token-file": "t" }, { env: {}, requireAddress: true }),
    ).toThrow(/plain HTTP/);
  });
});

describe("envelope with a token file", () => {
  it("generates a master key wrapped by Transit and releases the same key; both are audited", async () => {
    const { token } = await bao.createToken(["release-m1"]);
    const p = provider(tokenAuth({ file: secretFile("token", token) }));
    const key = await p.generate(ref, "aes256gcm");
    expect(key.k.length).toBe(32);
    expect(key.kid).toMatch(/^vault:v1:/);
    expect(key.jku).toBe(ref);
    const released = await p.unwrap({ kty: "oct", alg: "aes256gcm", kid: key.kid, jku: key.jku });
    expect(Buffer.from(released.k).equals(Buffer.from(key.k))).toBe(true);
    const k128 = await p.generate(ref, "aes128gcm");
    expect(k128.k.length).toBe(16);
    expect(bao.releases("transit/decrypt/m1").length).toBeGreaterThanOrEqual(1);
    expect(bao.releases("transit/datakey/plaintext/m1").length).toBeGreaterThanOrEqual(2);
    // The audit log never holds the released key or the token in clear.
    const log = JSON.stringify(bao.audit());
    expect(log).not.toContain(Buffer.from(key.k).toString("base64"));
    expect(log).not.toContain(token);
  });

  it("a revoked token, a removed policy and an expired token are refused as ERR_CT_KEY_NOT_FOUND (denied)", async () => {
    const writer = provider(tokenAuth({ token: bao.rootToken }));
    const key = await writer.generate(ref, "aes256gcm");
    const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };

    const revoked = await bao.createToken(["release-m1"]);
    const p1 = provider(tokenAuth({ file: secretFile("t-revoked", revoked.token) }));
    await p1.unwrap(kref);
    await bao.revokeToken(revoked.token);
    const e1 = await refusal(p1.unwrap(kref));
    expect([e1.reason, e1.code]).toEqual(["denied", "ERR_CT_KEY_NOT_FOUND"]);
    expect(e1.message).not.toContain(revoked.token);

    await bao.writePolicy("release-m1-tmp", ["m1"]);
    const byPolicy = await bao.createToken(["release-m1-tmp"]);
    const p2 = provider(tokenAuth({ token: byPolicy.token }));
    await p2.unwrap(kref);
    await bao.api("DELETE", "sys/policies/acl/release-m1-tmp");
    expect((await refusal(p2.unwrap(kref))).reason).toBe("denied");

    const shortLived = await bao.createToken(["release-m1"], "2s");
    const p3 = provider(tokenAuth({ token: shortLived.token }));
    await p3.unwrap(kref);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await refusal(p3.unwrap(kref))).reason).toBe("denied");
  });

  it("a key version below min_decryption_version is refused; a key wrapped under the new version is released", async () => {
    await bao.createTransitKey("rot");
    await bao.writePolicy("release-rot", ["rot"]);
    const p = provider(tokenAuth({ token: (await bao.createToken(["release-rot"])).token }));
    const rotRef = ref.replace("/keys/m1", "/keys/rot");
    const v1 = await p.generate(rotRef, "aes256gcm");
    await bao.api("POST", "transit/keys/rot/rotate", {});
    const v2 = await p.generate(rotRef, "aes256gcm");
    expect(v2.kid).toMatch(/^vault:v2:/);
    await bao.api("POST", "transit/keys/rot/config", { min_decryption_version: 2 });
    const err = await refusal(p.unwrap({ kty: "oct", alg: "aes256gcm", kid: v1.kid, jku: v1.jku }));
    expect([err.reason, err.code]).toEqual(["refused", "ERR_CT_KEY_NOT_FOUND"]);
    expect(err.message).toMatch(/disallowed by policy|too old/);
    await p.unwrap({ kty: "oct", alg: "aes256gcm", kid: v2.kid, jku: v2.jku });
  });

  it("a wrong token is denied; an unreadable token file is unauthenticated", async () => {
    const key = await provider(tokenAuth({ token: bao.rootToken })).generate(ref, "aes256gcm");
    const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };
    expect((await refusal(provider(tokenAuth({ token: "s.not-a-token" })).unwrap(kref))).reason).toBe("denied");
    expect((await refusal(provider(tokenAuth({ file: join(dir, "missing") })).unwrap(kref))).reason).toBe("unauthenticated");
  });

  it("a model whose kid is not a Transit ciphertext is refused before any request", async () => {
    const err = await refusal(
      provider(tokenAuth({ token: bao.rootToken })).unwrap({ kty: "oct", alg: "aes256gcm", kid: "enc-1", jku: ref }),
    );
    expect(err.reason).toBe("refused");
  });
});

describe("AppRole and JWT identities", () => {
  it("AppRole: logs in, logs in again when its token expires, refuses a wrong secret id", async () => {
    const { roleId, secretId } = await bao.appRole("sidecar-a", ["release-m1"], "2s");
    const p = provider(appRoleAuth({ roleId, secretIdFile: secretFile("secret-id", secretId) }));
    const key = await provider(tokenAuth({ token: bao.rootToken })).generate(ref, "aes256gcm");
    const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };
    await p.unwrap(kref);
    await new Promise((r) => setTimeout(r, 2500)); // the login token has expired: a new login, same identity
    await p.unwrap(kref);
    const logins = bao.audit().filter((e) => e.type === "response" && e.request?.path === "auth/approle/login" && !e.error);
    expect(logins.length).toBeGreaterThanOrEqual(2);
    const wrong = provider(appRoleAuth({ roleId, secretIdFile: secretFile("wrong-secret-id", "00000000-0000-0000-0000-000000000000") }));
    const err = await refusal(wrong.unwrap(kref));
    expect([err.reason, err.code]).toEqual(["unauthenticated", "ERR_CT_KEY_NOT_FOUND"]);
    expect(err.message).not.toContain(secretId);
  });

  it("JWT: a token signed by the configured issuer key logs in with its role; another key is refused", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await bao.api("POST", "sys/auth/jwt", { type: "jwt" });
    await bao.api("POST", "auth/jwt/config", {
      jwt_validation_pubkeys: [publicKey.export({ type: "spki", format: "pem" })],
      bound_issuer: "https://issuer.test",
    });
    await bao.api("POST", "auth/jwt/role/sidecar", {
      role_type: "jwt",
      user_claim: "sub",
      bound_audiences: ["ctensors"],
      token_policies: ["release-m1"],
      token_no_default_policy: true,
      token_ttl: "1h",
    });
    const jwt = (key: typeof privateKey) => {
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const body = `${b64({ alg: "ES256", typ: "JWT" })}.${b64({ iss: "https://issuer.test", sub: "node-1/sidecar", aud: "ctensors", iat: now, exp: now + 600 })}`;
      return `${body}.${signData("sha256", Buffer.from(body), { key, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
    };
    const key = await provider(tokenAuth({ token: bao.rootToken })).generate(ref, "aes256gcm");
    const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };
    const p = provider(jwtAuth({ role: "sidecar", jwtFile: secretFile("jwt", jwt(privateKey)) }));
    expect(Buffer.from((await p.unwrap(kref)).k).equals(Buffer.from(key.k))).toBe(true);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const err = await refusal(provider(jwtAuth({ role: "sidecar", jwtFile: secretFile("jwt-other", jwt(other)) })).unwrap(kref));
    expect(err.reason).toBe("unauthenticated");
  });
});

describe("an unreachable, slow or sealed service", () => {
  it("unreachable: bounded retries, then ERR_CT_IO (unreachable)", async () => {
    const port = await freePort();
    const p = new VaultTransitProvider({ address: `http://127.0.0.1:${port}`, auth: tokenAuth({ token: "t" }), retries: 2, backoffMs: 20 });
    const err = await refusal(p.unwrap({ kty: "oct", alg: "aes256gcm", kid: "vault:v1:AAAA", jku: ref }));
    expect([err.reason, err.code]).toEqual(["unreachable", "ERR_CT_IO"]);
    expect(err.message).toMatch(/ECONNREFUSED \(3 attempt\(s\)\)/);
  });

  it("slow: each attempt times out, then ERR_CT_IO (timeout); it works again once the service answers", async () => {
    const key = await provider(tokenAuth({ token: bao.rootToken })).generate(ref, "aes256gcm");
    const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };
    const p = provider(tokenAuth({ token: bao.rootToken }), { timeoutMs: 300, retries: 1 });
    bao.pause();
    try {
      const err = await refusal(p.unwrap(kref));
      expect([err.reason, err.code]).toEqual(["timeout", "ERR_CT_IO"]);
      expect(err.message).toMatch(/within 300 ms \(2 attempt\(s\)\)/);
    } finally {
      bao.resume();
    }
    await p.unwrap(kref);
  });

  it("sealed: ERR_CT_IO (sealed), not retried; released again after unseal", async () => {
    const key = await provider(tokenAuth({ token: bao.rootToken })).generate(ref, "aes256gcm");
    const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };
    const p = provider(tokenAuth({ token: bao.rootToken }), { retries: 3, backoffMs: 2000 });
    await bao.seal();
    try {
      const started = Date.now();
      const err = await refusal(p.unwrap(kref));
      expect([err.reason, err.code]).toEqual(["sealed", "ERR_CT_IO"]);
      expect(Date.now() - started).toBeLessThan(2000); // no backoff: a sealed service does not unseal by waiting
    } finally {
      await bao.unseal();
    }
    await p.unwrap(kref);
  });
});

describe("a restarted service (Raft storage)", () => {
  it("comes back sealed (typed error), and releases the same keys once unsealed", async () => {
    const server = await Bao.start({ dev: false });
    try {
      await server.createTransitKey("m1");
      await server.writePolicy("release-m1", ["m1"]);
      const { roleId, secretId } = await server.appRole("sidecar", ["release-m1"]);
      const r = `vault-transit://127.0.0.1:${new URL(server.address).port}/transit/keys/m1`;
      const p = new VaultTransitProvider({
        address: server.address,
        auth: appRoleAuth({ roleId, secretIdFile: secretFile("sid-2", secretId) }),
        retries: 0,
      });
      const writer = new VaultTransitProvider({ address: server.address, auth: tokenAuth({ token: server.rootToken }) });
      const key = await writer.generate(r, "aes256gcm");
      const kref = { kty: "oct" as const, alg: "aes256gcm", kid: key.kid, jku: key.jku };
      await p.unwrap(kref);
      await server.restart();
      expect((await refusal(p.unwrap(kref))).reason).toBe("sealed");
      await server.unseal();
      expect(Buffer.from((await p.unwrap(kref)).k).equals(Buffer.from(key.k))).toBe(true);
    } finally {
      await server.dispose();
    }
  });
});
