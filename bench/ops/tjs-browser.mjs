// Child: transformers.js in a fresh headless Chromium (the demo page, demo/browser/, served on loopback by
// scripts/browser-demo.mjs; launched by the browser test's helpers), one model, plain or encrypted through the
// web build of the ctensors hook. Two page loads in one browser profile (an on-disk profile in a temporary
// directory, removed at the end: an in-memory context, as the browser test uses, did not keep a 349 MB
// Cache Storage entry for the second load):
//   first:  the browser's HTTP cache disabled (CDP Network.setCacheDisabled; the server sends no-store too)
//           and Cache Storage empty: everything comes over the network;
//   second: a new page, same profile, HTTP cache still disabled: plain finds the files in transformers.js'
//           own Cache Storage, encrypted finds the container in the hook's encrypted-container cache
//           (the first page is closed only once its cache entry exists).
// For each load: milliseconds from the navigation's start to the page's result (pipeline() then one
// inference of three short texts), and from the moment the page's scripts had arrived to the result; the
// bytes of the weights file (model.onnx_data / model.onnx.cryptotensors), of model files (onnx/*) and of all
// /hub/ files the server sent; the renderer's peak RSS (VmHWM of
// /proc/<pid>/status of the renderer process that ran the page: among the Chromium processes descended
// from this process, the `--type=renderer` one with the largest RSS when the result arrived; each load runs
// in a new page and the previous page's renderer has exited before it starts). Output: a digest of the
// embedding (float32 values) for the plain vs encrypted comparison.
// usage: node bench/ops/tjs-browser.mjs MODEL_DIR plain|encrypted KEYDIR
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDemoServer } from "../../scripts/browser-demo.mjs";
import {
  CHROMIUM,
  CONTAINER_CACHE,
  jwksOf,
  launchChromiumProfile,
  openDemo,
  waitForCached,
} from "../../test/transformersjs/browser-page.mjs";
import { args, begin, finish } from "./_common.mjs";

const [modelDir, mode, keyDir] = args;
if (!existsSync(CHROMIUM))
  throw new Error(`${CHROMIUM} is missing: run \`node scripts/setup.mjs\` as root (it installs Debian's chromium)`);
const MODEL = "bench/model";
const TIMEOUT = 600_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Pids of every process descended from `root` (from /proc/<pid>/stat's ppid). */
function descendants(root) {
  const parent = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {} // exited meanwhile
  }
  const out = [];
  const walk = (p) => {
    for (const [c, pp] of parent) if (pp === p) out.push(c), walk(c);
  };
  walk(root);
  return out;
}
const status = (pid, field) => {
  try {
    return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
};
const renderers = () =>
  descendants(process.pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("--type=renderer");
    } catch {
      return false;
    }
  });

const server = await startDemoServer({
  models: { [MODEL]: modelDir },
  jwks: { "jwks.json": jwksOf(join(keyDir, "enc.jwk"), join(keyDir, "sign.pub.jwk")) },
});
const profile = mkdtempSync(join(tmpdir(), "ctensors-bench-chromium-"));
const context = await launchChromiumProfile(profile);
const modelFile = mode === "plain" ? "onnx/model.onnx_data" : "onnx/model.onnx.cryptotensors";
const cacheName = mode === "plain" ? "transformers-cache" : CONTAINER_CACHE;
const query = `?model=${MODEL}${mode === "plain" ? "&mode=plain" : ""}`;

async function load(first) {
  const mark = server.requests.length;
  const { page, result, resultAt } = await openDemo(context, server.url + query, {
    timeout: TIMEOUT,
    beforeGoto: async (p) => {
      const cdp = await context.newCDPSession(p);
      await cdp.send("Network.enable");
      await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    },
  });
  if (result.error) throw new Error(`${mode} page failed: ${result.error.code} ${result.error.message}`);
  const renderer = renderers()
    .map((pid) => ({ pid, rss: status(pid, "VmRSS") }))
    .sort((a, b) => b.rss - a.rss)[0];
  const rendererPeakKiB = status(renderer.pid, "VmHWM");
  const scriptsAt = await page.evaluate(() =>
    Math.max(
      ...performance
        .getEntriesByType("resource")
        .filter((e) => /\/(main\.js|lib\/[^/]+\.js)$/.test(new URL(e.name).pathname))
        .map((e) => e.responseEnd),
    ),
  );
  if (first) await waitForCached(page, cacheName, modelFile, TIMEOUT);
  await page.close();
  for (let i = 0; i < 100 && existsSync(`/proc/${renderer.pid}`); i++) await sleep(100);
  const sent = server.requests.slice(mark).filter((p) => p.startsWith(`/hub/${MODEL}/resolve/`));
  const size = (p) => {
    try {
      return statSync(join(modelDir, p.replace(/^\/hub\/.+?\/resolve\/[^/]+\//, ""))).size;
    } catch {
      return 0;
    }
  };
  const sum = (ps) => ps.reduce((a, p) => a + size(p), 0);
  return {
    seconds: resultAt / 1000,
    fromScriptsSeconds: (resultAt - scriptsAt) / 1000,
    modelBytes: sum(sent.filter((p) => p.includes("/onnx/"))),
    weightsBytes: sum(sent.filter((p) => p.endsWith(modelFile))),
    hubBytes: sum(sent),
    rendererPeakKiB,
    digest: createHash("sha256")
      .update(new Uint8Array(new Float32Array(result.data).buffer))
      .digest("hex"),
    dims: result.dims,
  };
}

const probe = begin();
const firstLoad = await load(true);
const secondLoad = await load(false);
await context.close();
await server.close();
rmSync(profile, { recursive: true, force: true });
finish(probe, { seconds: firstLoad.seconds, bytes: 0, first: firstLoad, second: secondLoad });
