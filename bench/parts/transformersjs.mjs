// transformers.js in Node: `pipeline("feature-extraction")` of a plaintext ONNX model against the same
// model encrypted and loaded through the ctensors hook (issue: encrypted loads as fast as plain ones).
// Two models are generated here (random weights, fixed seed, nothing downloaded): a BERT-base-sized one
// (vocabulary 30522, hidden 768, feed-forward 3072, 9 blocks: ~349 MB fp32 external data) and a
// MiniLM-sized one (hidden 384, feed-forward 1536, 6 blocks: ~89 MB). The graph is a BERT-shaped stack
// (embedding gather, per block four 768×768 projections and a feed-forward pair with residuals) written
// with the project's protobuf writer: what a load costs depends on the bytes and tensors, not on attention.
// Each load is a fresh process with a warm page cache; the outputs are compared by digest. Beside them,
// onnxruntime-node alone builds a session from the plaintext files by path (what transformers.js does for
// a plain local model) and from the same bytes as buffers (all it can do for a decrypted one, which is
// never written to a file): the floor of what the hook can reach in Node.
// In headless Chromium (bench/ops/tjs-browser.mjs: the demo page, a fresh browser per run): the first page
// load with the HTTP cache off and Cache Storage empty, then a second page load in the same on-disk profile (plain:
// transformers.js' own Cache Storage; encrypted: the hook's encrypted-container cache): time to the
// page's result, the renderer's peak RSS (VmHWM), the weight bytes sent over the network, the output digest.
// CTENSORS_BENCH_TJS=node or =browser runs only those rows (default: both).

import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, openSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../lib/context.mjs";
import { rowFromSamples } from "../lib/rows.mjs";

const wire = await import(new URL("../../plugin/dist/onnx/wire.js", import.meta.url).href);
const { lenField, serializeMessage, encodeVarint } = wire;
const utf8 = (s) => new TextEncoder().encode(s);
const varint = (no, v) => {
  const tag = encodeVarint(no * 8);
  const val = encodeVarint(v);
  const raw = new Uint8Array(tag.length + val.length);
  raw.set(tag);
  raw.set(val, tag.length);
  return { no, wire: 0, raw, value: val };
};
const str = (no, s) => lenField(no, utf8(s));
const msg = (no, fields) => lenField(no, serializeMessage(fields));

const SIZES = {
  "bert-base": { vocab: 30522, hidden: 768, ff: 3072, blocks: 9 },
  minilm: { vocab: 30522, hidden: 384, ff: 1536, blocks: 6 },
};

/** xorshift32 uniform floats in ±scale: deterministic for a seed. */
function fill(buf, seed, scale) {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < buf.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = ((x / 4294967296) * 2 - 1) * scale;
  }
}

const valueInfo = (no, name, elem, dims) =>
  msg(no, [
    str(1, name),
    msg(2, [
      msg(1, [
        varint(1, elem),
        msg(
          2,
          dims.map((d) => msg(1, [typeof d === "string" ? str(2, d) : varint(1, d)])),
        ),
      ]),
    ]),
  ]);
const node = (op, inputs, outputs, attrs = []) =>
  msg(1, [...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, outputs[0]), str(4, op), ...attrs]);

/** Writes DIR/{config.json,tokenizer*.json,onnx/model.onnx,onnx/model.onnx_data}. */
export function writeModel(dir, { vocab, hidden, ff, blocks }, seed = 1) {
  mkdirSync(join(dir, "onnx"), { recursive: true });
  const dataPath = join(dir, "onnx", "model.onnx_data");
  const fd = openSync(dataPath, "w");
  let offset = 0;
  const inits = [];
  const tensor = (name, dims, scale) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const f = new Float32Array(n);
    fill(f, seed++ * 2654435761, scale);
    writeSync(fd, new Uint8Array(f.buffer));
    inits.push(
      msg(5, [
        ...dims.map((d) => varint(1, d)),
        varint(2, 1),
        str(8, name),
        ...[
          ["location", "model.onnx_data"],
          ["offset", String(offset)],
          ["length", String(f.byteLength)],
        ].map(([k, v]) => msg(13, [str(1, k), str(2, v)])),
        varint(14, 1),
      ]),
    );
    offset += f.byteLength;
    return name;
  };
  const nodes = [];
  nodes.push(node("Gather", [tensor("embeddings.word", [vocab, hidden], 1), "input_ids"], ["h0"]));
  let x = "h0";
  for (let b = 0; b < blocks; b++) {
    let a = x;
    for (const p of ["q", "k", "v", "o"]) {
      nodes.push(node("MatMul", [a, tensor(`b${b}.${p}.weight`, [hidden, hidden], 1.7 / Math.sqrt(hidden))], [`b${b}.${p}`]));
      a = `b${b}.${p}`;
    }
    nodes.push(node("Add", [x, a], [`b${b}.res1`]));
    nodes.push(node("MatMul", [`b${b}.res1`, tensor(`b${b}.ff1.weight`, [hidden, ff], 1 / Math.sqrt(hidden))], [`b${b}.ff1`]));
    nodes.push(node("Add", [`b${b}.ff1`, tensor(`b${b}.ff1.bias`, [ff], 0.1)], [`b${b}.ff1b`]));
    nodes.push(node("Relu", [`b${b}.ff1b`], [`b${b}.act`]));
    nodes.push(node("MatMul", [`b${b}.act`, tensor(`b${b}.ff2.weight`, [ff, hidden], 1 / Math.sqrt(ff))], [`b${b}.ff2`]));
    nodes.push(node("Add", [`b${b}.res1`, `b${b}.ff2`], [`b${b}.out`]));
    x = `b${b}.out`;
  }
  closeSync(fd);
  // attention_mask is an input like BERT's: Cast to float, [b,s] → [b,s,1], multiplied in.
  nodes.push(node("Cast", ["attention_mask"], ["mask_f"], [msg(5, [str(1, "to"), varint(20, 2), varint(3, 1)])]));
  nodes.push(node("Unsqueeze", ["mask_f", "unsqueeze_axes"], ["mask3"]));
  nodes.push(node("Mul", [x, "mask3"], ["last_hidden_state"]));
  const axes = msg(5, [varint(1, 1), varint(2, 7), str(8, "unsqueeze_axes"), lenField(9, new Uint8Array(new BigInt64Array([-1n]).buffer))]);
  const graph = [
    ...nodes,
    str(2, "bench"),
    ...inits,
    axes,
    valueInfo(11, "input_ids", 7, ["batch", "seq"]),
    valueInfo(11, "attention_mask", 7, ["batch", "seq"]),
    valueInfo(12, "last_hidden_state", 1, ["batch", "seq", hidden]),
  ];
  const model = serializeMessage([varint(1, 8), str(2, "ctensors-bench"), msg(7, graph), msg(8, [str(1, ""), varint(2, 17)])]);
  writeFileSync(join(dir, "onnx", "model.onnx"), model);
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      model_type: "bert",
      hidden_size: hidden,
      vocab_size: vocab,
      "transformers.js_config": { use_external_data_format: true },
    }),
  );
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(ROOT, "test", "fixtures", "tiny-bert", f), join(dir, f));
  return offset;
}

/**
 * The Chromium rows of one model: `reps` runs of bench/ops/tjs-browser.mjs per mode, interleaved, each a
 * fresh browser with a first (nothing cached) and a second page load (same on-disk profile). Ratios encrypted ÷ plain.
 */
async function browserRows(ctx, name, mb, plainDir, encDir, keys) {
  const s = { plain: [], encrypted: [] };
  for (let rep = 0; rep < ctx.opts.reps; rep++) {
    ctx.log(`transformersjs ${name} chromium ${rep + 1}/${ctx.opts.reps}`);
    for (const mode of ["plain", "encrypted"]) {
      const dir = mode === "plain" ? plainDir : encDir;
      await ctx.warm(join(dir, "onnx", mode === "plain" ? "model.onnx_data" : "model.onnx.cryptotensors"));
      s[mode].push(await ctx.op("tjs-browser.mjs", [dir, mode, keys]));
    }
  }
  const rows = {};
  for (const load of ["first", "second"])
    for (const mode of ["plain", "encrypted"]) {
      const samples = s[mode].map((r) => ({
        ...r,
        maxRssKiB: r.result[load].rendererPeakKiB,
        result: { ...r.result, ...r.result[load], bytes: 0, opPeakKiB: null, rssStartKiB: null },
      }));
      const what =
        load === "first"
          ? "first load, HTTP cache off, Cache Storage empty"
          : `second page load (${mode === "plain" ? "transformers.js' Cache Storage" : "encrypted-container cache"})`;
      const row = rowFromSamples({
        id: `tjs-${name}-chromium-${load}-${mode}`,
        op: `${name} (${mb} MB): Chromium ${what}, ${mode}`,
        samples,
        cpu: false,
      });
      row.weightsBytes = Math.max(...samples.map((x) => x.result.weightsBytes));
      row.fromScriptsSeconds = samples.map((x) => x.result.fromScriptsSeconds);
      rows[`${load}-${mode}`] = row;
    }
  for (const load of ["first", "second"]) {
    const [p, e] = [rows[`${load}-plain`], rows[`${load}-encrypted`]];
    e.vsPlain = { time: e.seconds / p.seconds, peak: e.peakRssMiB / p.peakRssMiB };
  }
  const digests = new Set([...s.plain, ...s.encrypted].flatMap((r) => [r.result.first.digest, r.result.second.digest]));
  const secs = (xs) => xs.map((x) => x.toFixed(2)).join(", ");
  const note =
    `${name} in Chromium: outputs ${digests.size === 1 ? "bitwise identical" : "DIFFER"} (plain vs encrypted, first and second loads, every run). ` +
    `Seconds from the scripts' arrival to the result, first load: plain ${secs(rows["first-plain"].fromScriptsSeconds)}, encrypted ${secs(rows["first-encrypted"].fromScriptsSeconds)}; ` +
    `second load: plain ${secs(rows["second-plain"].fromScriptsSeconds)}, encrypted ${secs(rows["second-encrypted"].fromScriptsSeconds)}. ` +
    `Model files (onnx/*) sent on the second load: plain ${Math.max(...s.plain.map((r) => r.result.second.modelBytes))} bytes, encrypted ${Math.max(...s.encrypted.map((r) => r.result.second.modelBytes))} bytes (for encrypted: the graph, model.onnx, fetched again).`;
  return {
    rows: [rows["first-plain"], rows["first-encrypted"], rows["second-plain"], rows["second-encrypted"]],
    note,
  };
}

export default {
  name: "transformersjs",
  title: "transformers.js in Node and headless Chromium: pipeline() of a plaintext vs an encrypted ONNX model (ctensors hook)",
  async run(ctx) {
    const { reps } = ctx.opts;
    const keys = await ctx.keys();
    const plainRoot = ctx.path("tjs-plain");
    const encRoot = ctx.path("tjs-enc");
    const cli = join(ROOT, "plugin", "dist", "cli", "bin.js");
    const rows = [];
    const notes = [];
    // A quick run (--size-mib below 256) measures the MiniLM-sized model only.
    const models = Object.entries(SIZES).filter(([name]) => ctx.opts.sizeMiB >= 256 || name === "minilm");
    const which = process.env.CTENSORS_BENCH_TJS ?? "all";
    if (!["all", "node", "browser"].includes(which)) throw new TypeError(`CTENSORS_BENCH_TJS must be node, browser or all, got ${which}`);
    const inNode = which !== "browser";
    const inBrowser = which !== "node";
    for (const [name, size] of models) {
      ctx.log(`transformersjs: generating ${name}`);
      const bytes = writeModel(join(plainRoot, name), size);
      execFileSync(
        process.execPath,
        [
          cli,
          "encrypt",
          join(plainRoot, name),
          join(encRoot, name),
          "--key",
          join(keys, "enc.jwk"),
          "--sign-key",
          join(keys, "sign.jwk"),
          "--quiet",
        ],
        {
          stdio: ["ignore", "ignore", "inherit"],
        },
      );
      const mb = (bytes / 1e6).toFixed(0);
      if (inBrowser) {
        const b = await browserRows(ctx, name, mb, join(plainRoot, name), join(encRoot, name), keys);
        rows.push(...b.rows);
        notes.push(b.note);
      }
      if (!inNode) continue;
      const s = { plain: [], encrypted: [], path: [], buffer: [] };
      for (let rep = 0; rep < reps; rep++) {
        ctx.log(`transformersjs ${name} ${rep + 1}/${reps}`);
        for (const mode of ["plain", "encrypted"]) {
          const root = mode === "plain" ? plainRoot : encRoot;
          await ctx.warm(join(root, name, "onnx", mode === "plain" ? "model.onnx_data" : "model.onnx.cryptotensors"));
          s[mode].push(await ctx.op("tjs-load.mjs", [root, name, mode, keys]));
        }
        // The floor in Node: onnxruntime alone, the plaintext files by path vs the same bytes as buffers.
        for (const mode of ["path", "buffer"]) {
          await ctx.warm(join(plainRoot, name, "onnx", "model.onnx_data"));
          s[mode].push(await ctx.op("tjs-ort-session.mjs", [join(plainRoot, name), mode]));
        }
      }
      const same = new Set([...s.plain, ...s.encrypted].map((r) => r.result.digest)).size === 1;
      const worst = (xs, f) => Math.max(...xs.map((r) => f(r.result))) / 1024;
      const labels = {
        plain: `${name} (${mb} MB): pipeline() plain`,
        encrypted: `${name} (${mb} MB): pipeline() encrypted`,
        path: `${name}: onnxruntime session from a path (floor: plain)`,
        buffer: `${name}: onnxruntime session from buffers (floor: encrypted)`,
      };
      const byMode = {};
      for (const mode of ["plain", "encrypted", "path", "buffer"]) {
        const samples = s[mode].map((r) => ({ ...r, result: { ...r.result, bytes } }));
        byMode[mode] = rowFromSamples({ id: `tjs-${name}-${mode}`, op: labels[mode], samples });
        byMode[mode].rssAfterMiB = worst(s[mode], (r) => r.rssAfterSessionKiB);
      }
      byMode.plain.rssIdleMiB = worst(s.plain, (r) => r.idle.rssKiB);
      byMode.encrypted.rssIdleMiB = worst(s.encrypted, (r) => r.idle.rssKiB);
      const ratios = (a, b) => ({
        time: a.seconds / b.seconds,
        peak: a.peakRssMiB / b.peakRssMiB,
        after: a.rssAfterMiB / b.rssAfterMiB,
        idle: a.rssIdleMiB === undefined ? undefined : a.rssIdleMiB / b.rssIdleMiB,
      });
      byMode.encrypted.vsPlain = ratios(byMode.encrypted, byMode.plain);
      byMode.buffer.vsPlain = ratios(byMode.buffer, byMode.path);
      rows.push(byMode.plain, byMode.encrypted, byMode.path, byMode.buffer);
      const idleSeconds = s.encrypted.map((r) =>
        r.result.idle.seconds === null ? "not within 20 s" : `${r.result.idle.seconds.toFixed(1)} s`,
      );
      notes.push(
        `${name}: outputs ${same ? "bitwise identical" : "DIFFER"} (plain vs encrypted, every run). Encrypted, once pipeline() returned: the hook held ${s.encrypted.map((r) => r.result.held).join(", ")} bytes; ArrayBuffers alive ${s.encrypted.map((r) => r.result.arrayBuffersAtOnceMiB.toFixed(0)).join(", ")} MiB (transformers.js' buffers, no longer referenced), RSS ${s.encrypted.map((r) => (r.result.rssAtOnceKiB / 1024).toFixed(0)).join(", ")} MiB; V8 freed them on its own after ${idleSeconds.join(", ")} (no GC called), RSS then ${s.encrypted.map((r) => (r.result.idle.rssKiB / 1024).toFixed(0)).join(", ")} MiB; after a forced GC ${s.encrypted.map((r) => (r.result.rssAfterSessionKiB / 1024).toFixed(0)).join(", ")} MiB. Plain: RSS ${s.plain.map((r) => (r.result.rssAtOnceKiB / 1024).toFixed(0)).join(", ")} MiB at once.`,
      );
    }
    if (inBrowser)
      notes.push(
        "Chromium rows: a fresh headless Chromium (Debian's, playwright-core) per run with a fresh on-disk profile (temporary directory), the demo page (demo/browser/) served on loopback with `cache-control: no-store`; onnxruntime-web wasm, one thread. Seconds: from the start of the navigation to the page's result (pipeline() and one inference of three short texts; the page and library scripts load in both modes). Peak RSS for these rows: VmHWM of the renderer process that ran the page (/proc/<pid>/status; the `--type=renderer` descendant of the bench's child with the largest RSS at the result; a new page per load, the previous renderer gone first); the browser, GPU and network processes are not counted. CPU/wall is not measured for them (—). \"Weights over the network\": bytes of model.onnx_data (plain) or model.onnx.cryptotensors (encrypted) the server sent for that load.",
      );
    const times = (x) => (x === undefined ? "—" : `${x.toFixed(2)}×`);
    return {
      rows,
      notes,
      columns: [
        "op",
        "seconds",
        "range",
        ["time ÷ plain (lower is better)", (r) => times(r.vsPlain?.time)],
        "cpu",
        ["peak RSS MiB (Node: process; Chromium: renderer)", (r) => (r.peakRssMiB === null ? "—" : r.peakRssMiB.toFixed(0))],
        ["peak RSS ÷ plain", (r) => times(r.vsPlain?.peak)],
        ["RSS MiB once the session exists (V8's own GC)", (r) => (r.rssIdleMiB === undefined ? "—" : r.rssIdleMiB.toFixed(0))],
        ["÷ plain", (r) => times(r.vsPlain?.idle)],
        ["RSS MiB after a forced GC", (r) => (r.rssAfterMiB === undefined ? "—" : r.rssAfterMiB.toFixed(0))],
        ["÷ plain", (r) => times(r.vsPlain?.after)],
        [
          "weights over the network (Chromium)",
          (r) => (r.weightsBytes === undefined ? "—" : r.weightsBytes === 0 ? "0 bytes" : `${(r.weightsBytes / 1e6).toFixed(1)} MB`),
        ],
      ],
    };
  },
};
