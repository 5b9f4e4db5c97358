// `ctensors inspect FILE | head -1`: a reader that goes away ends the command quietly (no EPIPE stack
// trace, exit 0), however the race between the writes and the closed pipe falls.

import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, tempDir, writePlainSafetensors, type PlainTensor } from "./helpers.js";

const dir = tempDir("ct-epipe-");
const file = join(dir, "many.safetensors");
const tensors: PlainTensor[] = Array.from({ length: 400 }, (_, i) => ({ name: `layer.${i}.weight`, dtype: "F32", shape: [2, 2] }));
writePlainSafetensors(file, tensors);

describe("a closed stdout", () => {
  it("ends inspect quietly, every time", () => {
    for (let run = 0; run < 12; run++) {
      // bash reports the exit status of the ctensors side of the pipe in PIPESTATUS.
      const r = spawnSync("bash", ["-c", `node "$0" inspect "$1" | head -1 >/dev/null; echo "status=\${PIPESTATUS[0]}" >&2`, CLI, file], {
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(r.stderr, `run ${run}`).toBe("status=0\n");
    }
  });
});
