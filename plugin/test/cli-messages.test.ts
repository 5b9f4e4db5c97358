// Messages that say what went wrong (issue: "messages that mislead"): a secret key given as trust, a
// text file given as a safetensors file.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, tempDir, writePlainSafetensors } from "./helpers.js";

const dir = tempDir("ct-msg-");
const ct = async (args: string[]) => {
  const r = await execa("node", [CLI, ...args], { cwd: dir, reject: false, stdin: "ignore" });
  return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
};

beforeAll(async () => {
  expect((await ct(["keygen", "--out", join(dir, "keys")])).code).toBe(0);
  writePlainSafetensors(join(dir, "plain.safetensors"), [{ name: "w", dtype: "F32", shape: [2, 2] }]);
  const sign = ["--key", join(dir, "keys", "enc.jwk"), "--sign-key", join(dir, "keys", "sign.jwk")];
  expect((await ct(["encrypt", join(dir, "plain.safetensors"), join(dir, "enc.safetensors"), ...sign])).code).toBe(0);
  writeFileSync(join(dir, "config.json"), '{\n  "architectures": ["LlamaForCausalLM"]\n}\n');
});

describe("CLI messages", () => {
  it("verify --trust with the secret encryption key says so, and where that key goes", async () => {
    const r = await ct(["verify", join(dir, "enc.safetensors"), "--trust", join(dir, "keys", "enc.jwk")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("[ERR_CT_USAGE]");
    expect(r.stderr).toContain("secret encryption key");
    expect(r.stderr).toContain("sign.pub.jwk");
    expect(r.stderr).not.toContain("no trusted signer key was given");
  });

  it("encrypt of a JSON file says it is not a safetensors file", async () => {
    const r = await ct([
      "encrypt",
      join(dir, "config.json"),
      join(dir, "out.safetensors"),
      "--key",
      join(dir, "keys", "enc.jwk"),
      "--sign-key",
      join(dir, "keys", "sign.jwk"),
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("not a safetensors file");
    expect(r.stderr).toContain("begins with text");
  });
});
