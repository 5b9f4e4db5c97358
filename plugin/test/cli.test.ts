// The `ctensors` CLI as a user runs it: `node plugin/dist/cli/bin.js …` in a child process with stdin closed
// and stdout/stderr piped (so stderr is not a TTY). Needs `npm run build` first.
// Every stdout/stderr captured here is checked at the end for key material from the generated JWK files.

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, cpSync } from "node:fs";
import { join, relative } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, REPO_ROOT, sampleTensors, tempDir, writePlainSafetensors, type PlainTensor } from "./helpers.js";

const dir = tempDir("ctensors-cli-");

interface Run {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}
const captured: Run[] = [];

/** The environment of every run: the caller's, minus anything that would change key lookup or policy evaluation. */
function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ["CTENSORS_REGO_PYTHON", "CRYPTOTENSOR_KEYS", "CTENSORS_KEY_TOKEN", "FORCE_COLOR"]) delete env[k];
  return { ...env, ...extra };
}

/** Runs `ctensors ARGS` from the repository root with stdin closed. */
async function ct(args: string[], options: { env?: Record<string, string> } = {}): Promise<Run> {
  const r = await execa("node", [CLI, ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    reject: false,
    extendEnv: false,
    env: baseEnv(options.env),
    timeout: 60_000,
    stripFinalNewline: false,
  });
  const run: Run = { args, code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  captured.push(run);
  return run;
}

/** Asserts the exit code, showing the output when it differs. */
function expectExit(run: Run, code: number, errorCode?: string): void {
  expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code });
  if (errorCode) expect(run.stderr).toContain(`[${errorCode}]`);
}

function filesUnder(root: string): string[] {
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

/** A fresh, empty directory to write one output into. */
let outCounter = 0;
function emptyDir(label: string): string {
  const d = join(dir, `${label}-${++outCounter}`);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Nothing at all was left behind in `d` (no output, no hidden .partial temp file). */
function expectEmpty(d: string): void {
  expect(readdirSync(d)).toEqual([]);
}

function dataSection(bytes: Uint8Array): Uint8Array {
  const n = Number(Buffer.from(bytes).readBigUint64LE(0));
  return bytes.subarray(8 + n);
}

function jsonOf(run: Run): any {
  return JSON.parse(run.stdout);
}

// Keys: A (kid "model-key"), A2 (same kid, different bytes), B (another kid).
const keysA = join(dir, "keys-a");
const keysA2 = join(dir, "keys-a2");
const keysB = join(dir, "keys-b");
const enc = (d: string) => join(d, "enc.jwk");
const sign = (d: string) => join(d, "sign.jwk");
const pub = (d: string) => join(d, "sign.pub.jwk");

const plainPath = join(dir, "plain.safetensors");
let plainBytes: Uint8Array;
const encPath = join(dir, "model.ct.safetensors");

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  expectExit(await ct(["keygen", "--out", keysA, "--kid", "model-key"]), 0);
  expectExit(await ct(["keygen", "--out", keysA2, "--kid", "model-key"]), 0);
  expectExit(await ct(["keygen", "--out", keysB, "--kid", "other-key"]), 0);
  writePlainSafetensors(plainPath, sampleTensors());
  plainBytes = new Uint8Array(readFileSync(plainPath));
  expectExit(await ct(["encrypt", plainPath, encPath, "--key", enc(keysA), "--sign-key", sign(keysA), "--chunk-size", "256"]), 0);
});

const decryptArgs = (input: string, output: string, keyDir = keysA, trustDir = keysA) => [
  "decrypt",
  input,
  output,
  "--key",
  enc(keyDir),
  "--trust",
  pub(trustDir),
];

describe("keygen", () => {
  it("writes enc.jwk, sign.jwk, sign.pub.jwk with mode 0600 in a 0700 directory (reference spelling)", async () => {
    const out = join(dir, "kg", "nested");
    const run = await ct(["keygen", "--out", out, "--kid", "k1"]);
    expectExit(run, 0);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(readdirSync(out).sort()).toEqual(["enc.jwk", "sign.jwk", "sign.pub.jwk"]);
    for (const f of ["enc.jwk", "sign.jwk", "sign.pub.jwk"]) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
    const e = JSON.parse(readFileSync(join(out, "enc.jwk"), "utf8"));
    const s = JSON.parse(readFileSync(join(out, "sign.jwk"), "utf8"));
    const p = JSON.parse(readFileSync(join(out, "sign.pub.jwk"), "utf8"));
    expect(e).toMatchObject({ kty: "oct", alg: "aes256gcm", kid: "k1" });
    expect(e.k).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(s).toMatchObject({ kty: "okp", alg: "ed25519", kid: "k1" });
    expect(s.d).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(p).toEqual({ kty: "okp", alg: "ed25519", x: s.x, kid: "k1" });
  });

  it("refuses to overwrite existing keys without --force (exit 2), overwrites with it", async () => {
    const out = join(dir, "kg-force");
    expectExit(await ct(["keygen", "--out", out]), 0);
    const before = ["enc.jwk", "sign.jwk", "sign.pub.jwk"].map((f) => readFileSync(join(out, f), "utf8"));
    const refused = await ct(["keygen", "--out", out]);
    expectExit(refused, 2);
    expect(refused.stderr).toContain("--force");
    expect(["enc.jwk", "sign.jwk", "sign.pub.jwk"].map((f) => readFileSync(join(out, f), "utf8"))).toEqual(before);
    expectExit(await ct(["keygen", "--out", out, "--force"]), 0);
    const after = ["enc.jwk", "sign.jwk", "sign.pub.jwk"].map((f) => readFileSync(join(out, f), "utf8"));
    for (let i = 0; i < 3; i++) expect(after[i]).not.toBe(before[i]);
    for (const f of ["enc.jwk", "sign.jwk", "sign.pub.jwk"]) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
  });

  it("--jwk-style jose writes base64url values and OKP/Ed25519/EdDSA, and those keys work", async () => {
    const out = join(dir, "kg-jose");
    expectExit(await ct(["keygen", "--out", out, "--jwk-style", "jose", "--kid", "jose-1"]), 0);
    const e = JSON.parse(readFileSync(enc(out), "utf8"));
    const s = JSON.parse(readFileSync(sign(out), "utf8"));
    const p = JSON.parse(readFileSync(pub(out), "utf8"));
    expect(e).toMatchObject({ kty: "oct", alg: "A256GCM", kid: "jose-1" });
    expect(e.k).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", kid: "jose-1" });
    expect(s.d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.x).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(p).toEqual({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", x: s.x, kid: "jose-1" });

    const ct1 = join(dir, "jose.ct.safetensors");
    const back = join(emptyDir("jose"), "back.safetensors");
    expectExit(await ct(["encrypt", plainPath, ct1, "--key", enc(out), "--sign-key", sign(out)]), 0);
    const info = jsonOf(await ct(["inspect", ct1, "--json"]));
    expect(info).toMatchObject({ encrypted: true, algorithm: "aes256gcm", encKey: { kid: "jose-1" }, signer: { kid: "jose-1" } });
    expectExit(await ct(decryptArgs(ct1, back, out, out)), 0);
    expect(Buffer.from(readFileSync(back))).toEqual(Buffer.from(plainBytes));
  });

  it("without --out is a usage error (exit 2)", async () => {
    expectExit(await ct(["keygen"]), 2);
  });
});

describe("single file: encrypt → inspect → verify → decrypt", () => {
  it("encrypt wrote a v2 file and printed nothing on stderr (no progress bar when stderr is not a TTY)", async () => {
    const out = emptyDir("enc");
    const target = join(out, "m.safetensors");
    const run = await ct(["encrypt", plainPath, target, "--key", enc(keysA), "--sign-key", sign(keysA), "--chunk-size", "256"]);
    expectExit(run, 0);
    expect(run.stderr).toBe("");
    expect(run.stdout).toContain("encrypted 9/9 tensors");
    expect(readdirSync(out)).toEqual(["m.safetensors"]);
    expect(Buffer.from(readFileSync(target))).not.toEqual(Buffer.from(plainBytes));
  });

  it("inspect (text) shows version, chunking, algorithm, kids, policy and encrypted tensors", async () => {
    const run = await ct(["inspect", encPath]);
    expectExit(run, 0);
    expect(run.stdout).toContain("CryptoTensors v2, chunked (256 bytes), aes256gcm");
    expect(run.stdout).toContain("master key: kid model-key");
    expect(run.stdout).toContain("kid model-key");
    expect(run.stdout).toContain("policy: default");
    expect(run.stdout).toContain("tensors: 9/9 encrypted");
    expect(run.stdout).toMatch(/^ +E model\.norm\.weight F32\[48\] 192 B$/m);
  });

  it("inspect --json describes the file", async () => {
    const run = await ct(["inspect", encPath, "--json"]);
    expectExit(run, 0);
    const info = jsonOf(run);
    expect(info).toMatchObject({
      encrypted: true,
      formatVersion: "2",
      chunkBytes: 256,
      algorithm: "aes256gcm",
      encKey: { kid: "model-key", jku: null },
      signer: { kid: "model-key", jku: null },
      policy: { default: true },
      metadata: { format: "pt" },
    });
    expect(info.tensors.map((t: any) => t.name).sort()).toEqual(
      sampleTensors()
        .map((t) => t.name)
        .sort(),
    );
    expect(info.tensors.every((t: any) => t.encrypted === true)).toBe(true);
  });

  it("verify with only the trusted key checks the header and says so", async () => {
    const run = await ct(["verify", encPath, "--trust", pub(keysA)]);
    expectExit(run, 0);
    expect(run.stdout).toContain(
      "OK, signed by trusted key model-key; 0 tensor(s) authenticated (pass --key to check encrypted tensors' tags)",
    );
  });

  it("verify with the trusted key and the master key authenticates every tensor", async () => {
    const run = await ct(["verify", encPath, "--trust", pub(keysA), "--key", enc(keysA)]);
    expectExit(run, 0);
    expect(run.stdout).toContain("OK, signed by trusted key model-key; 9 tensor(s) authenticated");
    expect(run.stderr).toBe("");
    const json = jsonOf(await ct(["verify", encPath, "--trust", pub(keysA), "--key", enc(keysA), "--json"]));
    expect(json).toMatchObject({ ok: true, encrypted: true, signer: "model-key", tensorsChecked: 9, unauthenticated: [] });
  });

  it("decrypt restores the input byte for byte (mode 0600, nothing on stderr)", async () => {
    const out = emptyDir("dec");
    const target = join(out, "back.safetensors");
    const run = await ct(decryptArgs(encPath, target));
    expectExit(run, 0);
    expect(run.stderr).toBe("");
    expect(Buffer.from(readFileSync(target))).toEqual(Buffer.from(plainBytes));
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(readdirSync(out)).toEqual(["back.safetensors"]);
    expect((await ct(["inspect", target])).stdout).toContain("plain safetensors (not encrypted, not signed)");
  });

  it("a larger file (several MiB) still prints no progress output on a non-TTY stderr", async () => {
    const big = join(dir, "big.safetensors");
    writePlainSafetensors(big, [{ name: "w", dtype: "F32", shape: [1024, 1536] }]);
    const out = emptyDir("big");
    const e = await ct(["encrypt", big, join(out, "big.ct"), "--key", enc(keysA), "--sign-key", sign(keysA), "--chunk-size", "65536"]);
    expectExit(e, 0);
    expect(e.stderr).toBe("");
    const d = await ct(decryptArgs(join(out, "big.ct"), join(out, "big.back")));
    expectExit(d, 0);
    expect(d.stderr).toBe("");
    // Buffer.equals: a deep toEqual over megabytes is very slow.
    expect(readFileSync(join(out, "big.back")).equals(readFileSync(big))).toBe(true);
  });
});

describe("model folder", () => {
  const model = join(dir, "model");
  const shard1: PlainTensor[] = [
    { name: "model.embed_tokens.weight", dtype: "BF16", shape: [32, 16] },
    { name: "model.layers.0.self_attn.q_proj.weight", dtype: "F32", shape: [16, 16] },
  ];
  const shard2: PlainTensor[] = [
    { name: "model.layers.1.self_attn.q_proj.weight", dtype: "F32", shape: [16, 16] },
    { name: "model.norm.weight", dtype: "F32", shape: [16] },
    { name: "lm_head.weight", dtype: "F16", shape: [32, 16] },
  ];
  const s1 = "model-00001-of-00002.safetensors";
  const s2 = "model-00002-of-00002.safetensors";

  function writeModel(root: string, indexMap?: Record<string, string>): void {
    mkdirSync(join(root, "original"), { recursive: true });
    writePlainSafetensors(join(root, s1), shard1);
    writePlainSafetensors(join(root, s2), shard2);
    const weightMap = indexMap ?? Object.fromEntries([...shard1.map((t) => [t.name, s1]), ...shard2.map((t) => [t.name, s2])]);
    writeFileSync(
      join(root, "model.safetensors.index.json"),
      `${JSON.stringify({ metadata: { total_size: 12345 }, weight_map: weightMap }, null, 2)}\n`,
    );
    writeFileSync(join(root, "config.json"), `{"architectures": ["LlamaForCausalLM"], "hidden_size": 16}\n`);
    writeFileSync(join(root, "tokenizer.json"), `{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}}\n`);
    writeFileSync(join(root, "original", "params.json"), `{"dim": 16}\n`);
    writeFileSync(join(root, "original", "README.md"), "# notes\n\u00e9\u00e8 binary-ish \u0000 bytes\n");
    writePlainSafetensors(join(root, "original", "consolidated.safetensors"), [
      { name: "tok_embeddings.weight", dtype: "F32", shape: [4, 4] },
    ]);
  }

  const encOut = join(dir, "model-enc");
  const decOut = join(dir, "model-dec");
  const safetensorsFiles = [s1, s2, join("original", "consolidated.safetensors")];

  beforeAll(() => writeModel(model));

  it("encrypt: every safetensors file is encrypted, every other file copied byte-identical", async () => {
    const run = await ct(["encrypt", model, encOut, "--key", enc(keysA), "--sign-key", sign(keysA)]);
    expectExit(run, 0);
    expect(run.stderr).toBe("");
    expect(run.stdout).toContain("in 3 file(s)");
    // …plus the signed release manifest binding them (plugin/test/release.test.ts).
    expect(filesUnder(encOut)).toEqual([...filesUnder(model), "model.sig"].sort());
    for (const rel of filesUnder(model)) {
      const a = Buffer.from(readFileSync(join(model, rel)));
      const b = Buffer.from(readFileSync(join(encOut, rel)));
      if (safetensorsFiles.includes(rel)) {
        expect(b, rel).not.toEqual(a);
        const info = jsonOf(await ct(["inspect", join(encOut, rel), "--json"]));
        expect(info.encrypted, rel).toBe(true);
        expect(info.tensors.length).toBeGreaterThan(0);
        expect(
          info.tensors.every((t: any) => t.encrypted),
          rel,
        ).toBe(true);
      } else if (rel === "config.json") {
        // One entry inserted after the opening brace: plain transformers refuses the folder
        // (model/transformers-config.ts); decrypt removes it again, byte for byte (below).
        expect(b.toString("utf8")).toMatch(/^\{"transformers_weights": "CryptoTensors-encrypted weights\. [^"]*", /);
        expect(b.toString("utf8").replace(/^\{"transformers_weights": "[^"]*", /, "{")).toBe(a.toString("utf8"));
      } else {
        expect(b, rel).toEqual(a);
      }
    }
  });

  it("inspect and verify accept the folder", async () => {
    const info = jsonOf(await ct(["inspect", encOut, "--json"]));
    expect(Array.isArray(info)).toBe(true);
    expect(info).toHaveLength(3);
    expect(info.every((r: any) => r.encrypted)).toBe(true);
    const v = await ct(["verify", encOut, "--trust", pub(keysA), "--key", enc(keysA)]);
    expectExit(v, 0);
    expect(v.stdout.match(/: OK, signed by trusted key model-key/g)).toHaveLength(3);
  });

  it("decrypt restores every file of the folder byte for byte", async () => {
    const run = await ct(decryptArgs(encOut, decOut));
    expectExit(run, 0);
    expect(run.stderr).toBe("");
    expect(filesUnder(decOut)).toEqual(filesUnder(model));
    for (const rel of filesUnder(model))
      expect(Buffer.from(readFileSync(join(decOut, rel))), rel).toEqual(Buffer.from(readFileSync(join(model, rel))));
  });

  it("a shard index that does not match its shards → exit 3, nothing written", async () => {
    const bad = join(dir, "model-bad-index");
    const map = Object.fromEntries([...shard1.map((t) => [t.name, s1]), ...shard2.map((t) => [t.name, s2])]);
    map["model.layers.2.mlp.up_proj.weight"] = s2; // not in any shard
    writeModel(bad, map);
    const out = join(dir, "model-bad-index-enc");
    const run = await ct(["encrypt", bad, out, "--key", enc(keysA), "--sign-key", sign(keysA)]);
    expectExit(run, 3, "ERR_CT_FORMAT");
    expect(run.stderr).toContain("model.safetensors.index.json");
    expect(existsSync(out)).toBe(false);

    const moved = join(dir, "model-moved-tensor");
    const map2 = Object.fromEntries([...shard1.map((t) => [t.name, s1]), ...shard2.map((t) => [t.name, s2])]);
    map2["model.norm.weight"] = s1; // listed in the wrong shard
    writeModel(moved, map2);
    const out2 = join(dir, "model-moved-tensor-enc");
    expectExit(await ct(["encrypt", moved, out2, "--key", enc(keysA), "--sign-key", sign(keysA)]), 3, "ERR_CT_FORMAT");
    expect(existsSync(out2)).toBe(false);
  });

  it("decrypting a folder whose second shard was tampered with → exit 5 and no decrypted file is left behind", async () => {
    const tampered = join(dir, "model-enc-tampered");
    cpSync(encOut, tampered, { recursive: true });
    const shardPath = join(tampered, s2);
    const bytes = new Uint8Array(readFileSync(shardPath));
    bytes[bytes.length - 1]! ^= 0x01;
    writeFileSync(shardPath, bytes);
    const out = join(dir, "model-dec-tampered");
    const run = await ct(decryptArgs(tampered, out));
    expectExit(run, 5, "ERR_CT_DECRYPTION_FAILED");
    expect(existsSync(out) ? filesUnder(out) : [], "the first shard's plaintext must not stay behind").toEqual([]);
    expect(existsSync(out)).toBe(false);
    // Into an existing empty folder: it stays empty.
    const existing = emptyDir("model-dec-existing");
    expectExit(await ct(decryptArgs(tampered, existing)), 5, "ERR_CT_DECRYPTION_FAILED");
    expectEmpty(existing);
  });
});

describe("partial encryption and format versions", () => {
  it("--tensors 'model.layers.*' encrypts only those; inspect --json says which; round trip is exact", async () => {
    const out = emptyDir("partial");
    const target = join(out, "p.safetensors");
    const run = await ct(["encrypt", plainPath, target, "--key", enc(keysA), "--sign-key", sign(keysA), "--tensors", "model.layers.*"]);
    expectExit(run, 0);
    expect(run.stdout).toContain("encrypted 2/9 tensors");
    const info = jsonOf(await ct(["inspect", target, "--json"]));
    const byName = Object.fromEntries(info.tensors.map((t: any) => [t.name, t]));
    for (const t of sampleTensors()) {
      const layer = t.name.startsWith("model.layers.");
      expect(byName[t.name], t.name).toMatchObject({ encrypted: layer, digest: !layer });
    }
    const text = await ct(["inspect", target]);
    expect(text.stdout).toContain("tensors: 2/9 encrypted, 7 plaintext (all covered by signed digests)");
    const back = join(out, "back.safetensors");
    expectExit(await ct(decryptArgs(target, back)), 0);
    expect(Buffer.from(readFileSync(back))).toEqual(Buffer.from(plainBytes));
    const strict = emptyDir("strict");
    expectExit(await ct([...decryptArgs(target, join(strict, "x.safetensors")), "--require-encrypted"]), 4, "ERR_CT_NOT_CONFIDENTIAL");
    expectEmpty(strict);
  });

  it("a --tensors pattern that matches nothing → exit 2 with a message, nothing written", async () => {
    const out = emptyDir("nomatch");
    const run = await ct([
      "encrypt",
      plainPath,
      join(out, "x.safetensors"),
      "--key",
      enc(keysA),
      "--sign-key",
      sign(keysA),
      "--tensors",
      "model.layer.*",
    ]);
    expectExit(run, 2);
    expect(run.stderr).toContain('"model.layer.*" matches no tensor');
    expectEmpty(out);
  });

  it("--format-version 1 writes a monolithic v1 file that decrypts exactly", async () => {
    const out = emptyDir("v1");
    const target = join(out, "v1.safetensors");
    expectExit(await ct(["encrypt", plainPath, target, "--key", enc(keysA), "--sign-key", sign(keysA), "--format-version", "1"]), 0);
    const info = jsonOf(await ct(["inspect", target, "--json"]));
    expect(info).toMatchObject({ encrypted: true, formatVersion: "1", chunkBytes: null });
    expect((await ct(["inspect", target])).stdout).toContain("CryptoTensors v1, monolithic");
    const back = join(out, "back.safetensors");
    expectExit(await ct(decryptArgs(target, back)), 0);
    expect(Buffer.from(readFileSync(back))).toEqual(Buffer.from(plainBytes));
  });

  it("bad --format-version / --chunk-size combinations are usage errors (exit 2)", async () => {
    const out = emptyDir("badver");
    const base = ["encrypt", plainPath, join(out, "x.safetensors"), "--key", enc(keysA), "--sign-key", sign(keysA)];
    expectExit(await ct([...base, "--format-version", "3"]), 2);
    expectExit(await ct([...base, "--format-version", "1", "--chunk-size", "100"]), 2);
    expectExit(await ct([...base, "--chunk-size", "0"]), 2);
    expectEmpty(out);
  });
});

describe("exit codes; no output on failure", () => {
  let tamperedHeader: string;
  let tamperedData: string;
  beforeAll(() => {
    const bytes = new Uint8Array(readFileSync(encPath));
    const text = Buffer.from(bytes).toString("latin1");
    const at = text.indexOf('"format":"pt"');
    expect(at).toBeGreaterThan(0);
    const h = new Uint8Array(bytes);
    h[at + '"format":"p'.length] = "u".charCodeAt(0);
    tamperedHeader = join(dir, "tampered-header.safetensors");
    writeFileSync(tamperedHeader, h);
    const d = new Uint8Array(bytes);
    d[d.length - 1]! ^= 0x80;
    tamperedData = join(dir, "tampered-data.safetensors");
    writeFileSync(tamperedData, d);
  });

  it("wrong master key (same kid) → 5", async () => {
    const out = emptyDir("wrongkey");
    expectExit(await ct(decryptArgs(encPath, join(out, "x.safetensors"), keysA2, keysA)), 5, "ERR_CT_DECRYPTION_FAILED");
    expectEmpty(out);
    expectExit(await ct(["verify", encPath, "--trust", pub(keysA), "--key", enc(keysA2)]), 5, "ERR_CT_DECRYPTION_FAILED");
  });

  it("master key with another kid → 6", async () => {
    const out = emptyDir("otherkid");
    expectExit(await ct(decryptArgs(encPath, join(out, "x.safetensors"), keysB, keysA)), 6, "ERR_CT_KEY_NOT_FOUND");
    expectEmpty(out);
  });

  it("tampered header → 4 (decrypt and verify)", async () => {
    const out = emptyDir("tamper-h");
    expectExit(await ct(decryptArgs(tamperedHeader, join(out, "x.safetensors"))), 4, "ERR_CT_SIGNATURE_INVALID");
    expectEmpty(out);
    expectExit(await ct(["verify", tamperedHeader, "--trust", pub(keysA)]), 4, "ERR_CT_SIGNATURE_INVALID");
  });

  it("tampered ciphertext (last byte) → 5, and the half-written output is removed", async () => {
    const out = emptyDir("tamper-d");
    const run = await ct(decryptArgs(tamperedData, join(out, "x.safetensors")));
    expectExit(run, 5, "ERR_CT_DECRYPTION_FAILED");
    expectEmpty(out);
    expectExit(await ct(["verify", tamperedData, "--trust", pub(keysA), "--key", enc(keysA)]), 5, "ERR_CT_DECRYPTION_FAILED");
    // Without --key, verify checks only the header (which is intact).
    expectExit(await ct(["verify", tamperedData, "--trust", pub(keysA)]), 0);
  });

  it("missing key file → 6; malformed key file → 6", async () => {
    const out = emptyDir("nokey");
    expectExit(
      await ct(["decrypt", encPath, join(out, "x.safetensors"), "--key", join(dir, "no-such.jwk"), "--trust", pub(keysA)]),
      6,
      "ERR_CT_KEY_NOT_FOUND",
    );
    expectExit(
      await ct(["decrypt", encPath, join(out, "x.safetensors"), "--key", enc(keysA), "--trust", join(dir, "no-such.pub.jwk")]),
      6,
      "ERR_CT_KEY_NOT_FOUND",
    );
    const junk = join(dir, "junk.jwk");
    writeFileSync(junk, "not json");
    expectExit(await ct(["decrypt", encPath, join(out, "x.safetensors"), "--key", junk, "--trust", pub(keysA)]), 6, "ERR_CT_KEY_INVALID");
    expectExit(
      await ct(["encrypt", plainPath, join(out, "x.safetensors"), "--key", join(dir, "no-such.jwk"), "--sign-key", sign(keysA)]),
      6,
      "ERR_CT_KEY_NOT_FOUND",
    );
    expectExit(
      await ct(["encrypt", plainPath, join(out, "x.safetensors"), "--key", enc(keysA), "--sign-key", pub(keysA)]),
      6,
      "ERR_CT_KEY_INVALID",
    );
    expectEmpty(out);
  });

  it("untrusted signer → 4; no trusted key at all → 4", async () => {
    const out = emptyDir("untrusted");
    expectExit(await ct(decryptArgs(encPath, join(out, "x.safetensors"), keysA, keysB)), 4, "ERR_CT_UNTRUSTED_SIGNER");
    expectExit(await ct(["decrypt", encPath, join(out, "x.safetensors"), "--key", enc(keysA)]), 4, "ERR_CT_UNTRUSTED_SIGNER");
    expectExit(await ct(["verify", encPath, "--trust", pub(keysB)]), 4, "ERR_CT_UNTRUSTED_SIGNER");
    // Another key claiming the trusted kid: the signature does not verify.
    expectExit(await ct(decryptArgs(encPath, join(out, "x.safetensors"), keysA, keysA2)), 4, "ERR_CT_SIGNATURE_INVALID");
    expectEmpty(out);
  });

  it("non-default policy → 7 (encrypt accepts it, decrypt and verify refuse it)", async () => {
    const rego = join(dir, "deny.rego");
    writeFileSync(rego, "package model\nallow = false");
    const jsonPolicy = join(dir, "policy.json");
    writeFileSync(jsonPolicy, JSON.stringify({ local: "package model\nallow := true" }));
    for (const policy of [rego, jsonPolicy]) {
      const target = join(dir, `policy-${relative(dir, policy)}.safetensors`);
      expectExit(await ct(["encrypt", plainPath, target, "--key", enc(keysA), "--sign-key", sign(keysA), "--policy", policy]), 0);
      expect((await ct(["inspect", target])).stdout).toContain("policy: custom");
      const out = emptyDir("policy");
      expectExit(await ct(decryptArgs(target, join(out, "x.safetensors"))), 7, "ERR_CT_POLICY_UNSUPPORTED");
      expectEmpty(out);
      expectExit(await ct(["verify", target, "--trust", pub(keysA), "--key", enc(keysA)]), 7, "ERR_CT_POLICY_UNSUPPORTED");
    }
  });

  it("missing input → 8 (ERR_CT_IO)", async () => {
    const out = emptyDir("noinput");
    const missing = join(dir, "no-such-model.safetensors");
    expectExit(await ct(decryptArgs(missing, join(out, "x.safetensors"))), 8, "ERR_CT_IO");
    expectExit(await ct(["encrypt", missing, join(out, "x.safetensors"), "--key", enc(keysA), "--sign-key", sign(keysA)]), 8, "ERR_CT_IO");
    expectExit(await ct(["inspect", missing]), 8, "ERR_CT_IO");
    expectExit(await ct(["verify", missing, "--trust", pub(keysA)]), 8, "ERR_CT_IO");
    expectEmpty(out);
  });

  it("input that is not safetensors → 3", async () => {
    const junk = join(dir, "junk.safetensors");
    writeFileSync(junk, Buffer.from("this is definitely not a safetensors file, just text"));
    const out = emptyDir("junkin");
    expectExit(await ct(decryptArgs(junk, join(out, "x.safetensors"))), 3, "ERR_CT_FORMAT");
    expectExit(await ct(["encrypt", junk, join(out, "x.safetensors"), "--key", enc(keysA), "--sign-key", sign(keysA)]), 3, "ERR_CT_FORMAT");
    expectExit(await ct(["inspect", junk]), 3, "ERR_CT_FORMAT");
    expectEmpty(out);
  });

  it("bad usage → 2", async () => {
    const out = emptyDir("usage");
    expectExit(await ct([]), 2);
    expectExit(await ct(["frobnicate"]), 2);
    expectExit(await ct(["decrypt", encPath, "--key", enc(keysA), "--trust", pub(keysA)]), 2);
    expectExit(await ct([...decryptArgs(encPath, join(out, "x.safetensors")), "--bogus"]), 2);
    expectExit(await ct(["encrypt", plainPath, join(out, "x.safetensors"), "--sign-key", sign(keysA)]), 2);
    expectExit(await ct(["decrypt", encPath, encPath, "--key", enc(keysA), "--trust", pub(keysA), "--force"]), 2);
    expectEmpty(out);
  });

  it("an existing output is refused without --force (exit 2) and replaced with it", async () => {
    const out = emptyDir("exists");
    const target = join(out, "x.safetensors");
    writeFileSync(target, "precious");
    const refused = await ct(decryptArgs(encPath, target));
    expectExit(refused, 2);
    expect(refused.stderr).toContain("--force");
    expect(readFileSync(target, "utf8")).toBe("precious");
    expectExit(await ct(["encrypt", plainPath, target, "--key", enc(keysA), "--sign-key", sign(keysA)]), 2);
    expect(readFileSync(target, "utf8")).toBe("precious");
    expectExit(await ct([...decryptArgs(encPath, target), "--force"]), 0);
    expect(Buffer.from(readFileSync(target))).toEqual(Buffer.from(plainBytes));
    expect(readdirSync(out)).toEqual(["x.safetensors"]);
    // A failing forced run leaves no temp file behind.
    expectExit(await ct([...decryptArgs(tamperedData, target), "--force"]), 5);
    expect(readdirSync(out)).toEqual(["x.safetensors"]);
  });
});

describe("key sources", () => {
  const jwk = (path: string) => JSON.parse(readFileSync(path, "utf8"));

  it("--key env: reads $CRYPTOTENSOR_KEYS (JWK set) for decrypt, encrypt and verify", async () => {
    const env = { CRYPTOTENSOR_KEYS: JSON.stringify({ keys: [jwk(enc(keysA)), jwk(sign(keysA))] }) };
    const out = emptyDir("env");
    expectExit(await ct(["decrypt", encPath, join(out, "a.safetensors"), "--key", "env:", "--trust", pub(keysA)], { env }), 0);
    expect(Buffer.from(readFileSync(join(out, "a.safetensors")))).toEqual(Buffer.from(plainBytes));
    expectExit(await ct(["encrypt", plainPath, join(out, "b.ct"), "--key", "env:", "--sign-key", "env:"], { env }), 0);
    expectExit(await ct(["verify", join(out, "b.ct"), "--trust", "env:", "--key", "env:"], { env }), 0);
    expectExit(
      await ct(["verify", join(out, "b.ct"), "--trust", pub(keysA), "--key", "env:MY_KEYS"], {
        env: { MY_KEYS: JSON.stringify(jwk(enc(keysA))) },
      }),
      0,
    );
  });

  it("--key env: without the variable → 6", async () => {
    const out = emptyDir("noenv");
    expectExit(
      await ct(["decrypt", encPath, join(out, "x.safetensors"), "--key", "env:", "--trust", pub(keysA)]),
      6,
      "ERR_CT_KEY_NOT_FOUND",
    );
    expectEmpty(out);
  });

  it("an inline JWK given for the wrong role → 6, and its secret is not echoed", async () => {
    const out = emptyDir("inline");
    const signText = readFileSync(sign(keysA), "utf8");
    const encText = readFileSync(enc(keysA), "utf8");
    const a = await ct(["encrypt", plainPath, join(out, "x.safetensors"), "--key", signText, "--sign-key", sign(keysA)]);
    expectExit(a, 6, "ERR_CT_KEY_INVALID");
    expect(a.stderr).not.toContain(jwk(sign(keysA)).d);
    const b = await ct(["encrypt", plainPath, join(out, "x.safetensors"), "--key", enc(keysA), "--sign-key", encText]);
    expectExit(b, 6, "ERR_CT_KEY_INVALID");
    expect(b.stderr).not.toContain(jwk(enc(keysA)).k);
    expectEmpty(out);
  });
});

describe("rewrap", () => {
  it("to a new master key with the same kid: the old key then fails (5), the new key works, data bytes are identical", async () => {
    const out = emptyDir("rewrap");
    const rewrapped = join(out, "r.safetensors");
    const run = await ct([
      "rewrap",
      encPath,
      rewrapped,
      "--key",
      enc(keysA),
      "--new-key",
      enc(keysA2),
      "--sign-key",
      sign(keysA),
      "--trust",
      pub(keysA),
    ]);
    expectExit(run, 0);
    expect(run.stderr).toBe("");
    const before = new Uint8Array(readFileSync(encPath));
    const after = new Uint8Array(readFileSync(rewrapped));
    expect(Buffer.from(after)).not.toEqual(Buffer.from(before));
    expect(Buffer.from(dataSection(after))).toEqual(Buffer.from(dataSection(before)));

    const fail = emptyDir("rewrap-old");
    expectExit(await ct(decryptArgs(rewrapped, join(fail, "x.safetensors"), keysA, keysA)), 5, "ERR_CT_DECRYPTION_FAILED");
    expectEmpty(fail);
    const back = join(out, "back.safetensors");
    expectExit(await ct(decryptArgs(rewrapped, back, keysA2, keysA)), 0);
    expect(Buffer.from(readFileSync(back))).toEqual(Buffer.from(plainBytes));
    // The original still opens with the old key only.
    expectExit(await ct(["verify", encPath, "--trust", pub(keysA), "--key", enc(keysA2)]), 5);
  });

  it("to another key and signer: the old key is not found (6), the old signer is no longer trusted (4)", async () => {
    const out = emptyDir("rewrap-b");
    const rewrapped = join(out, "r.safetensors");
    expectExit(
      await ct([
        "rewrap",
        encPath,
        rewrapped,
        "--key",
        enc(keysA),
        "--new-key",
        enc(keysB),
        "--sign-key",
        sign(keysB),
        "--trust",
        pub(keysA),
      ]),
      0,
    );
    expectExit(await ct(["verify", rewrapped, "--trust", pub(keysA), "--key", enc(keysA)]), 4, "ERR_CT_UNTRUSTED_SIGNER");
    expectExit(await ct(["verify", rewrapped, "--trust", pub(keysB), "--key", enc(keysA)]), 6, "ERR_CT_KEY_NOT_FOUND");
    expectExit(await ct(["verify", rewrapped, "--trust", pub(keysB), "--key", enc(keysB)]), 0);
  });

  it("with the wrong current key → 5 and no output", async () => {
    const out = emptyDir("rewrap-wrong");
    expectExit(
      await ct([
        "rewrap",
        encPath,
        join(out, "r.safetensors"),
        "--key",
        enc(keysA2),
        "--new-key",
        enc(keysB),
        "--sign-key",
        sign(keysA),
        "--trust",
        pub(keysA),
      ]),
      5,
      "ERR_CT_DECRYPTION_FAILED",
    );
    expectEmpty(out);
  });
});

describe("packaging", () => {
  it("`npx ctensors --help` works from the repository root", async () => {
    // Offline: the local workspace bin must be what runs; nothing may be fetched from a registry.
    const r = await execa("npx", ["ctensors", "--help"], {
      cwd: REPO_ROOT,
      stdin: "ignore",
      reject: false,
      env: baseEnv({ npm_config_offline: "true", npm_config_yes: "false" }),
      extendEnv: false,
      timeout: 60_000,
    });
    captured.push({ args: ["npx", "ctensors", "--help"], code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) });
    expect({ code: r.exitCode, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(r.stdout).toContain("usage: ctensors <command>");
    for (const c of ["keygen", "encrypt", "decrypt", "inspect", "verify", "rewrap"]) expect(r.stdout).toContain(`  ${c} `);
  });

  it("--version prints the package version", async () => {
    const run = await ct(["--version"]);
    expectExit(run, 0);
    expect(run.stdout.trim()).toBe(JSON.parse(readFileSync(join(REPO_ROOT, "plugin", "package.json"), "utf8")).version);
  });
});

describe("key hygiene (runs last)", () => {
  it("no stdout or stderr captured in this file contains key material from any generated JWK", () => {
    const secrets: string[] = [];
    const keyFiles = filesUnder(dir)
      .filter((f) => f.endsWith(".jwk"))
      .map((f) => join(dir, f));
    expect(keyFiles.length).toBeGreaterThanOrEqual(12);
    for (const file of keyFiles) {
      let j: Record<string, unknown>;
      try {
        j = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        continue; // the deliberately malformed junk.jwk
      }
      for (const field of ["k", "d"]) {
        const v = j[field];
        if (typeof v !== "string") continue;
        const raw = Buffer.from(v, v.includes("-") || v.includes("_") || !v.endsWith("=") ? "base64url" : "base64");
        expect(raw.length).toBeGreaterThanOrEqual(16);
        secrets.push(v, raw.toString("base64"), raw.toString("base64url"), raw.toString("hex"));
      }
    }
    expect(secrets.length).toBeGreaterThan(0);
    expect(captured.length).toBeGreaterThan(50);
    const leaks: string[] = [];
    for (const run of captured) {
      for (const s of secrets) {
        if (run.stdout.includes(s) || run.stderr.includes(s)) leaks.push(`${run.args.slice(0, 3).join(" ")}: ${s.slice(0, 6)}…`);
      }
    }
    expect(leaks).toEqual([]);
  });
});
