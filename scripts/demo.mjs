#!/usr/bin/env node
// `npm run demo`: the main job on the embedded default, end to end, on a fresh machine.
//   tiny Llama (random weights, fixed seed) → keygen → encrypt the whole HF folder (v2, signed)
//   → inspect → verify → the reference implementation (PyPI cryptotensors 0.2.3) loads our files
//   → push to the embedded local Hub (`ctensors dev-hub`, a development stand-in for huggingface.co)
//   → the sidecar serves it by repo id from an empty HF cache → ctensors.transformers loads it in
//   Python (no key there) and generates → decrypt → byte-identical to the original.
// Everything runs locally: keys, Hub data and cache live in a temp dir that is deleted at the end.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const python = join(root, ".venv", "bin", "python");
const cli = join(root, "plugin", "dist", "cli", "bin.js");
const work = mkdtempSync(join(tmpdir(), "ctensors-demo-"));
const keep = process.argv.includes("--keep");

const timings = [];
const children = [];
const HUB_TOKEN = "hf_ctensors_demo_token";
const REPO = "demo/tiny-llama";
function step(title, fn) {
  process.stdout.write(`\n▶ ${title}\n`);
  const t0 = performance.now();
  const out = fn();
  const ms = performance.now() - t0;
  timings.push([title, ms]);
  return out;
}
function run(cmd, args, opts = {}) {
  const out = execFileSync(cmd, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], ...opts });
  process.stdout.write(out.replace(/^/gm, "  "));
  return out;
}
const ctensors = (...args) => run(process.execPath, [cli, ...args]);
function digests(dir) {
  const out = {};
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[p.slice(dir.length + 1)] = createHash("sha256").update(readFileSync(p)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

try {
  const model = join(work, "tiny-llama");
  const keys = join(work, "keys");
  const encrypted = join(work, "tiny-llama-encrypted");
  const decrypted = join(work, "tiny-llama-decrypted");

  step("generate a tiny Llama model (random weights, seed 0, 3 shards + index)", () =>
    run(python, [join(root, "scripts", "make_tiny_model.py"), model]),
  );
  step("ctensors keygen", () => ctensors("keygen", "--out", keys, "--kid", "demo"));
  step("ctensors encrypt (whole folder, format v2, AES-256-GCM, signed)", () =>
    ctensors("encrypt", model, encrypted, "--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")),
  );
  step("ctensors inspect (first shard)", () => ctensors("inspect", join(encrypted, "model-00001-of-00003.safetensors")));
  step("ctensors verify --key (signature + every tensor's tag)", () =>
    ctensors("verify", encrypted, "--trust", join(keys, "sign.pub.jwk"), "--key", join(keys, "enc.jwk"), "--require-encrypted"),
  );
  step("the reference implementation (PyPI cryptotensors 0.2.3) loads our encrypted shards", () => {
    const script = `
import json, sys, glob, torch, cryptotensors
from safetensors.torch import load_file
enc, pub, encdir, plaindir = sys.argv[1:5]
cfg = {"enc_key": json.load(open(enc)), "sign_key": json.load(open(pub))}
n = 0
for path in sorted(glob.glob(encdir + "/*.safetensors")):
    plain = load_file(path.replace(encdir, plaindir))
    with cryptotensors.safe_open(path, framework="pt", config=cfg) as f:
        for name in f.keys():
            assert torch.equal(f.get_tensor(name), plain[name]), name
            n += 1
print(f"reference decrypted {n} tensors, all equal to the original")
`;
    run(python, ["-c", script, join(keys, "enc.jwk"), join(keys, "sign.pub.jwk"), encrypted, model]);
  });
  const hubEnv = {
    ...process.env,
    HF_ENDPOINT: "",
    HF_TOKEN: HUB_TOKEN,
    HF_HOME: join(work, "hf-home"),
    HF_HUB_CACHE: join(work, "hf-cache"),
  };
  step("ctensors dev-hub (the embedded local Hub: a development server, not huggingface.co)", () => {
    const logPath = join(work, "dev-hub.log");
    const hub = spawn(process.execPath, [cli, "dev-hub", "--port", "0", "--data", join(work, "hub-data"), "--token", HUB_TOKEN], {
      stdio: ["ignore", openSync(logPath, "w"), "ignore"],
    });
    children.push(hub);
    const deadline = Date.now() + 30_000;
    while (!/http:\/\/\S+/.test(readFileSync(logPath, "utf8"))) {
      if (Date.now() > deadline || hub.exitCode !== null) throw new Error(`dev-hub did not start:\n${readFileSync(logPath, "utf8")}`);
      execFileSync("sleep", ["0.1"]);
    }
    hubEnv.HF_ENDPOINT = /http:\/\/\S+/.exec(readFileSync(logPath, "utf8"))[0];
    process.stdout.write(`  listening on ${hubEnv.HF_ENDPOINT}\n`);
  });
  step(`ctensors push → ${REPO} (refuses plaintext; writes the model card and cryptotensors.json)`, () =>
    run(process.execPath, [cli, "push", encrypted, REPO], { env: hubEnv }),
  );
  step(`ctensors serve (sidecar, empty HF cache) + ctensors.transformers.from_pretrained("${REPO}") → generate 20 tokens`, () => {
    const socket = join(work, "run", "sidecar.sock");
    // The sidecar logs JSON lines to stderr; a file, because the sync steps block this event loop.
    const logPath = join(work, "sidecar.log");
    const logFd = openSync(logPath, "w");
    const sidecar = spawn(
      process.execPath,
      [cli, "serve", "--socket", socket, "--key", join(keys, "enc.jwk"), "--trust", join(keys, "sign.pub.jwk"), "--require-encrypted"],
      { stdio: ["ignore", "ignore", logFd], env: hubEnv },
    );
    children.push(sidecar);
    const log = () => readFileSync(logPath, "utf8");
    try {
      const deadline = Date.now() + 30_000;
      while (!existsSync(`${socket}.token`)) {
        if (Date.now() > deadline || sidecar.exitCode !== null) throw new Error(`sidecar did not start:\n${log()}`);
        execFileSync("sleep", ["0.1"]);
      }
      run(python, [join(root, "scripts", "demo_generate.py"), REPO, model, "--socket", socket]);
      const snapshot = log()
        .split("\n")
        .find((l) => l.includes('"hub.snapshot"'));
      if (snapshot) process.stdout.write(`  sidecar log: ${snapshot}\n`);
      const cached = digests(join(work, "hf-cache"));
      const plain = new Set(Object.values(digests(model)));
      const leaked = Object.entries(cached).filter(([p, d]) => p.endsWith(".safetensors") && plain.has(d));
      if (leaked.length) throw new Error(`plaintext shards in the HF cache: ${leaked.map(([p]) => p).join(", ")}`);
      process.stdout.write(
        `  HF cache: ${Object.keys(cached).filter((p) => p.includes("/blobs/")).length} blobs, every shard encrypted at rest\n`,
      );
    } finally {
      sidecar.kill("SIGTERM");
    }
  });
  step("ctensors decrypt", () =>
    ctensors("decrypt", encrypted, decrypted, "--key", join(keys, "enc.jwk"), "--trust", join(keys, "sign.pub.jwk")),
  );
  step("compare decrypted folder with the original", () => {
    const a = digests(model);
    const b = digests(decrypted);
    const same = Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);
    if (!same) throw new Error("decrypted folder differs from the original");
    const bytes = Object.keys(a).reduce((s, k) => s + statSync(join(model, k)).size, 0);
    process.stdout.write(`  ${Object.keys(a).length} files, ${bytes} bytes: byte-identical\n`);
  });
  process.stdout.write("\nDemo complete. Timings:\n");
  for (const [t, ms] of timings) process.stdout.write(`  ${ms.toFixed(0).padStart(6)} ms  ${t}\n`);
  if (keep) process.stdout.write(`\nfiles kept in ${work}\n`);
} finally {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  if (!keep) rmSync(work, { recursive: true, force: true });
}
