// Baselines measured in the same run: openssl speed (AES-256-GCM, 2 MiB buffers — the v2 chunk
// size) on one core and with -multi 2, encrypt and decrypt; and memcpy (Buffer.copy of 256 MiB).

import { opensslSpeed } from "../lib/openssl.mjs";
import { rateRow, rowFromSamples } from "../lib/rows.mjs";

export default {
  name: "baseline",
  title: "Baselines",
  async run(ctx) {
    const rows = [];
    const seconds = ctx.opts.opensslSeconds;
    for (const decrypt of [false, true]) {
      for (const multi of [1, 2]) {
        const dir = decrypt ? "dec" : "enc";
        ctx.log(`openssl speed ${decrypt ? "-decrypt " : ""}${multi > 1 ? `-multi ${multi} ` : ""}(${seconds}s)`);
        const r = await opensslSpeed({ multi, decrypt, seconds });
        rows.push(
          rateRow({
            id: `openssl-${dir}-${multi}`,
            op: `openssl speed${decrypt ? " -decrypt" : ""} aes-256-gcm 2 MiB${multi > 1 ? ` -multi ${multi}` : " (1 core)"}`,
            bytesPerSecond: r.bytesPerSecond,
            note: r.command,
          }),
        );
      }
    }
    ctx.log("memcpy (Buffer.copy 256 MiB)");
    const s = await ctx.op("memcpy.mjs", ["256", "7"]);
    rows.push(rowFromSamples({ id: "memcpy", op: "memcpy: Buffer.copy 256 MiB (median of 7)", samples: [s], cpu: false }));
    return { rows };
  },
};
