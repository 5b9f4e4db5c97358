// The packages as a user gets them, outside the repository: `npm pack` of plugin/ (the whole Node side)
// and `python -m build` of python-shim/, copied to a temporary folder, installed into a fresh npm
// project and a fresh venv (no workspace links, no path back into the checkout), then used from the
// installed packages only: keygen, encrypt a tiny model folder, serve it with the native engine
// required (CTENSORS_ENGINE=native fails hard if the prebuilt addon does not load), load it from
// Python equal to the plaintext, run the README's transformers.js app, and load the same prebuilt
// addon on Node 22 (npm's `node` package).
//
// The fresh venv resolves its dependencies from the configured package indexes; torch is pinned to
// the CPU build on the command line (what a CPU-only user would pick), else pip takes the CUDA build
// and its gigabytes of libraries.

import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, VENV_PYTHON, writePlainSafetensors, type PlainTensor } from "../../plugin/test/helpers.js";

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, "plugin", "package.json"), "utf8")) as { version: string }).version;
const work = realpathSync(tmpdir()) + "/ctensors-install-" + process.pid;
const app = join(work, "app");
const venv = join(work, "venv");
const bin = join(app, "node_modules", ".bin");
/** The environment of every installed-package command: nothing from the checkout on any path. */
const env = { ...process.env, NODE_OPTIONS: "", PYTHONPATH: "", VIRTUAL_ENV: "", PATH: `${bin}:${process.env.PATH}` };

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  return execa(cmd, args, { cwd: opts.cwd ?? app, env: opts.env ?? env, extendEnv: false, timeout: opts.timeout ?? 240_000, all: true });
}

const TENSORS: PlainTensor[] = [
  {
    name: "model.embed.weight",
    dtype: "F32",
    shape: [16, 8],
    data: new Uint8Array(Float32Array.from({ length: 128 }, (_, i) => Math.sin(i) * 3).buffer),
  },
  { name: "model.norm.weight", dtype: "F32", shape: [8], data: new Uint8Array(Float32Array.from({ length: 8 }, (_, i) => i / 7).buffer) },
];

let plain: Map<string, Uint8Array>;

beforeAll(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(app, { recursive: true });
  expect(work.startsWith(REPO_ROOT)).toBe(false);
  // Build the two artifacts (npm pack runs the package's prepack: native engine, proto, tsc, web bundle).
  await Promise.all([
    execa("npm", ["pack", "--pack-destination", work], { cwd: join(REPO_ROOT, "plugin"), timeout: 240_000 }),
    execa(VENV_PYTHON, ["-m", "build", "--wheel", "--outdir", work, join(REPO_ROOT, "python-shim")], { timeout: 240_000 }),
  ]);
  const tgz = `ctensors-${VERSION}.tgz`;
  const wheel = `ctensors-${VERSION}-py3-none-any.whl`;
  expect(readdirSync(work).sort()).toEqual([tgz, wheel, "app"].sort());
  // Install both, side by side: npm from the registry (its cache), pip from the configured indexes.
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  await Promise.all([
    sh("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", `../${tgz}`, "@huggingface/transformers@^4"], {
      env: { ...env, ONNXRUNTIME_NODE_INSTALL: "skip" },
    }),
    sh("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--prefix", join(work, "node22"), "node@22"]),
    (async () => {
      await sh("python3", ["-m", "venv", venv]);
      await sh(join(venv, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", join(work, wheel), "torch==2.13.0+cpu"]);
    })(),
  ]);
  // The tiny model folder, the keys, the encrypted release: all with the installed CLI.
  mkdirSync(join(app, "my-model"));
  writeFileSync(join(app, "my-model", "config.json"), JSON.stringify({ model_type: "tiny" }));
  plain = writePlainSafetensors(join(app, "my-model", "model.safetensors"), TENSORS);
  await sh("ctensors", ["keygen", "--out", "keys", "--kid", "install-test"]);
  await sh("ctensors", ["encrypt", "my-model", "my-model-encrypted", "--key", "keys/enc.jwk", "--sign-key", "keys/sign.jwk"]);
}, 400_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("installed from the packed tarball and the wheel, outside the repository", () => {
  it("the npm install is a plain install (no link into the checkout), with the engine, the proto and one version", async () => {
    const pkgDir = join(app, "node_modules", "ctensors");
    expect(realpathSync(pkgDir).startsWith(work)).toBe(true);
    expect(existsSync(join(pkgDir, "prebuilds", "linux-x64", "node.napi.glibc.node"))).toBe(true);
    expect(readFileSync(join(pkgDir, "proto", "ctensors", "sidecar", "v1", "sidecar.proto"), "utf8")).toBe(
      readFileSync(join(REPO_ROOT, "proto", "ctensors", "sidecar", "v1", "sidecar.proto"), "utf8"),
    );
    expect((await sh("ctensors", ["--version"])).stdout.trim()).toBe(VERSION);
    const py = await sh(join(venv, "bin", "python"), ["-c", "import ctensors; print(ctensors.__version__); print(ctensors.__file__)"]);
    const [pyVersion, pyFile] = py.stdout.trim().split("\n");
    expect(pyVersion).toBe(VERSION);
    expect(pyFile!.startsWith(venv)).toBe(true);
  });

  it("serve (native engine required) + Python load_file from the fresh venv give the plaintext tensors", async () => {
    const socket = join(work, "run", "sidecar.sock");
    const serve: ResultPromise = execa("ctensors", ["serve", "--socket", socket, "--key", "keys/enc.jwk", "--trust", "keys/sign.pub.jwk"], {
      cwd: app,
      env: { ...env, CTENSORS_ENGINE: "native" },
      extendEnv: false,
      all: true,
      reject: false,
    });
    let log = "";
    serve.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    try {
      const deadline = Date.now() + 60_000;
      while (!log.includes("sidecar.started") && serve.exitCode === null && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      const started = JSON.parse(log.split("\n").find((l) => l.includes("sidecar.started")) ?? "null") as {
        engine: string;
        version: string;
      } | null;
      expect(started, log).not.toBeNull();
      expect(started!.engine).toBe("native");
      expect(started!.version).toBe(VERSION);
      const script = [
        "import hashlib, json, sys, torch, ctensors",
        "t = ctensors.load_file(sys.argv[1], socket=sys.argv[2])",
        "print(json.dumps({k: hashlib.sha256(bytes(v.contiguous().view(-1).view(torch.uint8).tolist())).hexdigest() for k, v in t.items()}))",
      ].join("\n");
      const out = await sh(join(venv, "bin", "python"), ["-c", script, join(app, "my-model-encrypted"), socket]);
      const expected = Object.fromEntries([...plain].map(([k, v]) => [k, createHash("sha256").update(v).digest("hex")]));
      expect(JSON.parse(out.stdout)).toEqual(expected);
    } finally {
      serve.kill("SIGTERM");
      await serve;
    }
    expect(log).not.toMatch(/slower JS engine/);
  });

  it("an extra that is not installed is named in one line (transformers is not in this venv)", async () => {
    const out = await execa(join(venv, "bin", "python"), ["-c", "import ctensors.transformers"], {
      cwd: app,
      env,
      extendEnv: false,
      reject: false,
    });
    expect(out.exitCode).toBe(1);
    expect(out.stderr.trim().split("\n").at(-1)).toBe(
      "ctensors._extras.MissingExtraError: ctensors.transformers needs transformers, which is not installed: pip install 'ctensors[transformers]'",
    );
  });

  it("runs the README's transformers.js app against the installed package", async () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    const code = /```js\n(\/\/ app\.mjs\n[\s\S]*?)```/.exec(readme)?.[1];
    expect(code, "the README's app.mjs block").toBeDefined();
    // The README's own commands before the app (keygen, encrypt), with the installed CLI, in a folder
    // laid out like the checkout's root for the fixture they name.
    const block = /```bash\n((?:npx ctensors [^\n]*\n)+)node app\.mjs\n```\n<!-- docs-test: file="app\.mjs" -->/.exec(readme)?.[1];
    expect(block, "the README's commands before app.mjs").toBeDefined();
    cpSync(join(REPO_ROOT, "test", "fixtures", "tiny-bert"), join(app, "test", "fixtures", "tiny-bert"), { recursive: true });
    for (const line of block!.trim().split("\n")) await sh("ctensors", line.replace(/^npx ctensors /, "").split(" "));
    writeFileSync(join(app, "app.mjs"), code!);
    const out = await sh("node", ["app.mjs"], { env: { ...env, CTENSORS_ENGINE: "native" } });
    expect(out.stdout).toMatch(/^\[ 1, \d+ \]/m);
  });

  it("the same prebuilt addon loads on Node 22 (its own OpenSSL) and decrypts; without it, one line says what to do", async () => {
    const node22 = join(work, "node22", "node_modules", ".bin", "node");
    const probe = "const m = await import('ctensors'); console.log(process.versions.node, process.versions.openssl, m.engineName());";
    const on22 = await sh(node22, ["--input-type=module", "-e", probe], { env: { ...env, CTENSORS_ENGINE: "native" } });
    expect(on22.stdout).toMatch(/^22\.\S+ 3\.\S+ native$/m);
    await sh(
      node22,
      [join(bin, "ctensors"), "decrypt", "my-model-encrypted", "plain-22", "--key", "keys/enc.jwk", "--trust", "keys/sign.pub.jwk"],
      {
        env: { ...env, CTENSORS_ENGINE: "native" },
      },
    );
    expect(new Uint8Array(readFileSync(join(app, "plain-22", "model.safetensors")))).toEqual(
      new Uint8Array(readFileSync(join(app, "my-model", "model.safetensors"))),
    );
    // No addon for this platform (node-gyp-build's override points at an empty folder): the JS engine,
    // and one line on stderr naming the build script; CTENSORS_ENGINE=native refuses instead.
    mkdirSync(join(work, "no-prebuild"), { recursive: true });
    const fallback = await sh("node", ["--input-type=module", "-e", probe], {
      env: { ...env, CTENSORS_PREBUILD: join(work, "no-prebuild") },
    });
    expect(fallback.stdout).toMatch(/ js$/m);
    const lines = fallback.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^ctensors: the native engine did not load \(.*\); using the slower JS engine\. To fix, build it for this platform with: node \S+\/node_modules\/ctensors\/native\/build\.mjs \(needs gcc\)/,
    );
  });
});
