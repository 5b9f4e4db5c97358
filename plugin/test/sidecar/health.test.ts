// `ctensors health --socket PATH`: the probe command of the deployment manifests (deploy/k8s/). Exit 0
// and the Health answer as JSON when the sidecar answers; exit 8 (I/O) and a message when it does not.

import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, tempDir } from "../helpers.js";
import { silentLogger, startSidecar } from "../../src/sidecar/index.js";

const dir = tempDir("ct-health-");

/** Runs the CLI in a child process (asynchronously: the sidecar under test runs in this one). */
function health(socket: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, "health", "--socket", socket, "--timeout-ms", "5000"],
      { env: { ...process.env, CTENSORS_SOCKET: "" } },
      (err, stdout, stderr) => done({ status: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

describe("ctensors health", () => {
  it("exits 0 with the sidecar's Health while it runs, 8 once it has stopped", async () => {
    mkdirSync(join(dir, "run"), { mode: 0o700 });
    const socket = join(dir, "run", "sidecar.sock");
    const sidecar = await startSidecar({ socketPath: socket, logger: silentLogger });
    try {
      const up = await health(socket);
      expect(up.status, up.stderr).toBe(0);
      expect(JSON.parse(up.stdout)).toMatchObject({ version: expect.any(String), open_models: [] });
    } finally {
      await sidecar.close();
    }
    const down = await health(socket);
    expect(down.status).toBe(8);
    expect(down.stderr).toContain("ERR_CT_IO");
    expect(down.stderr).toContain("not running or not ready");
  });
});
