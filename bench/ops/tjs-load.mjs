// Child: one transformers.js `pipeline("feature-extraction")` load of a model folder, plain or through the
// ctensors hook (installed before the measured section), then one inference. Prints the load time; the
// process's RSS once the session exists: at once, once V8 has freed the buffers transformers.js was
// handed without anyone asking (polled without a GC for up to 20 s: V8's own idle GC), and after a
// forced GC; what the hook still holds; and a digest of the output.
// usage: node bench/ops/tjs-load.mjs MODELS_ROOT MODEL plain|encrypted KEYDIR
import { createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { args, begin, finish, memStatus } from "./_common.mjs";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const arrayBuffersMiB = () => process.memoryUsage().arrayBuffers / 2 ** 20;
const [root, model, mode, keyDir] = args;
const { env, pipeline } = await import("@huggingface/transformers");
env.allowLocalModels = true;
env.allowRemoteModels = false;
env.localModelPath = root.endsWith("/") ? root : `${root}/`;
env.useFSCache = false;
let hook;
if (mode === "encrypted") {
  const { installCryptoTensors } = await import("ctensors/transformers");
  hook = await installCryptoTensors(env, { key: `${keyDir}/enc.jwk`, trust: `${keyDir}/sign.pub.jwk` });
}
const probe = begin();
const extractor = await pipeline("feature-extraction", model, { dtype: "fp32" });
const loadSeconds = (performance.now() - probe.t0) / 1000;
const rssAtOnceKiB = memStatus().VmRSS;
const arrayBuffersAtOnceMiB = arrayBuffersMiB();
const t0 = performance.now();
while (arrayBuffersMiB() > 1 && performance.now() - t0 < 20_000) await sleep(100);
const idle = { seconds: arrayBuffersMiB() > 1 ? null : (performance.now() - t0) / 1000, rssKiB: memStatus().VmRSS };
await sleep(0);
gc();
await sleep(500); // V8 frees ArrayBuffer memory on a background thread after the GC
const rssAfterSessionKiB = memStatus().VmRSS;
const out = await extractor(["Hello secret world!", "the cat sat on the mat"], { pooling: "mean", normalize: false });
const digest = createHash("sha256")
  .update(new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength))
  .digest("hex");
finish(probe, {
  seconds: loadSeconds,
  bytes: 0,
  rssAtOnceKiB,
  arrayBuffersAtOnceMiB,
  idle,
  rssAfterSessionKiB,
  arrayBuffersAfterGcMiB: arrayBuffersMiB(),
  held: hook?.heldBytes ?? null,
  digest,
});
