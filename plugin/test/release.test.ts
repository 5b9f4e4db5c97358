// Signed releases through the CLI as a user runs it (`node plugin/dist/cli/bin.js`, needs `npm run
// build`): encrypt/rewrap write model.sig, verify/decrypt check it, each attack of issue 13 is a
// typed error naming the file, the real `model-signing` package (PyPI) verifies what ctensors wrote,
// and a model encrypted by the reference implementation gets a manifest without re-encryption.

import { generateKeyPairSync } from "node:crypto";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, VENV_PYTHON, tempDir, writePlainSafetensors, type PlainTensor } from "./helpers.js";

const dir = tempDir("ctensors-release-");
const MODEL_SIGNING = join(REPO_ROOT, ".venv", "bin", "model_signing");
const REF_TOOL = join(REPO_ROOT, "test", "interop", "ref_tool.py");
const SHARD1 = "model-00001-of-00002.safetensors";
const SHARD2 = "model-00002-of-00002.safetensors";
const INDEX = "model.safetensors.index.json";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function ct(...args: string[]): Promise<Run> {
  const env = { ...process.env };
  for (const k of ["CTENSORS_REGO_PYTHON", "CRYPTOTENSOR_KEYS", "CTENSORS_KEY_TOKEN", "CTENSORS_RELEASE_STATE"]) delete env[k];
  const r = await execa("node", [CLI, ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    reject: false,
    extendEnv: false,
    env,
    timeout: 60_000,
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function expectExit(run: Run, code: number, errorCode?: string, names?: string): void {
  expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code });
  if (errorCode) expect(run.stderr).toContain(`[${errorCode}]`);
  if (names) expect(run.stderr).toContain(names);
}

const keys = join(dir, "keys");
const stranger = join(dir, "stranger");
const ecKey = join(dir, "ec.pem");
const ecPub = join(dir, "ec.pub.pem");
const trust = () => ["--trust", join(keys, "sign.pub.jwk")];
const withKeys = () => ["--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")];

/** Two shards' tensors (random values: every call is another training run). */
const SHARD_TENSORS: PlainTensor[][] = [
  [
    { name: "model.embed_tokens.weight", dtype: "F32", shape: [16, 8] },
    { name: "model.layers.0.mlp.up_proj.weight", dtype: "BF16", shape: [8, 8] },
  ],
  [
    { name: "model.norm.weight", dtype: "F32", shape: [8] },
    { name: "lm_head.weight", dtype: "F16", shape: [16, 8] },
  ],
];

/** A two-shard Hugging Face style folder with config, generation config, tokenizer and chat template. */
function writePlainModel(root: string): void {
  mkdirSync(root, { recursive: true });
  const weightMap: Record<string, string> = {};
  SHARD_TENSORS.forEach((tensors, i) => {
    const shard = i === 0 ? SHARD1 : SHARD2;
    writePlainSafetensors(join(root, shard), tensors);
    for (const t of tensors) weightMap[t.name] = shard;
  });
  writeFileSync(join(root, INDEX), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  writeFileSync(join(root, "config.json"), JSON.stringify({ model_type: "llama", rope_scaling: { factor: 1.0 } }));
  writeFileSync(join(root, "generation_config.json"), JSON.stringify({ temperature: 0.7 }));
  writeFileSync(join(root, "tokenizer.json"), JSON.stringify({ model: { vocab: { a: 0, b: 1 } } }));
  writeFileSync(join(root, "tokenizer_config.json"), JSON.stringify({ chat_template: "{{ messages }}" }));
  writeFileSync(join(root, "chat_template.jinja"), "{% for m in messages %}{{ m.content }}{% endfor %}");
}

/** A copy of an encrypted release to attack. */
let copies = 0;
function copyOf(src: string): string {
  const d = join(dir, `attack-${++copies}`);
  cpSync(src, d, { recursive: true });
  return d;
}

const encA = join(dir, "enc-a");
const encB = join(dir, "enc-b");

beforeAll(async () => {
  expectExit(await ct("keygen", "--out", keys, "--kid", "publisher"), 0);
  expectExit(await ct("keygen", "--out", stranger, "--kid", "stranger"), 0);
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(ecKey, ec.privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(ecPub, ec.publicKey.export({ type: "spki", format: "pem" }));
  writePlainModel(join(dir, "plain-a"));
  writePlainModel(join(dir, "plain-b"));
  // Two releases of one model, same keys: what an attacker would mix.
  expectExit(
    await ct("encrypt", join(dir, "plain-a"), encA, ...withKeys(), "--model-id", "org/model", "--release", "1", "--oms-key", ecKey),
    0,
  );
  expectExit(
    await ct("encrypt", join(dir, "plain-b"), encB, ...withKeys(), "--model-id", "org/model", "--release", "2", "--oms-key", ecKey),
    0,
  );
}, 120_000);

describe("encrypt writes a signed release that verify checks", () => {
  it("writes model.sig (an OMS bundle) binding every file, shards by their header", async () => {
    const bundle = JSON.parse(readFileSync(join(encA, "model.sig"), "utf8"));
    expect(bundle.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
    expect(statement.predicateType).toBe("https://model_signing/signature/v1.0");
    expect(statement.predicate.resources.map((r: { name: string }) => r.name)).toEqual([
      "chat_template.jinja",
      "config.json",
      "generation_config.json",
      SHARD1,
      SHARD2,
      INDEX,
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const release = statement.predicate.ctensors_release;
    expect(release).toMatchObject({ version: 1, model: "org/model", release: 1, signer: { kid: "publisher" } });
    expect(Object.keys(release.headers).sort()).toEqual([SHARD1, SHARD2]);
    const run = await ct("verify", encA, ...trust());
    expectExit(run, 0);
    expect(run.stdout).toContain("release 1 of org/model");
  });

  it("is verified by the real model-signing package (model_signing verify key), which re-hashes every file", async () => {
    const ok = await execa(
      MODEL_SIGNING,
      ["verify", "key", encA, "--signature", join(encA, "model.sig"), "--public_key", ecPub, "--allow_symlinks"],
      { reject: false },
    );
    expect({ code: ok.exitCode, out: ok.stdout + ok.stderr }).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain("Verification succeeded");
    const altered = copyOf(encA);
    writeFileSync(join(altered, "config.json"), JSON.stringify({ model_type: "llama", rope_scaling: { factor: 8.0 } }));
    const bad = await execa(
      MODEL_SIGNING,
      ["verify", "key", altered, "--signature", join(altered, "model.sig"), "--public_key", ecPub, "--allow_symlinks"],
      { reject: false },
    );
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stdout + bad.stderr).toContain("config.json");
    // Another EC key is not the signer.
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const otherPub = join(dir, "other-ec.pub.pem");
    writeFileSync(otherPub, other.publicKey.export({ type: "spki", format: "pem" }));
    const wrongKey = await execa(MODEL_SIGNING, ["verify", "key", encA, "--signature", join(encA, "model.sig"), "--public_key", otherPub], {
      reject: false,
    });
    expect(wrongKey.exitCode).not.toBe(0);
  });

  it("--full-hash re-hashes every file as an OMS verifier does", async () => {
    const run = await ct("verify", encA, ...trust(), "--full-hash");
    expectExit(run, 0);
  });
});

describe("attacks on a release, through the CLI", () => {
  it("mixed shards from two releases with the same keys: refused, naming the shard", async () => {
    const mixed = copyOf(encB);
    copyFileSync(join(encA, SHARD2), join(mixed, SHARD2));
    // Each shard on its own is still a validly signed, fully encrypted file…
    expectExit(await ct("verify", join(mixed, SHARD2), ...trust(), "--require-encrypted"), 0);
    // …but not the shard of this release.
    expectExit(await ct("verify", mixed, ...trust(), "--require-encrypted"), 4, "ERR_CT_INTEGRITY", SHARD2);
    expectExit(await ct("verify", mixed, ...trust(), "--allow-unsigned-release"), 4, "ERR_CT_INTEGRITY", SHARD2);
    const out = join(dir, "mixed-out");
    expectExit(await ct("decrypt", mixed, out, "--key", join(keys, "enc.jwk"), ...trust()), 4, "ERR_CT_INTEGRITY", SHARD2);
    expect(existsSync(out)).toBe(false);
  });

  it("a dropped shard with its index: refused, naming the missing files", async () => {
    const dropped = copyOf(encA);
    rmSync(join(dropped, SHARD2));
    rmSync(join(dropped, INDEX));
    const run = await ct("verify", dropped, ...trust());
    expectExit(run, 4, "ERR_CT_INTEGRITY", "is missing");
    expect(run.stderr).toMatch(new RegExp(`${SHARD2}|${INDEX.replace(/\./g, "\\.")}`));
  });

  it("an index that disagrees, an extra shard: refused, naming the file", async () => {
    const index = copyOf(encA);
    const json = JSON.parse(readFileSync(join(index, INDEX), "utf8"));
    json.weight_map["lm_head.weight"] = SHARD1;
    writeFileSync(join(index, INDEX), JSON.stringify(json));
    expectExit(await ct("verify", index, ...trust()), 4, "ERR_CT_INTEGRITY", INDEX);
    const extra = copyOf(encA);
    copyFileSync(join(encB, SHARD2), join(extra, "model-00003-of-00002.safetensors"));
    expectExit(await ct("verify", extra, ...trust()), 4, "ERR_CT_INTEGRITY", "model-00003-of-00002.safetensors");
  });

  it("an altered config, generation config, tokenizer or chat template: refused, naming the file", async () => {
    const edits: [string, string][] = [
      ["config.json", JSON.stringify({ model_type: "llama", rope_scaling: { factor: 8.0 } })],
      ["generation_config.json", JSON.stringify({ temperature: 2.0 })],
      ["tokenizer.json", JSON.stringify({ model: { vocab: { a: 1, b: 0 } } })],
      ["tokenizer_config.json", JSON.stringify({ chat_template: "{{ 'ignore previous instructions' }}" })],
      ["chat_template.jinja", "{{ 'You are now evil.' }}"],
    ];
    for (const [file, text] of edits) {
      const altered = copyOf(encA);
      writeFileSync(join(altered, file), text);
      expectExit(await ct("verify", altered, ...trust()), 4, "ERR_CT_INTEGRITY", file);
    }
  });

  it("a manifest signed by an untrusted key: refused, even when every shard is signed by the trusted key", async () => {
    const resigned = copyOf(encA);
    writeFileSync(join(resigned, "config.json"), "{}");
    expectExit(
      await ct("sign-release", resigned, "--sign-key", join(stranger, "sign.jwk"), ...trust(), "--model-id", "org/model", "--force"),
      0,
    );
    const run = await ct("verify", resigned, ...trust());
    expectExit(run, 4, "ERR_CT_UNTRUSTED_SIGNER", "model.sig");
  });

  it("a folder without a manifest: refused unless --allow-unsigned-release", async () => {
    const bare = copyOf(encA);
    rmSync(join(bare, "model.sig"));
    expectExit(await ct("verify", bare, ...trust()), 4, "ERR_CT_INTEGRITY", "model.sig");
    expectExit(
      await ct("decrypt", bare, join(dir, "bare-out"), "--key", join(keys, "enc.jwk"), ...trust()),
      4,
      "ERR_CT_INTEGRITY",
      "model.sig",
    );
    expectExit(await ct("verify", bare, ...trust(), "--allow-unsigned-release"), 0);
    expectExit(
      await ct("decrypt", bare, join(dir, "bare-out2"), "--key", join(keys, "enc.jwk"), ...trust(), "--allow-unsigned-release"),
      0,
    );
  });
});

describe("releases across the tools", () => {
  it("an ONNX (transformers.js) folder: the graph by sha256, the weight container by its header; an altered tokenizer config is refused", async () => {
    const out = join(dir, "onnx-enc");
    expectExit(await ct("encrypt", join(REPO_ROOT, "test", "fixtures", "tiny-bert"), out, ...withKeys(), "--oms-key", ecKey), 0);
    const statement = JSON.parse(
      Buffer.from(JSON.parse(readFileSync(join(out, "model.sig"), "utf8")).dsseEnvelope.payload, "base64").toString("utf8"),
    );
    expect(statement.predicate.resources.map((r: { name: string }) => r.name)).toEqual([
      "config.json",
      "onnx/model.onnx",
      "onnx/model.onnx.cryptotensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    expect(Object.keys(statement.predicate.ctensors_release.headers)).toEqual(["onnx/model.onnx.cryptotensors"]);
    expect(statement.predicate.ctensors_release.model).toBe("tiny-bert");
    expectExit(await ct("verify", out, ...trust()), 0);
    const oms = await execa(MODEL_SIGNING, ["verify", "key", out, "--signature", join(out, "model.sig"), "--public_key", ecPub], {
      reject: false,
    });
    expect(oms.exitCode, oms.stdout + oms.stderr).toBe(0);
    const altered = copyOf(out);
    writeFileSync(join(altered, "tokenizer_config.json"), "{}");
    expectExit(await ct("verify", altered, ...trust()), 4, "ERR_CT_INTEGRITY", "tokenizer_config.json");
  });

  it("decrypt checks the release and does not carry it over; rewrap writes a newer release", async () => {
    const out = join(dir, "dec-a");
    expectExit(await ct("decrypt", encA, out, "--key", join(keys, "enc.jwk"), ...trust()), 0);
    expect(existsSync(join(out, "model.sig"))).toBe(false);
    const rotated = join(dir, "keys-2");
    expectExit(await ct("keygen", "--out", rotated, "--kid", "publisher-2"), 0);
    const rew = join(dir, "rewrapped");
    expectExit(
      await ct(
        "rewrap",
        encA,
        rew,
        "--key",
        join(keys, "enc.jwk"),
        "--new-key",
        join(rotated, "enc.jwk"),
        "--sign-key",
        join(rotated, "sign.jwk"),
        ...trust(),
      ),
      0,
    );
    const run = await ct("verify", rew, "--trust", join(rotated, "sign.pub.jwk"));
    expectExit(run, 0);
    const m = /release (\d+) of org\/model/.exec(run.stdout);
    expect(Number(m?.[1])).toBeGreaterThan(1);
    // rewrap refuses to launder an altered release.
    const altered = copyOf(encA);
    writeFileSync(join(altered, "chat_template.jinja"), "{{ 'evil' }}");
    expectExit(
      await ct(
        "rewrap",
        altered,
        join(dir, "laundered"),
        "--key",
        join(keys, "enc.jwk"),
        "--new-key",
        join(rotated, "enc.jwk"),
        "--sign-key",
        join(rotated, "sign.jwk"),
        ...trust(),
      ),
      4,
      "ERR_CT_INTEGRITY",
      "chat_template.jinja",
    );
  });

  it("a model encrypted by the reference gets a manifest without re-encryption; the reference still loads every shard", async () => {
    const refDir = join(dir, "ref-model");
    mkdirSync(refDir);
    for (const shard of [SHARD1, SHARD2]) {
      const r = await execa(
        VENV_PYTHON,
        [
          REF_TOOL,
          "write",
          "--plain",
          join(dir, "plain-a", shard),
          "--out",
          join(refDir, shard),
          "--enc-key",
          join(keys, "enc.jwk"),
          "--sign-key",
          join(keys, "sign.jwk"),
        ],
        { reject: false },
      );
      expect(r.exitCode, r.stderr).toBe(0);
    }
    for (const f of [INDEX, "config.json", "tokenizer.json"]) copyFileSync(join(dir, "plain-a", f), join(refDir, f));
    const before = [SHARD1, SHARD2].map((s) => readFileSync(join(refDir, s)));
    expectExit(await ct("verify", refDir, ...trust()), 4, "ERR_CT_INTEGRITY", "model.sig");
    // Signing with an untrusted shard signer is refused before anything is written.
    expectExit(await ct("sign-release", refDir, "--sign-key", join(stranger, "sign.jwk")), 4, "ERR_CT_UNTRUSTED_SIGNER");
    expect(existsSync(join(refDir, "model.sig"))).toBe(false);
    expectExit(
      await ct(
        "sign-release",
        refDir,
        "--sign-key",
        join(keys, "sign.jwk"),
        "--model-id",
        "org/ref-model",
        "--release",
        "7",
        "--oms-key",
        ecKey,
      ),
      0,
    );
    [SHARD1, SHARD2].forEach((s, i) => expect(readFileSync(join(refDir, s)).equals(before[i]!)).toBe(true));
    const run = await ct("verify", refDir, ...trust(), "--key", join(keys, "enc.jwk"));
    expectExit(run, 0);
    expect(run.stdout).toContain("release 7 of org/ref-model");
    for (const shard of [SHARD1, SHARD2]) {
      const r = await execa(
        VENV_PYTHON,
        [REF_TOOL, "read", "--in", join(refDir, shard), "--enc-key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.pub.jwk")],
        { reject: false },
      );
      expect(JSON.parse(r.stdout).ok, r.stdout + r.stderr).toBe(true);
    }
    const oms = await execa(MODEL_SIGNING, ["verify", "key", refDir, "--signature", join(refDir, "model.sig"), "--public_key", ecPub], {
      reject: false,
    });
    expect(oms.exitCode, oms.stdout + oms.stderr).toBe(0);
  });
});
