// Policy verdicts must match the reference's (which embeds the regorus Rego engine): for each policy the
// reference writes a file, the reference reads it (allow / deny), and so do we with the regorus engine
// from .venv. Without an engine, every non-default policy is refused, never allowed, even one that
// differs from the default only in whitespace. Like the reference, we never evaluate `remote`.

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CryptoTensorsReader } from "../../plugin/src/container/reader.js";
import { MemoryCryptoTensors } from "../../plugin/src/container/memory-reader.js";
import { nodeCryptoProvider } from "../../plugin/src/crypto/provider-node.js";
import { regorusPythonEngine } from "../../plugin/src/policy.js";
import { publicKeyOf, toJwk } from "../../plugin/src/keys/jwk.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import { readFileSync, writeFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { REPO_ROOT, VENV_PYTHON, newEncryptionKey, newSigningKey, tempDir, writePlainSafetensors } from "../../plugin/test/helpers.js";

const run = promisify(execFile);
const REF_TOOL = join(REPO_ROOT, "test", "interop", "ref_tool.py");

async function refOk(args: string[]): Promise<{ ok: boolean; message?: string }> {
  try {
    return JSON.parse((await run(VENV_PYTHON, [REF_TOOL, ...args])).stdout);
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    if (e.code === 3 && e.stdout) return JSON.parse(e.stdout);
    throw err;
  }
}

// [label, policy, the verdict the reference gives]
const POLICIES: [string, string, boolean][] = [
  ["default text", "package model\nallow = true", true],
  ["allow := true", "package model\n\nallow := true\n", true],
  ["computed true", "package model\nallow if { 1 + 1 == 2 }", true],
  ["allow = false", "package model\nallow = false", false],
  ["computed false", "package model\nallow if { 1 == 2 }", false],
  ["non-boolean", "package model\nallow = 1", false],
  ["other package (undefined)", "package cryptotensors\nallow = true", false],
  ["syntax error", "package model\nallow = = true", false],
  ["whitespace variant of the default", "package model\n\n  allow   =   true\n", true],
  ["no-break space (not Rego whitespace)", "package\u00a0model\nallow = true", false],
];

describe("non-default policies: same verdict as the reference", () => {
  const dir = tempDir("ct-policy-");
  const plain = join(dir, "plain.safetensors");
  writePlainSafetensors(plain, [{ name: "w", dtype: "F32", shape: [4] }]);
  const key = newEncryptionKey();
  const signKey = newSigningKey();
  const paths = { enc: join(dir, "enc.jwk"), sign: join(dir, "sign.jwk"), pub: join(dir, "pub.jwk") };
  writeFileSync(paths.enc, JSON.stringify(toJwk(key)));
  writeFileSync(paths.sign, JSON.stringify(toJwk(signKey)));
  writeFileSync(paths.pub, JSON.stringify(toJwk(publicKeyOf(signKey), "reference", false)));
  const engine = regorusPythonEngine(VENV_PYTHON);

  for (const [label, rego, expected] of POLICIES) {
    it(label, async () => {
      const file = join(dir, `${label.replace(/\W+/g, "_")}.safetensors`);
      const written = await refOk([
        "write",
        "--plain",
        plain,
        "--out",
        file,
        "--enc-key",
        paths.enc,
        "--sign-key",
        paths.sign,
        "--policy-local",
        rego,
      ]);
      expect(written.ok, written.message).toBe(true);
      const refVerdict = (await refOk(["read", "--in", file, "--enc-key", paths.enc, "--sign-key", paths.pub])).ok;
      const open = (engineOpt?: typeof engine) =>
        CryptoTensorsReader.open(file, { keys: [key], trust: new TrustStore([signKey]), policyEngine: engineOpt });
      let ours: boolean;
      try {
        await (await open(engine)).close();
        ours = true;
      } catch (err) {
        expect((err as { code: string }).code).toBe("ERR_CT_POLICY_DENIED");
        ours = false;
      }
      expect(refVerdict).toBe(expected);
      expect(ours).toBe(refVerdict);
      if (rego !== "package model\nallow = true") {
        // No engine configured: refused, whatever the policy says.
        await expect(open(undefined)).rejects.toMatchObject({ code: "ERR_CT_POLICY_UNSUPPORTED" });
      }
    });
  }

  it("`remote` is not evaluated: a denying remote policy loads in the reference and in both our readers, without an engine", async () => {
    const file = join(dir, "remote-deny.safetensors");
    const deny = "package model\nallow = false";
    const written = await refOk([
      "write",
      "--plain",
      plain,
      "--out",
      file,
      "--enc-key",
      paths.enc,
      "--sign-key",
      paths.sign,
      "--policy-remote",
      deny,
    ]);
    expect(written.ok, written.message).toBe(true);
    expect((await refOk(["read", "--in", file, "--enc-key", paths.enc, "--sign-key", paths.pub])).ok).toBe(true);
    const options = { keys: [key], trust: new TrustStore([signKey]) };
    const reader = await CryptoTensorsReader.open(file, options);
    expect(reader.crypto?.policy.remote).toBe(deny);
    await reader.close();
    (await MemoryCryptoTensors.open(new Uint8Array(readFileSync(file)), { ...options, provider: nodeCryptoProvider })).close();
  });

  it("the verdicts cover both outcomes", async () => {
    expect(await engine("package model\nallow := true")).toBe(true);
    expect(await engine("package model\nallow := false")).toBe(false);
  });
});
