// The sidecar evaluates a model's embedded policies with an input document (docs/key-management.md,
// "Policy with input") with the real regorus engine ($CTENSORS_REGO_PYTHON), before it asks the real
// OpenBao server for the model's key: a deny is ERR_CT_POLICY_DENIED (PERMISSION_DENIED) at OpenModel and
// the service's audit log shows no request for that key at all.

import { copyFileSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../plugin/src/container/encrypt-file.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "../../plugin/src/container/reserved.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import { KmsKeyRelease } from "../../plugin/src/kms/release.js";
import { tokenAuth } from "../../plugin/src/kms/vault-auth.js";
import { VaultTransitProvider } from "../../plugin/src/kms/vault-transit.js";
import { regorusPythonEngine } from "../../plugin/src/policy.js";
import { newSigningKey, sampleTensors, tempDir, writePlainSafetensors } from "../../plugin/test/helpers.js";
import { startSidecar } from "../../plugin/src/sidecar/index.js";
import { modelIdOf } from "../../plugin/src/sidecar/model-registry.js";
import { auth, newClient, rpcFailure, runLoad, tokenOf, unary } from "../../plugin/test/sidecar/helpers.js";
import { Bao } from "./bao.js";

const python = resolve(process.env.CTENSORS_REGO_PYTHON ?? ".venv/bin/python"); // the engine runs in the temporary folder
const dir = tempDir("ctensors-kms-policy-");
const sign = newSigningKey("publisher");
const trust = new TrustStore([sign]);
let bao: Bao;
let operator: VaultTransitProvider;
let keyRef: string;
let expected: Map<string, Uint8Array>;
let files = 0;

/** A model wrapped by the key service, carrying `policy`; returns its path. */
async function publish(policy: Policy): Promise<string> {
  const key = await operator.generate(keyRef, "aes256gcm");
  const out = join(dir, `m${++files}.safetensors`);
  try {
    await encryptFile(join(dir, "plain.safetensors"), out, { key, signKey: sign, policy });
  } finally {
    key.k.fill(0);
  }
  return out;
}

/** Every request for the key (allowed or not) in the service's audit log. */
const decryptRequests = () => bao.audit().filter((e) => e.type === "request" && e.request?.path === "transit/decrypt/gated").length;

/** Runs a sidecar with `claims`, opens `file` and loads it; returns the failure, or null when it served the plaintext. */
async function openWith(file: string, claims: Record<string, unknown> = {}) {
  const { token } = await bao.createToken(["sidecar"]);
  const provider = new VaultTransitProvider({ address: bao.address, auth: tokenAuth({ token }), timeoutMs: 3000, retries: 0 });
  const socketPath = join(dir, `s${files}-${Math.random().toString(36).slice(2, 8)}.sock`);
  const sidecar = await startSidecar({
    socketPath,
    trust,
    requireEncrypted: true,
    kms: new KmsKeyRelease([provider]),
    policyEngine: regorusPythonEngine(python),
    policyClaims: claims,
    logger: { info() {}, warn() {}, error() {} },
  });
  const client = newClient(socketPath);
  const md = () => auth(tokenOf(socketPath));
  try {
    const before = decryptRequests();
    try {
      const { model_id } = await unary<{ model_id: string }>(client, "OpenModel", { source: file }, md());
      const loaded = await runLoad(client, md(), { model_id, mode: "LOAD_MODE_STREAMING" });
      for (const [n, b] of expected) expect(loaded.tensors.get(n)!.equals(Buffer.from(b)), n).toBe(true);
      expect(decryptRequests()).toBe(before + 1);
      return null;
    } catch (err) {
      const fail = await rpcFailure(Promise.reject(err));
      return { ...fail, asked: decryptRequests() - before };
    }
  } finally {
    client.close();
    await sidecar.close();
  }
}

const local = (rego: string): Policy => ({
  local: `package model\nimport rego.v1\ndefault allow := false\n${rego}`,
  remote: DEFAULT_POLICY_TEXT,
});
const remote = (rego: string): Policy => ({
  local: DEFAULT_POLICY_TEXT,
  remote: `package model\nimport rego.v1\ndefault allow := false\n${rego}`,
});

beforeAll(async () => {
  bao = await Bao.start();
  await bao.createTransitKey("gated");
  await bao.writePolicy("sidecar", ["gated"], ["decrypt"]);
  keyRef = `vault-transit://127.0.0.1:${new URL(bao.address).port}/transit/keys/gated`;
  operator = new VaultTransitProvider({ address: bao.address, auth: tokenAuth({ token: bao.rootToken }) });
  expected = writePlainSafetensors(join(dir, "plain.safetensors"), sampleTensors());
});
afterAll(async () => bao?.dispose());

describe("policies evaluated with input before the key service is asked", () => {
  it("a local policy allowing one model id: that model is released, a copy elsewhere (another model id) is refused unasked", async () => {
    const first = await publish(local("allow if input.model.model_id == data.model.wanted\n"));
    // The policy names the model id the sidecar gives the path it will be served from.
    const target = join(dir, "allowed.safetensors");
    const policy = local(`allow if input.model.model_id == "${modelIdOf(join(realpathSync(dir), "allowed.safetensors"))}"\n`);
    const allowedFile = await publish(policy);
    copyFileSync(allowedFile, target);
    expect(await openWith(target)).toBeNull();
    const denied = await openWith(allowedFile);
    expect(denied).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_POLICY_DENIED", asked: 0 });
    expect(denied!.details).toMatch(/access policy denies/);
    // An undefined reference (data.model.wanted) is no allow either.
    expect(await openWith(first)).toMatchObject({ ctCode: "ERR_CT_POLICY_DENIED", asked: 0 });
  });

  it("a local policy with a time window: inside it the key is released, after it the service is never asked", async () => {
    const open = await publish(local('allow if {\n  input.time >= "2020-01-01T00:00:00Z"\n  input.time < "2200-01-01T00:00:00Z"\n}\n'));
    const closed = await publish(local('allow if input.time < "2021-01-01T00:00:00Z"\n'));
    expect(await openWith(open)).toBeNull();
    expect(await openWith(closed)).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_POLICY_DENIED", asked: 0 });
  });

  it("a remote (key release) policy requiring a licence claim and a key-service identity: allowed with the claim, refused unasked without", async () => {
    const file = await publish(
      remote('allow if {\n  input.claims.licence == "acme-research"\n  startswith(input.sidecar.identity, "token")\n}\n'),
    );
    expect(await openWith(file, { licence: "acme-research" })).toBeNull();
    const denied = await openWith(file, { licence: "community" });
    expect(denied).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_POLICY_DENIED", asked: 0 });
    expect(denied!.details).toMatch(/remote \(key release\) policy denies/);
  });

  it("a model with a local master key: its local policy gets the same input (claims), the key service has no part", async () => {
    const key = { kind: "enc" as const, alg: "aes256gcm" as const, k: new Uint8Array(32).fill(9), kid: "local-9" };
    const file = join(dir, "local-key.safetensors");
    await encryptFile(join(dir, "plain.safetensors"), file, {
      key,
      signKey: sign,
      policy: local('allow if {\n  input.claims.licence == "acme-research"\n  input.sidecar.identity == null\n}\n'),
    });
    const serve = async (claims: Record<string, unknown>) => {
      const socketPath = join(dir, `local-${Math.random().toString(36).slice(2, 8)}.sock`);
      const sidecar = await startSidecar({
        socketPath,
        keys: [key],
        trust,
        requireEncrypted: true,
        policyEngine: regorusPythonEngine(python),
        policyClaims: claims,
        logger: { info() {}, warn() {}, error() {} },
      });
      const client = newClient(socketPath);
      try {
        const opened = await unary<{ model_id: string }>(client, "OpenModel", { source: file }, auth(tokenOf(socketPath))).then(
          (r) => r,
          (err: { code: status; ctCode?: string }) => err,
        );
        return opened;
      } finally {
        client.close();
        await sidecar.close();
      }
    };
    expect(await serve({ licence: "acme-research" })).toHaveProperty("model_id");
    expect(await serve({ licence: "community" })).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_POLICY_DENIED" });
  });

  it("the input carries the signer's kid and no release for a single file", async () => {
    const file = await publish(
      local(`allow if {\n  input.signer.kid == "${sign.kid}"\n  input.model.release == null\n  input.model.repo == null\n}\n`),
    );
    expect(await openWith(file)).toBeNull();
  });
});
