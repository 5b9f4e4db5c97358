// Fuzzing in `npm test` (bounded) and in the long run (`npm run fuzz -- --minutes N`, docs/fuzzing.md).
// Per target: the regression corpus (test/fuzz/corpus/<target>/) and the seeds are replayed, then
// fast-check generates inputs until the time budget is spent. A finding does not stop the run: it is
// saved (test/fuzz/findings/<target>/), counted, and the test fails at the end with every distinct
// finding. Budgets: FUZZ_SECONDS (per target, default: the bounded run's share of about a minute),
// FUZZ_TARGETS (comma-separated names, default all), FUZZ_STATS (a JSON file to write figures to).

import { appendFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Finding, signatureOf } from "./oracle.js";
import { corpusOf, saveFinding } from "./seeds.js";
import { devHubTarget } from "./targets/dev-hub.js";
import { headerTarget } from "./targets/header.js";
import { onnxTarget } from "./targets/onnx.js";
import { readerTarget } from "./targets/reader.js";
import { sidecarTarget } from "./targets/sidecar.js";
import type { FuzzTarget } from "./targets/target.js";

/** Seconds of generated inputs per target in the bounded run (plus the corpus replay). */
const BOUNDED_SECONDS: Record<string, number> = { header: 6, reader: 14, onnx: 6, "dev-hub": 8, sidecar: 10 };
const ALL = [headerTarget, readerTarget, onnxTarget, devHubTarget, sidecarTarget];
const only = process.env.FUZZ_TARGETS?.split(",").filter(Boolean);
const targets = only ? ALL.filter((t) => only.includes(t.name)) : ALL;
const seconds = (t: FuzzTarget) => (process.env.FUZZ_SECONDS ? Number(process.env.FUZZ_SECONDS) : BOUNDED_SECONDS[t.name]!);

interface Stats {
  target: string;
  seconds: number;
  replayed: number;
  generated: number;
  outcomes: Record<string, number>;
  findings: string[];
}

for (const target of targets) {
  describe(`fuzz: ${target.name}`, () => {
    const stats: Stats = { target: target.name, seconds: 0, replayed: 0, generated: 0, outcomes: {}, findings: [] };
    const distinct = new Map<string, string>();

    // fast-check's time limit can end the property while a run is still in flight: teardown waits for it.
    let inflight: Promise<void> = Promise.resolve();
    const once = (input: Uint8Array): Promise<void> => (inflight = runOne(input));
    const runOne = async (input: Uint8Array): Promise<void> => {
      try {
        const outcome = await target.run(input);
        stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
      } catch (err) {
        const sig = err instanceof Finding ? signatureOf(err) : `harness error: ${(err as Error).message}`;
        stats.outcomes.FINDING = (stats.outcomes.FINDING ?? 0) + 1;
        if (!distinct.has(sig)) {
          const stack = ((err as Error).cause as Error | undefined)?.stack ?? (err as Error).stack ?? "";
          const report = `target: ${target.name}\nfinding: ${(err as Error).message}\ninput (base64): ${Buffer.from(input).toString("base64")}\n\n${stack}\n`;
          const saved = saveFinding(target.name, input, report);
          distinct.set(sig, `${(err as Error).message}\n  saved: ${saved}\n  ${stack.split("\n").slice(0, 6).join("\n  ")}`);
        }
      }
    };

    beforeAll(async () => {
      await target.setup?.();
    });
    afterAll(async () => {
      await inflight;
      await target.teardown?.();
      stats.findings = [...distinct.keys()];
      if (process.env.FUZZ_STATS) appendFileSync(process.env.FUZZ_STATS, `${JSON.stringify(stats)}\n`);
    });

    it("replays the regression corpus and the seeds", async () => {
      const inputs = [...corpusOf(target.name).map(([, b]) => b), ...(target.seeds?.() ?? [])];
      for (const input of inputs) await once(input);
      stats.replayed = inputs.length;
      expect([...distinct.values()], "findings while replaying").toEqual([]);
    });

    it(`survives generated inputs (${seconds(target)} s)`, { timeout: seconds(target) * 1000 + 120_000 }, async () => {
      const started = Date.now();
      await fc.assert(
        fc.asyncProperty(target.input, async (input) => {
          stats.generated++;
          await once(input);
        }),
        { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: seconds(target) * 1000, markInterruptAsFailure: false },
      );
      stats.seconds = (Date.now() - started) / 1000;
      expect([...distinct.values()], "findings").toEqual([]);
    });
  });
}
