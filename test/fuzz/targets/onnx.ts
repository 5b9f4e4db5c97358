// Target "onnx": the ONNX wire decoder (onnx/wire.ts) and the model splitter/joiner (onnx/model.ts)
// on mutated ONNX fixtures, and the manifest parser on mutated manifests. Input: one mode byte, then
// the payload. Mode 0: a graph file (its external data is the fixture's model.onnx_data); mode 1: the
// text of a `ctensors.onnx` manifest. Oracle: only coded errors; parseMessage → serializeMessage is
// the identity; whenever splitOnnx accepts a graph, joinOnnx puts back the original bytes (graph and
// external files) exactly.

import fc from "fast-check";
import { CryptoTensorsError } from "../../../plugin/src/errors.js";
import { joinOnnx, parseManifest, serializeManifest, splitOnnx } from "../../../plugin/src/onnx/model.js";
import { parseMessage, serializeMessage } from "../../../plugin/src/onnx/wire.js";
import { applyByteOp, byteOpArb, concat, INTERESTING_NUMBERS, INTERESTING_STRINGS } from "../mutate.js";
import { Finding, outcomeOf, withinTime } from "../oracle.js";
import { onnxFixtures } from "../seeds.js";
import type { FuzzTarget } from "./target.js";

const EXTERNAL = "model.onnx_data";
const graphs = [onnxFixtures.inline, onnxFixtures.extGraph];
const manifestSeed = JSON.stringify({
  version: 1,
  graph: "model.onnx",
  graph_sha256: "A".repeat(43) + "=",
  inline: ["a", "b"],
  external: [{ file: EXTERNAL, bytes: 16 }],
});

// Mutations near the start of a graph hit the framing; positions are fractions so they land anywhere.
const graphArb = fc
  .tuple(fc.nat({ max: 1 }), fc.array(byteOpArb, { minLength: 1, maxLength: 4 }))
  .map(([g, ops]) => ops.reduce(applyByteOp, graphs[g]!));
const manifestArb = fc.oneof(
  fc
    .tuple(fc.array(byteOpArb, { minLength: 1, maxLength: 3 }))
    .map(([ops]) => ops.reduce(applyByteOp, new Uint8Array(Buffer.from(manifestSeed)))),
  fc.jsonValue().map((v) => new Uint8Array(Buffer.from(JSON.stringify(v) ?? ""))),
  fc
    .record(
      {
        version: fc.oneof(fc.constant(1), fc.constantFrom(...INTERESTING_NUMBERS).map(Number)),
        graph: fc.constantFrom(...INTERESTING_STRINGS),
        graph_sha256: fc.string(),
        inline: fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
        external: fc.array(
          fc.record(
            {
              file: fc.constantFrom(...INTERESTING_STRINGS, EXTERNAL, "a/b", "./x", "a//b", "C:\\x"),
              bytes: fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 31, 1e12)),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 3 },
        ),
      },
      { requiredKeys: [] },
    )
    .map((v) => new Uint8Array(Buffer.from(JSON.stringify(v)))),
);
const inputArb = fc.oneof(
  { weight: 3, arbitrary: graphArb.map((g) => concat(Uint8Array.of(0), g)) },
  { weight: 1, arbitrary: manifestArb.map((m) => concat(Uint8Array.of(1), m)) },
);

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
/** External sizes between these are allocatable but too slow to rebuild on every input: parsed, not joined. */
const SKIP_JOIN_ABOVE = 1 << 26;
const ALWAYS_JOIN_ABOVE = 2 ** 40;

async function runGraph(model: Uint8Array): Promise<string> {
  const fields = parseMessage(model);
  if (!same(serializeMessage(fields), model)) throw new Finding("parseMessage → serializeMessage changed the bytes");
  const readExternal = (location: string) => {
    if (location !== EXTERNAL) throw new CryptoTensorsError("ERR_CT_IO", `no external file ${location}`);
    return onnxFixtures.extData;
  };
  const split = splitOnnx(model, readExternal);
  const manifest = parseManifest(
    serializeManifest({ version: 1, graph: "model.onnx", graphSha256: "x", inline: split.inline, external: split.external }),
  );
  const weights = new Map(split.weights.map((w) => [w.name, w.data]));
  const joined = await joinOnnx(split.graph, manifest, async (name) => {
    const w = weights.get(name);
    if (!w) throw new Finding(`joinOnnx asked for ${JSON.stringify(name)}, which splitOnnx did not take out`);
    return w;
  });
  if (!same(joined.model, model)) throw new Finding("splitOnnx → joinOnnx did not give back the original graph");
  for (const [file, bytes] of joined.external) {
    if (file !== EXTERNAL || !same(bytes, onnxFixtures.extData)) throw new Finding(`splitOnnx → joinOnnx did not give back ${file}`);
  }
  return "ok";
}

async function runManifest(text: Uint8Array): Promise<string> {
  const m = parseManifest(Buffer.from(text).toString("utf8"));
  if (m.external.some((e) => e.bytes > SKIP_JOIN_ABOVE && e.bytes <= ALWAYS_JOIN_ABOVE)) return "ok-large";
  // A parsed manifest against the stripped fixture graph: only coded refusals.
  const split = splitOnnx(onnxFixtures.inline, () => new Uint8Array(0));
  await joinOnnx(split.graph, m, async () => new Uint8Array(0));
  return "ok";
}

export const onnxTarget: FuzzTarget = {
  name: "onnx",
  description: "ONNX wire decoder and model split/join (onnx/wire.ts, onnx/model.ts), manifest parser",
  input: inputArb,
  seeds: () => [...graphs.map((g) => concat(Uint8Array.of(0), g)), concat(Uint8Array.of(1), new Uint8Array(Buffer.from(manifestSeed)))],
  async run(input) {
    const payload = input.subarray(1);
    try {
      return await withinTime(input[0] === 1 ? runManifest(payload) : runGraph(payload), 20_000, "the ONNX decoder");
    } catch (err) {
      return outcomeOf(err);
    }
  },
};
