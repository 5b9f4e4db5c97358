// The signed release check (docs/format.md §13) on a model folder holding the encrypted model, a
// config and a tokenizer: what opening a model pays (headers only) against re-hashing every file
// (an OMS verifier, `verify --full-hash`). Warm page cache for both.

import { link, mkdir, writeFile } from "node:fs/promises";
import { rowFromSamples } from "../lib/rows.mjs";

export default {
  name: "release",
  title: "Release manifest check: headers only vs full re-hash",
  async run(ctx) {
    const { sizeMiB, reps } = ctx.opts;
    const keys = await ctx.keys();
    const enc = await ctx.encrypted(sizeMiB);
    const folder = ctx.path("release-model");
    await mkdir(folder, { recursive: true });
    await link(enc.path, `${folder}/model.safetensors`);
    await writeFile(`${folder}/config.json`, JSON.stringify({ model_type: "llama" }));
    await writeFile(
      `${folder}/tokenizer.json`,
      JSON.stringify({ model: { vocab: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`t${i}`, i])) } }),
    );
    await ctx.op("release-verify.mjs", [folder, keys, "--sign"]);
    const s = { headers: [], full: [] };
    for (let rep = 0; rep < reps; rep++) {
      ctx.log(`release ${rep + 1}/${reps}`);
      await ctx.warm(enc.path);
      s.headers.push(await ctx.op("release-verify.mjs", [folder, keys]));
      await ctx.warm(enc.path);
      s.full.push(await ctx.op("release-verify.mjs", [folder, keys, "--full-hash"]));
    }
    const rows = [
      rowFromSamples({ id: "release-headers", op: "ours: verifyRelease (shard headers + small files' sha256)", samples: s.headers }),
      rowFromSamples({ id: "release-full", op: "ours: verifyRelease --full-hash (every file's sha256, as OMS)", samples: s.full }),
    ];
    const notes = [
      `GB/s is the folder's size over the check's time; the headers-only check reads only the header of the ${sizeMiB} MiB shard (plus config and tokenizer)`,
    ];
    return { rows, notes };
  },
};
