// The sidecar with master keys held by a real OpenBao server: each OpenModel asks the service, with the
// sidecar's own identity (AppRole, token file), for the model's key. Revoking the token, removing the
// policy, letting the token expire or disabling the key version stops the next OpenModel with a typed
// error (FAILED_PRECONDITION, ERR_CT_KEY_NOT_FOUND), while a model already open keeps serving; an
// unreachable service is UNAVAILABLE (ERR_CT_IO). Every release is in the service's audit log.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CryptoTensorsReader } from "../../plugin/src/container/reader.js";
import { encryptFile } from "../../plugin/src/container/encrypt-file.js";
import type { KeyRef } from "../../plugin/src/container/reserved.js";
import type { EncryptionKey } from "../../plugin/src/keys/jwk.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import type { KmsProvider } from "../../plugin/src/kms/provider.js";
import { KmsKeyRelease } from "../../plugin/src/kms/release.js";
import { appRoleAuth, tokenAuth, type VaultAuth } from "../../plugin/src/kms/vault-auth.js";
import { VaultTransitProvider } from "../../plugin/src/kms/vault-transit.js";
import { newSigningKey, sampleTensors, tempDir, writePlainSafetensors } from "../../plugin/test/helpers.js";
import { startSidecar, type SidecarHandle } from "../../plugin/src/sidecar/index.js";
import type { Logger } from "../../plugin/src/sidecar/log.js";
import { auth, newClient, rpcFailure, runLoad, tokenOf, unary, type SidecarClient } from "../../plugin/test/sidecar/helpers.js";
import { Bao } from "./bao.js";

const dir = tempDir("ctensors-kms-side-");
const sign = newSigningKey("publisher");
const trust = new TrustStore([sign]);
let bao: Bao;
let fleetRef: string;
let expected: Map<string, Uint8Array>;
let operator: VaultTransitProvider;
const models = new Map<string, string>();

/** Encrypts the sample model under `reference` as the publisher would (the operator's token). */
async function publish(name: string, reference: string): Promise<string> {
  const key = await operator.generate(reference, "aes256gcm");
  const out = join(dir, `${name}.safetensors`);
  try {
    await encryptFile(join(dir, "plain.safetensors"), out, { key, signKey: sign });
  } finally {
    key.k.fill(0);
  }
  models.set(name, out);
  return out;
}

function secretFile(name: string, value: string): string {
  const path = join(dir, name);
  writeFileSync(path, value, { mode: 0o600 });
  return path;
}

interface Running {
  sidecar: SidecarHandle;
  client: SidecarClient;
  events: { event: string; fields: Record<string, unknown> }[];
  open(name: string): Promise<{ model_id: string }>;
  load(modelId: string): Promise<void>;
  close(): Promise<void>;
}

let sockets = 0;
async function runSidecar(identity: VaultAuth, extra: { timeoutMs?: number; retries?: number } = {}): Promise<Running> {
  const events: Running["events"] = [];
  const logger: Logger = { info: (event, fields = {}) => events.push({ event, fields }), warn() {}, error() {} };
  const provider = new VaultTransitProvider({
    address: bao.address,
    auth: identity,
    timeoutMs: extra.timeoutMs ?? 3000,
    retries: extra.retries ?? 1,
    backoffMs: 50,
  });
  const socketPath = join(dir, `s${++sockets}.sock`);
  const sidecar = await startSidecar({ socketPath, trust, requireEncrypted: true, kms: new KmsKeyRelease([provider]), logger });
  const client = newClient(socketPath);
  const md = () => auth(tokenOf(socketPath));
  return {
    sidecar,
    client,
    events,
    open: (name) => unary(client, "OpenModel", { source: models.get(name)! }, md()),
    async load(modelId) {
      const loaded = await runLoad(client, md(), { model_id: modelId, mode: "LOAD_MODE_STREAMING" });
      for (const [n, b] of expected) expect(loaded.tensors.get(n)!.equals(Buffer.from(b)), n).toBe(true);
    },
    async close() {
      client.close();
      await sidecar.close();
    },
  };
}

async function refused(r: Running, name: string): Promise<{ code: status; ctCode: string | undefined; details: string }> {
  return rpcFailure(r.open(name));
}

beforeAll(async () => {
  bao = await Bao.start();
  await bao.createTransitKey("fleet");
  await bao.createTransitKey("rot");
  await bao.writePolicy("sidecar", ["fleet", "rot"], ["decrypt"]);
  fleetRef = `vault-transit://127.0.0.1:${new URL(bao.address).port}/transit/keys/fleet`;
  operator = new VaultTransitProvider({ address: bao.address, auth: tokenAuth({ token: bao.rootToken }) });
  expected = writePlainSafetensors(join(dir, "plain.safetensors"), sampleTensors());
  for (const name of ["a", "b", "c", "d", "e", "f"]) await publish(name, fleetRef);
});
afterAll(async () => bao?.dispose());

describe("release to the sidecar's own identity", () => {
  it("AppRole: OpenModel releases the key (audited, one release per open); removing the policy stops the next OpenModel, the open model keeps serving", async () => {
    const { roleId, secretId } = await bao.appRole("sidecar", ["sidecar"]);
    const r = await runSidecar(appRoleAuth({ roleId, secretIdFile: secretFile("secret-id", secretId) }));
    try {
      const before = bao.releases("transit/decrypt/fleet").length;
      const a = await r.open("a");
      await r.load(a.model_id);
      expect(bao.releases("transit/decrypt/fleet").length).toBe(before + 1);
      const released = bao.releases("transit/decrypt/fleet").at(-1)!;
      expect(released.auth?.display_name).toBe("approle");
      expect(released.auth?.policies).toContain("sidecar");
      expect(r.events.some((e) => e.event === "kms.released" && e.fields.reference === fleetRef && e.fields.key_version === 1)).toBe(true);

      await bao.api("DELETE", "sys/policies/acl/sidecar");
      const fail = await refused(r, "b");
      expect([fail.code, fail.ctCode]).toEqual([status.FAILED_PRECONDITION, "ERR_CT_KEY_NOT_FOUND"]);
      expect(fail.details).toMatch(/permission denied/);
      // Opening the already-open model again asks the service again: refused too.
      expect((await refused(r, "a")).ctCode).toBe("ERR_CT_KEY_NOT_FOUND");
      // The model opened before keeps serving.
      await r.load(a.model_id);
      await bao.writePolicy("sidecar", ["fleet", "rot"], ["decrypt"]);
      await r.load((await r.open("b")).model_id);
    } finally {
      await r.close();
    }
  });

  it("token file: a revoked token stops the next OpenModel; the open model keeps serving", async () => {
    const { token } = await bao.createToken(["sidecar"]);
    const r = await runSidecar(tokenAuth({ file: secretFile("token", token) }));
    try {
      const c = await r.open("c");
      await bao.revokeToken(token);
      expect((await refused(r, "d")).ctCode).toBe("ERR_CT_KEY_NOT_FOUND");
      await r.load(c.model_id);
    } finally {
      await r.close();
    }
  });

  it("an expired token lease stops the next OpenModel; the open model keeps serving", async () => {
    const { token } = await bao.createToken(["sidecar"], "3s");
    const r = await runSidecar(tokenAuth({ file: secretFile("short-token", token) }));
    try {
      const e = await r.open("e");
      await new Promise((res) => setTimeout(res, 3500));
      expect((await refused(r, "f")).ctCode).toBe("ERR_CT_KEY_NOT_FOUND");
      await r.load(e.model_id);
    } finally {
      await r.close();
    }
  });

  it("a key version below min_decryption_version stops the next OpenModel of models wrapped under it", async () => {
    const rotRef = fleetRef.replace("/fleet", "/rot");
    await publish("r1", rotRef);
    await publish("r1b", rotRef);
    await bao.api("POST", "transit/keys/rot/rotate", {});
    await publish("r2", rotRef);
    const { token } = await bao.createToken(["sidecar"]);
    const r = await runSidecar(tokenAuth({ file: secretFile("rot-token", token) }));
    try {
      const r1 = await r.open("r1");
      await bao.api("POST", "transit/keys/rot/config", { min_decryption_version: 2 });
      const fail = await refused(r, "r1b");
      expect([fail.code, fail.ctCode]).toEqual([status.FAILED_PRECONDITION, "ERR_CT_KEY_NOT_FOUND"]);
      expect(fail.details).toMatch(/too old|disallowed/);
      await r.load((await r.open("r2")).model_id);
      await r.load(r1.model_id);
    } finally {
      await r.close();
    }
  });

  it("an unresponsive service is UNAVAILABLE (ERR_CT_IO) after bounded retries; it opens again once the service answers", async () => {
    const { token } = await bao.createToken(["sidecar"]);
    const r = await runSidecar(tokenAuth({ token }), { timeoutMs: 300, retries: 1 });
    try {
      bao.pause();
      let fail;
      try {
        fail = await refused(r, "a");
      } finally {
        bao.resume();
      }
      expect([fail.code, fail.ctCode]).toEqual([status.UNAVAILABLE, "ERR_CT_IO"]);
      expect(fail.details).toMatch(/did not answer within 300 ms/);
      await r.load((await r.open("a")).model_id);
    } finally {
      await r.close();
    }
  });
});

describe("keys only in memory", () => {
  it("a release session zeroes every master key it obtained once the shards are open", async () => {
    const handed: EncryptionKey[] = [];
    const real = operator;
    const recording: KmsProvider = {
      scheme: real.scheme,
      handles: (r) => real.handles(r),
      generate: (r, alg) => real.generate(r, alg),
      async unwrap(ref: KeyRef) {
        const k = await real.unwrap(ref);
        handed.push(k);
        return k;
      },
    };
    const session = new KmsKeyRelease([recording]).session();
    const readers: CryptoTensorsReader[] = [];
    try {
      readers.push(await session.open(models.get("a")!, { trust, requireEncrypted: true }));
      readers.push(await session.open(models.get("a")!, { trust, requireEncrypted: true })); // same key: not asked twice
      expect(handed).toHaveLength(1);
      expect(handed[0]!.k.some((b) => b !== 0)).toBe(true);
    } finally {
      session.dispose();
    }
    expect(handed[0]!.k.every((b) => b === 0)).toBe(true);
    // The readers hold their data keys and read on.
    const t = readers[0]!.tensors.find((x) => x.end > x.begin)!;
    expect(Buffer.from(await readers[0]!.readTensor(t.name)).equals(Buffer.from(expected.get(t.name)!))).toBe(true);
    await Promise.all(readers.map((x) => x.close()));
  });

  it("a model with a local master key opens as before in a sidecar that also has a key service", async () => {
    const local = { kind: "enc" as const, alg: "aes256gcm" as const, k: new Uint8Array(32).fill(7), kid: "local-1" };
    const file = join(dir, "local.safetensors");
    await encryptFile(join(dir, "plain.safetensors"), file, { key: local, signKey: sign });
    const session = new KmsKeyRelease([operator]).session();
    const before = bao.releases("transit/decrypt/fleet").length;
    const reader = await session.open(file, { keys: [local], trust, requireEncrypted: true });
    session.dispose();
    const t = reader.tensors.find((x) => x.end > x.begin)!;
    expect(Buffer.from(await reader.readTensor(t.name)).equals(Buffer.from(expected.get(t.name)!))).toBe(true);
    await reader.close();
    expect(bao.releases("transit/decrypt/fleet").length).toBe(before);
  });
});
