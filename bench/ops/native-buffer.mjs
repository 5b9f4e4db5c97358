// Driver (not a bench part): the native engine writing into a fresh buffer, with and without the
// buffer options, interleaved: each repeat runs every variant once, in a rotating order, each in a
// fresh child (bench/ops/decrypt-buffer.mjs). Prints per-variant medians of round 1 (fresh buffer)
// and round 2 (touched) wall and CPU seconds, the fault count and the SHA-256 check.
// usage: node bench/ops/native-buffer.mjs [SIZE_MIB (350)] [REPS (5)]   (after `npm run build`)
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runChild } from "../lib/child.mjs";
import { BENCH_DIR, ROOT } from "../lib/context.mjs";
import { llamaShapes, readThrough, writeSyntheticModel } from "../lib/model.mjs";
import { median } from "../lib/stats.mjs";

const sizeMiB = Number(process.argv[2] ?? 350);
const reps = Number(process.argv[3] ?? 5);
const VARIANTS = [
  { id: "populate", env: { CTENSORS_NATIVE_POPULATE: "1" } },
  { id: "no-populate", env: { CTENSORS_NATIVE_POPULATE: "0" } },
];
const only = process.env.VARIANTS?.split(",");
const variants = only ? VARIANTS.filter((v) => only.includes(v.id)) : VARIANTS;

const work = mkdtempSync(join(tmpdir(), "ctensors-native-buffer-"));
try {
  const keys = join(work, "keys");
  execFileSync(process.execPath, [join(ROOT, "plugin", "dist", "cli", "bin.js"), "keygen", "--out", keys, "--kid", "bench"], {
    stdio: "ignore",
  });
  const plain = join(work, "plain.safetensors");
  const enc = join(work, "enc.safetensors");
  await writeSyntheticModel(plain, llamaShapes(sizeMiB * 2 ** 20).tensors);
  await runChild(process.execPath, [join(BENCH_DIR, "ops", "encrypt.mjs"), plain, enc, keys], { cwd: ROOT });
  rmSync(plain);
  const s = Object.fromEntries(variants.map((v) => [v.id, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + rep) % variants.length];
      await readThrough(enc);
      const r = await runChild(process.execPath, [join(BENCH_DIR, "ops", "decrypt-buffer.mjs"), enc, keys], {
        cwd: ROOT,
        env: { ...process.env, ...v.env },
      });
      s[v.id].push(r.result);
      const x = r.result;
      console.error(
        `rep ${rep + 1} ${v.id}: fresh ${x.rounds[0].toFixed(3)} s (cpu ${x.roundCpu[0].toFixed(3)}), touched ${x.rounds[1].toFixed(3)} s, faults ${x.faultsRound1}, anonHuge ${x.anonHugeKiB} KiB`,
      );
    }
  }
  const shas = new Set(Object.values(s).flatMap((xs) => xs.map((x) => x.sha256)));
  const bytes = Object.values(s)[0][0].bytes;
  console.log(
    `${(bytes / 2 ** 20).toFixed(0)} MiB, ${reps} interleaved repeats, medians; bytes identical across variants: ${shas.size === 1}`,
  );
  for (const v of variants) {
    const xs = s[v.id];
    const m = (f) => median(xs.map(f));
    console.log(
      `${v.id.padEnd(14)} fresh ${m((x) => x.rounds[0]).toFixed(3)} s = ${(bytes / 1e9 / m((x) => x.rounds[0])).toFixed(2)} GB/s, cpu ${m((x) => x.roundCpu[0]).toFixed(3)} s;` +
        ` touched ${m((x) => x.rounds[1]).toFixed(3)} s, cpu ${m((x) => x.roundCpu[1]).toFixed(3)} s; faults ${Math.round(m((x) => x.faultsRound1))}, AnonHugePages ${Math.round(m((x) => x.anonHugeKiB) / 1024)} MiB`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
