// `ctensors push` and `pull` as Hub users expect (child processes against the dev Hub): pushing an
// unchanged folder makes no commit (as `hf upload`), the printed and --json file lists include the
// README.md push commits, and `pull --revision REV` is `pull REPO@REV`.

import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { listCommits } from "@huggingface/hub";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../plugin/src/container/encrypt-file.js";
import { writeRelease } from "../../plugin/src/release/index.js";
import { startDevHub, type DevHub } from "../../plugin/src/hub/dev-hub/index.js";
import {
  CLI,
  newEncryptionKey,
  newSigningKey,
  REPO_ROOT,
  sampleTensors,
  tempDir,
  writePlainSafetensors,
} from "../../plugin/test/helpers.js";

const TOKEN = "hf_ctensors_conventions";
const dir = tempDir("ct-hubconv-");
let hub: DevHub;

async function ct(args: string[], extra: Record<string, string | undefined> = {}) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("HF_") && !k.startsWith("HUGGING")) env[k] = v;
  Object.assign(env, { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, HF_HOME: join(dir, "hf-home") }, extra);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const r = await execa("node", [CLI, ...args], { cwd: REPO_ROOT, stdin: "ignore", reject: false, extendEnv: false, env, timeout: 60_000 });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function commitCount(repo: string): Promise<number> {
  let n = 0;
  for await (const _ of listCommits({ repo, hubUrl: hub.url, accessToken: TOKEN })) n++;
  return n;
}

const model = join(dir, "enc");

beforeAll(async () => {
  hub = await startDevHub({ dataDir: join(dir, "hub-data"), token: TOKEN, log: () => {} });
  mkdirSync(model);
  const plain = join(dir, "plain.safetensors");
  writePlainSafetensors(plain, sampleTensors());
  const signKey = newSigningKey("sign-c");
  await encryptFile(plain, join(model, "model.safetensors"), {
    key: newEncryptionKey("aes256gcm", "enc-c"),
    signKey,
  });
  writeFileSync(join(model, "config.json"), '{"model_type": "llama"}\n');
  // A confidential folder is pushed with its signed release manifest (as `ctensors encrypt` writes it).
  await writeRelease(model, { signKey, model: "acme/conventions", release: 1 });
});

afterAll(async () => {
  await hub?.close();
});

describe("push", () => {
  it("lists README.md, and makes no commit for an unchanged folder", async () => {
    const first = await ct(["push", model, "acme/conv", "--json"]);
    expect(first.code, first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout) as { commit: string; files: string[]; unchanged: boolean };
    expect(r1.files).toEqual(["README.md", "config.json", "cryptotensors.json", "model.safetensors", "model.sig"]);
    expect(r1.unchanged).toBe(false);
    const commits = await commitCount("acme/conv");

    const again = await ct(["push", model, "acme/conv", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const r2 = JSON.parse(again.stdout) as { commit: string; files: string[]; unchanged: boolean };
    expect(r2).toMatchObject({ commit: r1.commit, unchanged: true, files: r1.files });
    expect(await commitCount("acme/conv")).toBe(commits);
    const text = await ct(["push", model, "acme/conv"]);
    expect(text.stdout).toContain("nothing to push");
    expect(await commitCount("acme/conv")).toBe(commits);

    const changed = join(dir, "enc-changed");
    cpSync(model, changed, { recursive: true });
    writeFileSync(join(changed, "config.json"), '{"model_type": "llama", "vocab_size": 8}\n');
    const third = await ct(["push", changed, "acme/conv", "--json"]);
    const r3 = JSON.parse(third.stdout) as { commit: string; unchanged: boolean };
    expect(r3.unchanged).toBe(false);
    expect(r3.commit).not.toBe(r1.commit);
    expect(await commitCount("acme/conv")).toBe(commits + 1);
  });
});

describe("pull --revision", () => {
  it("is REPO@REV, and refuses a revision that contradicts REPO@REV", async () => {
    const pushed = JSON.parse((await ct(["push", model, "acme/pullrev", "--json"])).stdout) as { commit: string };
    const changed = join(dir, "enc-pullrev");
    cpSync(model, changed, { recursive: true });
    writeFileSync(join(changed, "NOTES.md"), "later\n");
    expect((await ct(["push", changed, "acme/pullrev"])).code).toBe(0);
    const byOption = await ct(["pull", "acme/pullrev", "--revision", pushed.commit, "--json", "--cache-dir", join(dir, "cache")]);
    expect(byOption.code, byOption.stderr).toBe(0);
    expect(JSON.parse(byOption.stdout).commit).toBe(pushed.commit);
    const conflict = await ct(["pull", "acme/pullrev@main", "--revision", pushed.commit, "--cache-dir", join(dir, "cache")]);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toContain("[ERR_CT_USAGE]");
  });
});

describe("Hub messages", () => {
  it("say that no token was given, and that a token is not a Hub token, instead of blaming the Hub", async () => {
    expect((await ct(["push", model, "acme/private", "--private"])).code).toBe(0);
    for (const args of [
      ["pull", "acme/private", "--cache-dir", join(dir, "cache-private")],
      ["push", model, "acme/private"],
    ]) {
      const none = await ct(args, { HF_TOKEN: undefined });
      expect(none.code, none.stderr).toBe(9);
      expect(none.stderr).toContain("no token was given");
      expect(none.stderr).not.toContain("refused the token");
    }
    const odd = await ct(["push", model, "acme/private"], { HF_TOKEN: "not-a-hub-token" });
    expect(odd.code).toBe(9);
    expect(odd.stderr).toContain('start with "hf_"');
    expect(odd.stderr).not.toContain("is the Hub reachable");
    expect(odd.stderr).not.toContain("not-a-hub-token");
  });
});
