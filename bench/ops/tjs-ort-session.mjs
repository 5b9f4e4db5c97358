// Child: one onnxruntime-node InferenceSession of a plaintext model folder's onnx/model.onnx, created the
// way transformers.js does it in Node for a plain model (a path: onnxruntime reads the files itself) or
// the way it must for a decrypted one (the graph and its external data as buffers in memory, as the
// ctensors hook hands them over; the files are read into memory before the measured section).
// Prints the session-creation time and the RSS once the session exists (after a GC).
// usage: node bench/ops/tjs-ort-session.mjs MODEL_DIR path|buffer
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { args, begin, finish, memStatus } from "./_common.mjs";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
const [dir, mode] = args;
const ort = await import("onnxruntime-node");
const graphPath = join(dir, "onnx", "model.onnx");
let graph = mode === "buffer" ? readFileSync(graphPath) : undefined; // a Buffer is a Uint8Array
let externalData = mode === "buffer" ? [{ path: "model.onnx_data", data: readFileSync(`${graphPath}_data`) }] : undefined;
const probe = begin();
const session = await (mode === "buffer" ? ort.InferenceSession.create(graph, { externalData }) : ort.InferenceSession.create(graphPath));
const seconds = (performance.now() - probe.t0) / 1000;
graph = undefined;
externalData = undefined;
await new Promise((r) => setTimeout(r, 0)); // off the stack of the create() call, or the buffers are still reachable
gc();
await new Promise((r) => setTimeout(r, 500)); // V8 frees ArrayBuffer memory on a background thread after the GC
const after = memStatus();
finish(probe, {
  seconds,
  bytes: 0,
  rssAfterSessionKiB: after.VmRSS,
  anonAfterKiB: after.RssAnon,
  fileAfterKiB: after.RssFile,
  arrayBuffersMiB: process.memoryUsage().arrayBuffers / 2 ** 20,
  inputs: session.inputNames.length,
});
