// Our codec and the reference on the same files, page cache warm, repeats interleaved
// (ours encrypt → ours decrypt ×2 → reference save → reference load, then again, each repeat
// rotated by one) so that a noisy neighbour hurts every operation alike. Each operation is its own
// child process.

import { rowFromSamples } from "../lib/rows.mjs";

export default {
  name: "codec",
  title: "Encrypt / decrypt: ours vs the reference",
  async run(ctx) {
    const { sizeMiB, reps, warmup } = ctx.opts;
    const useRef = ctx.opts.reference && ctx.python;
    const keys = await ctx.keys();
    const plain = await ctx.plain(sizeMiB);
    const enc = await ctx.encrypted(sizeMiB);
    const s = { enc: [], dmem: [], dfile: [], rsave: [], rload: [] };
    let verified = null;
    const out = ctx.path("rep-out.safetensors");
    // One closure per operation; each repeat starts one operation later (rotation), so that no
    // operation always runs right after the same neighbour (on a VM, what ran before changes how
    // "warm" freshly allocated memory and page-cache pages are). Untimed warm-up repeats first (rep < 0).
    const ops = [
      async (keep) => {
        await ctx.warm(plain.path);
        keep(s.enc, await ctx.op("encrypt.mjs", [plain.path, out, keys]));
        await ctx.drop(out);
      },
      async (keep) => {
        await ctx.warm(enc.path);
        keep(s.dmem, await ctx.op("decrypt-mem.mjs", [enc.path, keys]));
      },
      async (keep, first) => {
        await ctx.warm(enc.path);
        keep(s.dfile, await ctx.op("decrypt-file.mjs", [enc.path, out, keys]));
        if (first) verified = (await ctx.dataSha256(out)) === plain.dataSha256;
        await ctx.drop(out);
      },
    ];
    if (useRef) {
      ops.push(
        async (keep) => {
          await ctx.warm(plain.path);
          keep(s.rsave, await ctx.op("ref_save.py", [plain.path, out, keys]));
          await ctx.drop(out);
        },
        async (keep) => {
          await ctx.warm(enc.path);
          keep(s.rload, await ctx.op("ref_load.py", [enc.path, keys]));
        },
      );
    }
    for (let rep = -warmup; rep < reps; rep++) {
      ctx.log(rep < 0 ? "warm-up repeat (discarded)" : `repeat ${rep + 1}/${reps}`);
      const keep = (list, sample) => {
        if (rep >= 0) list.push(sample);
      };
      const shift = (((rep + warmup) % ops.length) + ops.length) % ops.length;
      for (let i = 0; i < ops.length; i++) await ops[(i + shift) % ops.length](keep, rep === -warmup);
    }
    if (verified === false) throw new Error("decryptFile output differs from the plain model's data");

    const rows = [
      rowFromSamples({
        id: "ours-encrypt",
        op: "ours: encryptFile (v2, 2 MiB chunks; incl. fsync)",
        samples: s.enc,
        compare: { openssl: "enc", reference: "ref-save-fsync" },
      }),
      rowFromSamples({
        id: "ours-encrypt-data",
        op: "  └ data phase (before header write + fsync)",
        samples: s.enc,
        secondsOf: (x) => x.result.dataSeconds,
        memory: false,
        cpu: false,
        compare: { openssl: "enc", reference: "ref-save" },
      }),
      rowFromSamples({
        id: "ours-decrypt-mem",
        op: "ours: open + readTensor × all (to memory)",
        samples: s.dmem,
        compare: { openssl: "dec", reference: "ref-load" },
      }),
      rowFromSamples({
        id: "ours-decrypt-file",
        op: "ours: decryptFile to disk (incl. fsync)",
        samples: s.dfile,
        compare: { openssl: "dec" },
      }),
      rowFromSamples({
        id: "ours-decrypt-file-data",
        op: "  └ data phase (before fsync)",
        samples: s.dfile,
        secondsOf: (x) => x.result.dataSeconds,
        memory: false,
        cpu: false,
        compare: { openssl: "dec" },
      }),
    ];
    if (useRef) {
      rows.push(
        rowFromSamples({
          id: "ref-save",
          op: "reference: cryptotensors.torch.save_file (encrypting)",
          samples: s.rsave,
          compare: { openssl: "enc" },
        }),
        rowFromSamples({
          id: "ref-save-fsync",
          op: "  └ + fsync of its output",
          samples: s.rsave,
          secondsOf: (x) => x.result.seconds + x.result.fsyncSeconds,
          memory: false,
          cpu: false,
          compare: { openssl: "enc" },
        }),
        rowFromSamples({ id: "ref-load", op: "reference: safe_open + get_tensor × all", samples: s.rload, compare: { openssl: "dec" } }),
      );
    }
    const notes = [
      `model: ${plain.tensors.length} bf16 tensors, ${(plain.dataBytes / 2 ** 20).toFixed(0)} MiB of tensor data (hidden ${plain.config.hidden_size}, ${plain.config.num_hidden_layers} layers, vocab ${plain.config.vocab_size}; largest tensor ${plain.largest.name} ${(plain.largest.bytes / 2 ** 20).toFixed(1)} MiB); encrypted file ${(enc.bytes / 2 ** 20).toFixed(1)} MiB`,
      `decryptFile output verified equal to the plain model's tensor data: ${verified ? "yes" : "not checked"}`,
    ];
    if (!useRef) notes.push("reference not measured (--no-reference or no .venv)");
    return { rows, notes, samples: s };
  },
};
