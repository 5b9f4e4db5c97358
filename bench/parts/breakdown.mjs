// Where encryptFile's time goes: page-cache read, the AEAD path (sealInto / openInto as the package
// uses them, and Node's AES-GCM on cache-hot data), and write + fsync, each alone.

import { rowFromSamples } from "../lib/rows.mjs";
import { median } from "../lib/stats.mjs";

// part key in ops/breakdown.mjs → [row id, label, openssl baseline]
const LABELS = {
  read: ["read", "read: FileHandle.read, 16 MiB pieces (page cache)", null],
  sealInto: ["seal", "AEAD: sealInto per 2 MiB chunk over 256 MiB, in place (package path)", "enc"],
  "sealInto-hot": ["seal-hot", "AEAD: sealInto on one cache-hot 2 MiB buffer (as openssl speed)", "enc"],
  "update-64k": ["update-64k", "AEAD: one cipher, update() in 64 KiB slices, cache-hot", "enc"],
  openInto: ["open", "AEAD: openInto per 2 MiB chunk over 256 MiB, in place (package path)", "dec"],
  write: ["write", "write: FileHandle.write, 16 MiB pieces (no fsync)", null],
  fsync: ["fsync", "fsync of that file", null],
};

export default {
  name: "breakdown",
  title: "Where the time goes (components, one process)",
  async run(ctx) {
    const { sizeMiB, reps } = ctx.opts;
    const plain = await ctx.plain(sizeMiB);
    const samples = [];
    for (let rep = 0; rep < reps; rep++) {
      ctx.log(`breakdown ${rep + 1}/${reps}`);
      await ctx.warm(plain.path);
      samples.push(await ctx.op("breakdown.mjs", [plain.path, ctx.path("scratch.bin"), "256"]));
    }
    const faults = [];
    const rows = Object.entries(LABELS).map(([key, [id, op, dir]]) => {
      const per = samples.map((s) => {
        const p = s.result.parts[key];
        return { result: { seconds: p.seconds, bytes: p.bytes, cpuSeconds: p.userSeconds + p.sysSeconds }, p };
      });
      const gib = per[0].p.bytes / 2 ** 30;
      faults.push(
        `${key} ${Math.round(median(per.map((x) => x.p.minorFaults)) / gib)} faults, sys ${median(per.map((x) => x.p.sysSeconds)).toFixed(3)} s of ${median(per.map((x) => x.p.seconds)).toFixed(3)} s`,
      );
      return rowFromSamples({ id: `bd-${id}`, op, samples: per, memory: false, compare: dir ? { openssl: dir } : undefined });
    });
    const mib = (b) => (b / 2 ** 20).toFixed(0);
    const notes = [
      `read/write/fsync over the ${mib(plain.fileBytes)} MiB plain file; AEAD rows over 256 MiB in memory, median of 3 interleaved rounds per process; ${reps} process(es), median shown. Process peak RSS ${(median(samples.map((s) => s.maxRssKiB)) / 1024).toFixed(0)} MiB.`,
      `minor page faults per GiB and system CPU time (median): ${faults.join("; ")}`,
    ];
    return { rows, notes };
  },
};
