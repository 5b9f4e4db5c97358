// Bounded memory on a model larger than any one tensor: encrypt, decrypt to memory and decrypt to
// disk a --size-mib model (run with --size-mib 4096), one child process each, reporting peak RSS.
// encryptFile streams 16 MiB pieces; the reader decrypts whole tensors into one buffer each, so its
// floor is the largest tensor. Files are deleted as soon as they are no longer needed.

import { rowFromSamples } from "../lib/rows.mjs";

export default {
  name: "rss",
  title: "Bounded memory",
  async run(ctx) {
    const { sizeMiB } = ctx.opts;
    const useRef = ctx.opts.reference && ctx.python;
    const keys = await ctx.keys();
    const plain = await ctx.plain(sizeMiB);
    const enc = ctx.path(`rss-enc-${sizeMiB}MiB.safetensors`);
    const dec = ctx.path(`rss-dec-${sizeMiB}MiB.safetensors`);

    ctx.log("rss: encryptFile");
    await ctx.warm(plain.path);
    const e = await ctx.op("encrypt.mjs", [plain.path, enc, keys]);
    await ctx.drop(plain.path); // not needed any more: its data hash was taken while writing it
    ctx.forget(`plain:${sizeMiB}`);

    ctx.log("rss: open + readTensor × all");
    await ctx.warm(enc);
    const m = await ctx.op("decrypt-mem.mjs", [enc, keys]);

    ctx.log("rss: open + readTensorInto one reused buffer");
    await ctx.warm(enc);
    const into = await ctx.op("decrypt-into.mjs", [enc, keys]);

    ctx.log("rss: decryptFile");
    await ctx.warm(enc);
    const f = await ctx.op("decrypt-file.mjs", [enc, dec, keys]);
    const verified = (await ctx.dataSha256(dec)) === plain.dataSha256;
    await ctx.drop(dec);
    if (!verified) throw new Error("decryptFile output differs from the plain model's data");

    let r = null;
    if (useRef) {
      ctx.log("rss: reference safe_open + get_tensor × all");
      await ctx.warm(enc);
      r = await ctx.op("ref_load.py", [enc, keys]);
    }
    await ctx.drop(enc);

    const rows = [
      rowFromSamples({ id: "rss-encrypt", op: "ours: encryptFile", samples: [e], compare: { openssl: "enc" } }),
      rowFromSamples({ id: "rss-decrypt-mem", op: "ours: open + readTensor × all (to memory)", samples: [m], compare: { openssl: "dec" } }),
      rowFromSamples({
        id: "rss-decrypt-into",
        op: "ours: open + readTensorInto one reused buffer",
        samples: [into],
        compare: { openssl: "dec" },
      }),
      rowFromSamples({ id: "rss-decrypt-file", op: "ours: decryptFile to disk", samples: [f], compare: { openssl: "dec" } }),
    ];
    if (r)
      rows.push(
        rowFromSamples({ id: "rss-ref-load", op: "reference: safe_open + get_tensor × all", samples: [r], compare: { openssl: "dec" } }),
      );
    const mib = (b) => (b / 2 ** 20).toFixed(1);
    const notes = [
      `model: ${plain.tensors.length} bf16 tensors, ${mib(plain.dataBytes)} MiB of tensor data (hidden ${plain.config.hidden_size}, ${plain.config.num_hidden_layers} layers, vocab ${plain.config.vocab_size}); largest tensor ${plain.largest.name} = ${mib(plain.largest.bytes)} MiB`,
      `decryptFile output verified equal to the plain model's tensor data: ${verified ? "yes" : "no"}`,
      "one run each (this part is about memory; its times are indicative only)",
    ];
    return { rows, notes, largestTensorMiB: plain.largest.bytes / 2 ** 20 };
  },
};
