// Allocation experiments with the same package code, against the default in balanced order, same files:
//  - glibc malloc thresholds fixed by environment. Node's cipher.update() returns a freshly malloc'ed
//    output buffer per call (2 MiB per v2 chunk); with glibc's dynamic thresholds those come from
//    mmap or a heap top that gets trimmed, so each chunk page-faults its output in again.
//    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ keep freed memory for reuse.
//  - readTensorInto with one reused buffer instead of readTensor's new buffer per tensor.

import { rowFromSamples } from "../lib/rows.mjs";
import { median } from "../lib/stats.mjs";

export const TUNED_ENV = { MALLOC_MMAP_THRESHOLD_: String(64 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(1024 * 1024 * 1024) };

export default {
  name: "alloc",
  title: "Allocation experiments (same package code)",
  async run(ctx) {
    const { sizeMiB, reps } = ctx.opts;
    const keys = await ctx.keys();
    const plain = await ctx.plain(sizeMiB);
    const enc = await ctx.encrypted(sizeMiB);
    const s = { enc: [], encT: [], dmem: [], dmemT: [], into: [], intoT: [] };
    const out = ctx.path("alloc-out.safetensors");
    // Balanced order: A B in even repeats, B A in odd ones (A B B A …), because on a VM the operation
    // that runs right after a file was deleted finds warmer memory than the one after it.
    const balanced = (rep, pair) => (rep % 2 ? [...pair].reverse() : pair);
    for (let rep = 0; rep < reps; rep++) {
      ctx.log(`alloc ${rep + 1}/${reps}`);
      for (const [list, env] of balanced(rep, [
        [s.enc, undefined],
        [s.encT, TUNED_ENV],
      ])) {
        await ctx.warm(plain.path);
        list.push(await ctx.op("encrypt.mjs", [plain.path, out, keys], { env }));
        await ctx.drop(out);
      }
      const dec = [
        [s.dmem, "decrypt-mem.mjs"],
        [s.dmemT, "decrypt-mem.mjs", TUNED_ENV],
        [s.into, "decrypt-into.mjs"],
        [s.intoT, "decrypt-into.mjs", TUNED_ENV],
      ];
      for (const [list, script, env] of balanced(rep, dec)) {
        await ctx.warm(enc.path);
        list.push(await ctx.op(script, [enc.path, keys], { env }));
      }
    }
    const faults = (list) => Math.round(median(list.map((x) => x.result.minorFaults ?? 0)));
    const rows = [
      rowFromSamples({ id: "alloc-encrypt-default", op: "ours: encryptFile, default malloc", samples: s.enc, compare: { openssl: "enc" } }),
      rowFromSamples({ id: "alloc-encrypt-tuned", op: "ours: encryptFile, malloc tuned", samples: s.encT, compare: { openssl: "enc" } }),
      rowFromSamples({
        id: "alloc-decrypt-default",
        op: "ours: readTensor × all, default malloc",
        samples: s.dmem,
        compare: { openssl: "dec", reference: "ref-load" },
      }),
      rowFromSamples({
        id: "alloc-decrypt-tuned",
        op: "ours: readTensor × all, malloc tuned",
        samples: s.dmemT,
        compare: { openssl: "dec", reference: "ref-load" },
      }),
      rowFromSamples({
        id: "alloc-into-default",
        op: "ours: readTensorInto one reused buffer, default malloc",
        samples: s.into,
        compare: { openssl: "dec", reference: "ref-load" },
      }),
      rowFromSamples({
        id: "alloc-into-tuned",
        op: "ours: readTensorInto one reused buffer, malloc tuned",
        samples: s.intoT,
        compare: { openssl: "dec", reference: "ref-load" },
      }),
    ];
    const notes = [
      `malloc tuned = ${Object.entries(TUNED_ENV)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")} in the child's environment; ${reps} round(s) in balanced order (A B, B A, …), medians`,
      `minor page faults during the operation (median): encrypt ${faults(s.enc)} → ${faults(s.encT)} tuned; readTensor ${faults(s.dmem)} → ${faults(s.dmemT)}; readTensorInto ${faults(s.into)} → ${faults(s.intoT)}`,
    ];
    return { rows, notes };
  },
};
