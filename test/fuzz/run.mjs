// The long fuzz run: `npm run fuzz -- --minutes N [--targets header,reader,onnx,dev-hub,sidecar]`.
// Runs test/fuzz/fuzz.test.ts with N minutes per target, then prints inputs per hour and outcomes per
// target (a Markdown table for test/fuzz/RESULTS.md). Findings are saved in test/fuzz/findings/<target>/
// (see docs/fuzzing.md for turning one into a regression input). Exit status: vitest's (1 on findings).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "5" }, targets: { type: "string" } } });
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error("--minutes must be a positive number");
const dir = mkdtempSync(join(tmpdir(), "ct-fuzz-run-"));
const stats = join(dir, "stats.jsonl");
const env = {
  ...process.env,
  FUZZ_SECONDS: String(minutes * 60),
  FUZZ_STATS: stats,
  ...(values.targets ? { FUZZ_TARGETS: values.targets } : {}),
};
const started = new Date();
const r = spawnSync("npx", ["vitest", "run", "test/fuzz/fuzz.test.ts"], { stdio: "inherit", env });

let lines = [];
try {
  lines = readFileSync(stats, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
} catch {
  // no stats: vitest failed before any target ran
}
rmSync(dir, { recursive: true, force: true });
console.log(
  `\n${started.toISOString()}, ${minutes} min per target, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Node ${process.version}\n`,
);
console.log("| target | seconds | inputs | inputs/hour | outcomes | distinct findings |");
console.log("|---|---:|---:|---:|---|---|");
for (const s of lines) {
  const perHour = s.seconds ? Math.round((s.generated / s.seconds) * 3600) : 0;
  const outcomes = Object.entries(s.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  console.log(
    `| ${s.target} | ${s.seconds.toFixed(0)} | ${s.generated} | ${perHour.toLocaleString("en")} | ${outcomes} | ${s.findings.length ? s.findings.join("<br>") : "none"} |`,
  );
}
process.exit(r.status ?? 1);
