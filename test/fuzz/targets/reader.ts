// Target "reader": whole files through CryptoTensorsReader.open and every tensor read, with both
// engines (CTENSORS_ENGINE=js and native), and through the in-memory reader (MemoryCryptoTensors).
// Input: one mode byte, then the file. Mode 0: the mutated file as is; mode 1: the mutated header
// re-signed with the trusted key before the run (reaches the code after the signature check).
// Oracle:
// - every failure is a coded CryptoTensorsError, no run hangs;
// - the JS and native engines give the same verdict (open outcome and each tensor's read outcome),
//   with and without requireEncrypted; the in-memory reader gives the same verdict as the file reader;
// - nothing tampered is accepted: in mode 0 (no re-signing, so only the seeds' publisher could have
//   signed the header), whatever an open with trust (+ requireEncrypted) accepts is the seeds'
//   plaintext: every authenticated tensor that reads without error has the seeds' bytes, and under
//   requireEncrypted every tensor is encrypted.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { CryptoTensorsReader, type OpenOptions } from "../../../plugin/src/container/reader.js";
import { MemoryCryptoTensors } from "../../../plugin/src/container/memory-reader.js";
import { nodeCryptoProvider } from "../../../plugin/src/crypto/provider-node.js";
import { REGO_PYTHON_ENV } from "../../../plugin/src/policy.js";
import { applyByteOp, applyTextOp, applyTreeOps, byteOpArb, concat, textOpArb, treeOpArb } from "../mutate.js";
import { Finding, outcomeOf, verdict, withinTime } from "../oracle.js";
import { encKeys, expectedSha256, resign, seedFiles, sha256Hex, trust } from "../seeds.js";
import type { FuzzTarget } from "./target.js";

const seeds = [...seedFiles.values()];
const seedArb = fc.nat({ max: seeds.length - 1 }).map((i) => seeds[i]!);
const mutatedArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.tuple(seedArb, fc.array(byteOpArb, { minLength: 1, maxLength: 3 })).map(([s, ops]) => ops.reduce(applyByteOp, s)),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(seedArb, fc.array(textOpArb, { minLength: 1, maxLength: 2 })).map(([s, ops]) => ops.reduce(applyTextOp, s)),
  },
  {
    weight: 3,
    arbitrary: fc.tuple(seedArb, fc.array(treeOpArb, { minLength: 1, maxLength: 2 })).map(([s, ops]) => applyTreeOps(s, ops)?.file ?? s),
  },
);
const inputArb = fc.tuple(fc.constantFrom(0, 0, 1), mutatedArb).map(([mode, file]) => concat(Uint8Array.of(mode), file));

const RUN_MS = 20_000;
let dir = "";
let path = "";

type Engine = "js" | "native";
function withEngine<T>(engine: Engine, fn: () => Promise<T>): Promise<T> {
  process.env.CTENSORS_ENGINE = engine;
  return fn();
}

async function fileRun(
  engine: Engine,
  options: OpenOptions,
  check: (r: CryptoTensorsReader, name: string, data: Uint8Array) => void,
): Promise<string> {
  return withEngine(engine, async () => {
    let reader: CryptoTensorsReader | null = null;
    const open = await verdict(async () => {
      reader = await CryptoTensorsReader.open(path, options);
    });
    if (!reader) return open;
    const r = reader as CryptoTensorsReader;
    const reads: string[] = [];
    try {
      for (const t of r.tensors) {
        process.env.CTENSORS_ENGINE = engine;
        reads.push(await verdict(async () => check(r, t.name, await r.readTensor(t.name))));
      }
    } finally {
      await r.close();
    }
    return `${open} [${reads.join(",")}]`;
  });
}

async function memoryRun(bytes: Uint8Array, options: OpenOptions): Promise<string> {
  let reader: MemoryCryptoTensors | null = null;
  const open = await verdict(async () => {
    reader = await MemoryCryptoTensors.open(bytes, { ...options, provider: nodeCryptoProvider });
  });
  if (!reader) return open;
  const r = reader as MemoryCryptoTensors;
  const reads: string[] = [];
  for (const t of r.tensors) reads.push(await verdict(() => r.readTensor(t.name)));
  r.close();
  return `${open} [${reads.join(",")}]`;
}

async function runOnce(input: Uint8Array): Promise<string> {
  const mode = input[0] ?? 0;
  let file = input.subarray(1);
  if (mode === 1) file = resign(file) ?? file;
  writeFileSync(path, file);
  const strict: OpenOptions = { keys: encKeys, trust, requireEncrypted: true };
  const loose: OpenOptions = { keys: encKeys, trust };
  // Mode 0: only the publisher could have signed, so anything authenticated must be the seeds' bytes.
  const authentic = (r: CryptoTensorsReader, name: string, data: Uint8Array, requireEncrypted: boolean) => {
    if (mode !== 0) return;
    if (requireEncrypted && !r.isEncrypted(name))
      throw new Finding(`requireEncrypted accepted the plaintext tensor ${JSON.stringify(name)}`);
    if (r.unauthenticatedTensors().includes(name)) return;
    const want = expectedSha256.get(name);
    if (want === undefined)
      throw new Finding(`a tampered file was accepted: authenticated tensor ${JSON.stringify(name)} is not in the signed original`);
    if (sha256Hex(data) !== want)
      throw new Finding(`a tampered file was accepted: tensor ${JSON.stringify(name)} does not hold the signed original's bytes`);
  };
  const verdicts: Record<string, string> = {};
  for (const [label, options] of [
    ["strict", strict],
    ["loose", loose],
  ] as const) {
    const re = label === "strict";
    verdicts[`js/${label}`] = await fileRun("js", options, (r, n, d) => authentic(r, n, d, re));
    verdicts[`native/${label}`] = await fileRun("native", options, (r, n, d) => authentic(r, n, d, re));
    verdicts[`memory/${label}`] = await memoryRun(file, { ...options, followFileJku: false });
    if (verdicts[`js/${label}`] !== verdicts[`native/${label}`]) {
      throw new Finding(`engines disagree (${label}): js ${verdicts[`js/${label}`]} / native ${verdicts[`native/${label}`]}`);
    }
    if (verdicts[`js/${label}`] !== verdicts[`memory/${label}`]) {
      throw new Finding(
        `file and memory readers disagree (${label}): file ${verdicts[`js/${label}`]} / memory ${verdicts[`memory/${label}`]}`,
      );
    }
  }
  return verdicts["js/strict"]!.split(" ")[0]!;
}

export const readerTarget: FuzzTarget = {
  name: "reader",
  description:
    "container reader: CryptoTensorsReader.open + readTensor (js and native engines) and MemoryCryptoTensors, trust + requireEncrypted",
  input: inputArb,
  seeds: () => seeds.flatMap((s) => [concat(Uint8Array.of(0), s), concat(Uint8Array.of(1), s)]),
  async setup() {
    // A non-default policy must be refused here, not evaluated by a Rego engine from the environment.
    delete process.env[REGO_PYTHON_ENV];
    dir = mkdtempSync(join(tmpdir(), "ct-fuzz-reader-"));
    path = join(dir, "input.safetensors");
  },
  async teardown() {
    delete process.env.CTENSORS_ENGINE;
    rmSync(dir, { recursive: true, force: true });
  },
  async run(input) {
    try {
      return await withinTime(runOnce(input), RUN_MS, "opening and reading the file");
    } catch (err) {
      return outcomeOf(err);
    } finally {
      delete process.env.CTENSORS_ENGINE;
    }
  },
};
