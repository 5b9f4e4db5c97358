// An encrypted test model for the tests that run the real sidecar and the real Python shim inside a
// mount namespace of their own (small-shm.test.ts, hugetlbfs.test.ts): key files, the encrypted model,
// the expected digests of its tensors, and the shim client (small_shm_client.py) run inside the namespace.

import { createHash } from "node:crypto";
import { unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { encryptFile } from "../../src/container/encrypt-file.js";
import { publicKeyOf, toJwk } from "../../src/keys/jwk.js";
import { newEncryptionKey, newSigningKey, REPO_ROOT, VENV_PYTHON, writePlainSafetensors, type PlainTensor } from "../helpers.js";
import { start, type Namespace, type Sidecar } from "./private-shm.js";

const CLIENT = join(import.meta.dirname, "small_shm_client.py");

export interface ShimModel {
  /** enc.jwk (0600) and sign.pub.jwk: `serve --key keyFile --trust pubFile`. */
  keyFile: string;
  pubFile: string;
  /** The encrypted model (the plaintext file is removed). */
  model: string;
  /** sha256, dtype and shape of every tensor, for the shim client to compare with. */
  expectedJson: string;
  /** The plaintext bytes of every tensor. */
  plain: Map<string, Uint8Array>;
}

/** Writes keys and `dir/model.enc.safetensors` holding `tensors` (F32, random bytes). */
export async function writeShimModel(dir: string, tensors: PlainTensor[], keyId: string): Promise<ShimModel> {
  const encKey = newEncryptionKey("aes256gcm", `${keyId}-enc`);
  const signKey = newSigningKey(`${keyId}-signer`);
  const m: ShimModel = {
    keyFile: join(dir, "enc.jwk"),
    pubFile: join(dir, "sign.pub.jwk"),
    model: join(dir, "model.enc.safetensors"),
    expectedJson: join(dir, "expected.json"),
    plain: new Map(),
  };
  writeFileSync(m.keyFile, JSON.stringify(toJwk(encKey)), { mode: 0o600 });
  writeFileSync(m.pubFile, JSON.stringify(toJwk(publicKeyOf(signKey))));
  m.plain = writePlainSafetensors(join(dir, "model.safetensors"), tensors);
  await encryptFile(join(dir, "model.safetensors"), m.model, { key: encKey, signKey });
  unlinkSync(join(dir, "model.safetensors"));
  const expected = Object.fromEntries(
    tensors.map((t) => [
      t.name,
      { sha256: createHash("sha256").update(m.plain.get(t.name)!).digest("hex"), dtype: "torch.float32", shape: t.shape },
    ]),
  );
  writeFileSync(m.expectedJson, JSON.stringify(expected));
  return m;
}

export interface ShimResult {
  ok: boolean;
  tensors?: number;
  mismatch?: string[];
  code?: string;
  message?: string;
}

/** The Python shim in a process of its own, inside `ns` (small_shm_client.py MODE: vllm, vllm-keep, resident, stream). */
export async function runShim(ns: Namespace, sidecar: Sidecar, mode: string, m: ShimModel): Promise<ShimResult> {
  const argv = [...ns.prefix, VENV_PYTHON, CLIENT, sidecar.socket, mode, m.model, m.expectedJson];
  const proc = start(argv[0]!, argv.slice(1), { PYTHONPATH: join(REPO_ROOT, "python-shim", "src") });
  const code = await proc.exit;
  expect(code, proc.stderr()).toBe(0);
  return JSON.parse(proc.stdout().trim().split("\n").pop()!) as ShimResult;
}
