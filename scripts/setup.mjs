#!/usr/bin/env node
// Installs everything the tests and the demo need, idempotently:
//  1. npm packages from package-lock.json (npm ci), skipped when node_modules matches the lock;
//  2. the Python environment at .venv/ from python-requirements.txt, skipped when its stamp matches;
//  3. Debian's `chromium` for the browser test (apt-get, as root), skipped when /usr/bin/chromium exists.
// Uses only Node built-ins, so it runs on a fresh clone before any dependency exists.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.argv.includes("--quiet");
const log = (msg) => { if (!quiet) process.stderr.write(`[setup] ${msg}\n`); };

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
  log(`WARNING: ${chromiumPath} is missing and cannot be installed here (needs root and apt-get): ` +
    "install Debian's `chromium` (or set CTENSORS_CHROMIUM); test/transformersjs/browser.test.ts will fail until then");
}
