// Target "header": the safetensors header parser (parseHeaderPrefix, parseHeader, and the strict JSON
// parser under it) on mutated seed files and generated header-shaped JSON. Oracle: only coded errors;
// on success the result is self-consistent (contiguous offsets from 0, byte lengths that match dtype
// × shape, the file length exactly 8 + N + data), and the strict JSON parser never accepts text that
// JSON.parse refuses.

import fc from "fast-check";
import { HEADER_PREFIX_BYTES, parseHeader, parseHeaderPrefix } from "../../../plugin/src/format/header.js";
import { tensorByteLength } from "../../../plugin/src/format/dtype.js";
import { parseJson } from "../../../plugin/src/format/json.js";
import {
  applyByteOp,
  applyTextOp,
  applyTreeOps,
  byteOpArb,
  INTERESTING_NUMBERS,
  INTERESTING_STRINGS,
  joinFile,
  textOpArb,
  treeOpArb,
} from "../mutate.js";
import { Finding, outcomeOf } from "../oracle.js";
import { seedFiles } from "../seeds.js";
import type { FuzzTarget } from "./target.js";

const seeds = [...seedFiles.values()];
const seedArb = fc.nat({ max: seeds.length - 1 }).map((i) => seeds[i]!);

const num = fc.oneof(
  fc.nat({ max: 4096 }),
  fc.constantFrom(...INTERESTING_NUMBERS.map((n) => JSON.parse(n.replace(/^0+(?=\d)/, "")) as number)),
);
const tensorArb = fc.record(
  {
    dtype: fc.oneof(
      fc.constantFrom("F32", "F16", "BF16", "U8", "I64", "BOOL", "F4", "F6_E2M3", "F8_E8M0", "C64"),
      fc.constantFrom(...INTERESTING_STRINGS),
    ),
    shape: fc.array(num, { maxLength: 4 }),
    data_offsets: fc.oneof(fc.tuple(num, num), fc.array(num, { maxLength: 3 })),
  },
  { requiredKeys: [] },
);
/** Header-shaped JSON: tensors with plausible and hostile fields, optional __metadata__. */
const generatedArb = fc
  .tuple(
    fc.dictionary(fc.oneof(fc.constantFrom(...INTERESTING_STRINGS), fc.string({ maxLength: 4 })), tensorArb, { maxKeys: 5 }),
    fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), fc.constant(null), fc.nat())), {
      nil: undefined,
    }),
    fc.nat({ max: 64 }),
  )
  .map(([tensors, md, extra]) => {
    const json = JSON.stringify(md === undefined ? tensors : { __metadata__: md, ...tensors });
    return joinFile(new Uint8Array(Buffer.from(json)), new Uint8Array(extra));
  });

const inputArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(seedArb, fc.array(byteOpArb, { minLength: 1, maxLength: 4 })).map(([s, ops]) => ops.reduce(applyByteOp, s)),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(seedArb, fc.array(textOpArb, { minLength: 1, maxLength: 3 })).map(([s, ops]) => ops.reduce(applyTextOp, s)),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(seedArb, fc.array(treeOpArb, { minLength: 1, maxLength: 3 })).map(([s, ops]) => applyTreeOps(s, ops)?.file ?? s),
  },
  { weight: 2, arbitrary: generatedArb },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
);

function check(cond: boolean, what: string): void {
  if (!cond) throw new Finding(`inconsistent parse: ${what}`);
}

export const headerTarget: FuzzTarget = {
  name: "header",
  description: "safetensors header parser: parseHeaderPrefix, parseHeader, strict JSON (format/header.ts, format/json.ts)",
  input: inputArb,
  seeds: () => seeds,
  async run(file) {
    // The strict JSON parser against JSON.parse, on the header text when it is UTF-8.
    const region = file.subarray(HEADER_PREFIX_BYTES);
    const text = Buffer.from(region).toString("utf8");
    try {
      parseJson(text);
      try {
        JSON.parse(text);
      } catch {
        throw new Finding("the strict JSON parser accepted text that JSON.parse refuses");
      }
    } catch (err) {
      outcomeOf(err);
    }
    try {
      const n = parseHeaderPrefix(file.subarray(0, HEADER_PREFIX_BYTES));
      if (HEADER_PREFIX_BYTES + n > file.length) return "short";
      const h = parseHeader(file.subarray(HEADER_PREFIX_BYTES, HEADER_PREFIX_BYTES + n), file.length);
      check(h.headerBytes === n && h.dataStart === HEADER_PREFIX_BYTES + n, "header and data offsets");
      check(h.dataStart + h.dataBytes === file.length, "file length is 8 + N + data");
      let cursor = 0;
      for (const t of h.tensors) {
        check(t.begin === cursor && t.end >= t.begin, `offsets of ${t.name}`);
        check(tensorByteLength(t.dtype, t.shape) === BigInt(t.end - t.begin), `byte length of ${t.name}`);
        check(h.byName.get(t.name) === t, `name index of ${t.name}`);
        cursor = t.end;
      }
      check(h.byName.size === h.tensors.length, "duplicate tensor names");
      return "ok";
    } catch (err) {
      return outcomeOf(err);
    }
  },
};
