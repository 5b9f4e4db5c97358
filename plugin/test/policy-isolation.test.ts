// The policy evaluator (a regorus Python subprocess, policy.ts) must never run code the caller did not
// choose: a `json.py` or `regorus.py` in the model folder or in the working directory, or a PYTHONPATH /
// PYTHONSTARTUP in the environment. Each planted module would leave a marker file if it ran.

import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../src/container/encrypt-file.js";
import { publicKeyOf, toJwk } from "../src/keys/jwk.js";
import { CLI, newEncryptionKey, newSigningKey, sampleTensors, tempDir, VENV_PYTHON, writePlainSafetensors } from "./helpers.js";

const dir = tempDir("ctensors-policy-iso-");
const markers = join(dir, "markers");
const model = join(dir, "model");
const elsewhere = join(dir, "on-pythonpath");
const key = newEncryptionKey();
const signKey = newSigningKey();

/** A Python module that leaves `markers/<tag>` behind if it is ever imported (and then behaves like nothing happened). */
function plant(folder: string, module: string, tag: string): void {
  writeFileSync(join(folder, `${module}.py`), `open(${JSON.stringify(join(markers, tag))}, "w").write("ran")\n`);
}

beforeAll(async () => {
  for (const d of [markers, model, elsewhere]) mkdirSync(d, { recursive: true });
  writeFileSync(join(dir, "enc.jwk"), JSON.stringify(toJwk(key)));
  writeFileSync(join(dir, "sign.pub.jwk"), JSON.stringify(toJwk(publicKeyOf(signKey))));
  const plain = join(dir, "plain.safetensors");
  writePlainSafetensors(plain, sampleTensors());
  // Non-default policies: the evaluator subprocess has to run.
  await encryptFile(plain, join(model, "allow.safetensors"), {
    key,
    signKey,
    policy: { local: "package model\nallow if { 1 + 1 == 2 }", remote: "package model\nallow = true" },
  });
  await encryptFile(plain, join(model, "deny.safetensors"), {
    key,
    signKey,
    policy: { local: "package model\nallow if { 1 == 2 }", remote: "package model\nallow = true" },
  });
  for (const m of ["json", "regorus", "sys"]) plant(model, m, `model-${m}`);
  for (const m of ["json", "regorus"]) plant(elsewhere, m, `pythonpath-${m}`);
  writeFileSync(join(elsewhere, "startup.py"), `open(${JSON.stringify(join(markers, "startup"))}, "w").write("ran")\n`);
});

async function verifyIn(file: string): Promise<{ code: number; stderr: string }> {
  const r = await execa("node", [CLI, "verify", file, "--trust", join(dir, "sign.pub.jwk"), "--key", join(dir, "enc.jwk")], {
    cwd: model, // the model folder is the working directory
    stdin: "ignore",
    reject: false,
    timeout: 60_000,
    env: { CTENSORS_REGO_PYTHON: VENV_PYTHON, PYTHONPATH: elsewhere, PYTHONSTARTUP: join(elsewhere, "startup.py"), PYTHONINSPECT: "" },
  });
  return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
}

describe("policy evaluation runs no planted code", () => {
  it("the policies are still evaluated (allow → 0, deny → 7), and no planted module ran", async () => {
    const allowed = await verifyIn("allow.safetensors");
    expect(allowed.code, allowed.stderr).toBe(0);
    const denied = await verifyIn(join(model, "deny.safetensors"));
    expect(denied.code, denied.stderr).toBe(7);
    expect(denied.stderr).toContain("[ERR_CT_POLICY_DENIED]");
    expect(readdirSync(markers)).toEqual([]);
    expect(existsSync(join(markers, "model-json"))).toBe(false);
  });
});
