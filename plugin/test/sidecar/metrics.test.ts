// Prometheus metrics (src/sidecar/metrics.ts): a real sidecar with its endpoint on a free loopback
// port serves an encrypted model and fails a tampered one; a scrape of /metrics shows the loads, bytes,
// durations, errors by code, open models and shared memory in use, with no path, model id or key in it.
// The endpoint is off unless asked for, and `ctensors serve --metrics-port` turns it on.

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../src/container/encrypt-file.js";
import { toJwk } from "../../src/keys/jwk.js";
import { TrustStore } from "../../src/keys/trust.js";
import { startSidecar, type SidecarHandle } from "../../src/sidecar/index.js";
import type { Logger } from "../../src/sidecar/log.js";
import { CLI, newEncryptionKey, newSigningKey, tempDir, writePlainSafetensors, type PlainTensor } from "../helpers.js";
import {
  auth,
  eventually,
  newClient,
  openRegions,
  openSession,
  rpcFailure,
  runLoad,
  tokenOf,
  unary,
  type SidecarClient,
} from "./helpers.js";

const dir = tempDir("ct-metrics-");
const encKey = newEncryptionKey("aes256gcm", "enc-metrics");
const signKey = newSigningKey("sign-metrics");
const logLines: string[] = [];
const logger: Logger = {
  info: (event, fields) => logLines.push(JSON.stringify({ event, ...fields })),
  warn: (event, fields) => logLines.push(JSON.stringify({ event, ...fields })),
  error: (event, fields) => logLines.push(JSON.stringify({ event, ...fields })),
};
const tensors: PlainTensor[] = Array.from(
  { length: 4 },
  (_, i): PlainTensor => ({ name: `layers.${i}.weight`, dtype: "F32", shape: [100, 250] }),
);
const modelBytes = 4 * 100 * 250 * 4;
const good = join(dir, "good.safetensors");
const tampered = join(dir, "tampered.safetensors");

let sidecar: SidecarHandle;
let client: SidecarClient;
const md = () => auth(tokenOf(sidecar.socketPath));

beforeAll(async () => {
  writePlainSafetensors(join(dir, "plain.safetensors"), tensors);
  await encryptFile(join(dir, "plain.safetensors"), good, { key: encKey, signKey });
  const bytes = Buffer.from(readFileSync(good));
  bytes[bytes.length - 1000]! ^= 1; // one ciphertext byte: opens (the header verifies), fails to decrypt
  writeFileSync(tampered, bytes);
  sidecar = await startSidecar({
    socketPath: join(dir, "run", "sidecar.sock"),
    keys: [encKey],
    trust: new TrustStore([signKey]),
    logger,
    release: { allowUnsigned: true },
    metrics: { port: 0 },
  });
  client = newClient(sidecar.socketPath);
});

afterAll(async () => {
  client?.close();
  await sidecar?.close();
});

async function scrape(port = sidecar.metrics!.port, host = "127.0.0.1"): Promise<string> {
  const res = await fetch(`http://${host}:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The value of one sample: `name` with exactly `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (JSON.stringify(Object.entries(got).sort()) === JSON.stringify(Object.entries(labels).sort())) return Number(m[3]);
  }
  return undefined;
}

describe("metrics of a running sidecar", () => {
  it("listens on 127.0.0.1 only, and says where in the log", () => {
    expect(sidecar.metrics).toMatchObject({ host: "127.0.0.1" });
    expect(sidecar.metrics!.port).toBeGreaterThan(0);
    expect(logLines.find((l) => l.includes('"metrics.listening"'))).toContain(`"port":${sidecar.metrics!.port}`);
  });

  it("starts at zero", async () => {
    const text = await scrape();
    expect(sample(text, "ctensors_sidecar_open_models")).toBe(0);
    expect(sample(text, "ctensors_sidecar_shm_bytes")).toBe(0);
    expect(text).not.toMatch(/^ctensors_sidecar_loads_total\{/m);
  });

  it("counts loads by mode, bytes, durations, open models, shared memory in use and errors by code", async () => {
    const { model_id } = await unary(client, "OpenModel", { source: good }, md());
    // A resident load held at its RegionReady (not mapped yet): its region is open, the gauge counts it; then cancelled.
    let shmWhileHeld: Promise<number | undefined> = Promise.resolve(undefined);
    const held = rpcFailure(
      runLoad(
        client,
        md(),
        { model_id, mode: "LOAD_MODE_RESIDENT" },
        {
          onReady: (_ready, call) => {
            shmWhileHeld = scrape().then((t) => {
              call.cancel();
              return sample(t, "ctensors_sidecar_shm_bytes");
            });
            return "stop";
          },
        },
      ),
    );
    await held;
    expect(await shmWhileHeld).toBeGreaterThanOrEqual(modelBytes);
    await eventually(() => openRegions().size === 0, "the held region to be closed");
    await runLoad(client, md(), { model_id, mode: "LOAD_MODE_RESIDENT" });
    await runLoad(client, md(), { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: 200_000, window_count: 2 });
    await runLoad(client, md(), { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: 200_000, window_count: 2 });
    const bad = await unary(client, "OpenModel", { source: tampered }, md());
    expect((await rpcFailure(runLoad(client, md(), { model_id: bad.model_id, mode: "LOAD_MODE_STREAMING" }))).ctCode).toBe(
      "ERR_CT_DECRYPTION_FAILED",
    );
    expect((await rpcFailure(unary(client, "CloseModel", { model_id: "m-0000000000000000" }, md()))).ctCode).toBe("ERR_CT_MODEL_NOT_OPEN");
    await eventually(() => openRegions().size === 0, "every region to be closed");

    let text = await scrape();
    expect(sample(text, "ctensors_sidecar_loads_total", { mode: "resident", outcome: "ok" })).toBe(1);
    expect(sample(text, "ctensors_sidecar_loads_total", { mode: "resident", outcome: "cancelled" })).toBe(1);
    expect(sample(text, "ctensors_sidecar_loads_total", { mode: "streaming", outcome: "ok" })).toBe(2);
    expect(sample(text, "ctensors_sidecar_loads_total", { mode: "streaming", outcome: "error" })).toBe(1);
    expect(sample(text, "ctensors_sidecar_load_bytes_total", { mode: "resident" })).toBe(2 * modelBytes); // the held one was filled too
    // Two full streaming loads, and the failed one's regions filled before the tampered chunk (fewer than all).
    const streamed = sample(text, "ctensors_sidecar_load_bytes_total", { mode: "streaming" })!;
    expect(streamed).toBeGreaterThanOrEqual(2 * modelBytes);
    expect(streamed).toBeLessThan(3 * modelBytes);
    expect(sample(text, "ctensors_sidecar_load_duration_seconds_count", { mode: "resident" })).toBe(1);
    expect(sample(text, "ctensors_sidecar_load_duration_seconds_count", { mode: "streaming" })).toBe(2);
    expect(sample(text, "ctensors_sidecar_load_duration_seconds_sum", { mode: "streaming" })).toBeGreaterThan(0);
    expect(sample(text, "ctensors_sidecar_load_duration_seconds_bucket", { mode: "streaming", le: "+Inf" })).toBe(2);
    expect(sample(text, "ctensors_sidecar_errors_total", { code: "ERR_CT_DECRYPTION_FAILED" })).toBe(1);
    expect(sample(text, "ctensors_sidecar_errors_total", { code: "ERR_CT_MODEL_NOT_OPEN" })).toBe(1);
    expect(sample(text, "ctensors_sidecar_open_models")).toBe(2);
    expect(sample(text, "ctensors_sidecar_shm_bytes")).toBe(0);

    // Nothing unbounded or secret in any label or value: no path, model id, tensor name or key.
    for (const s of [dir, good, tampered, model_id, bad.model_id, "layers.0.weight", (toJwk(encKey) as { k: string }).k])
      expect(text).not.toContain(s);

    await unary(client, "CloseModel", { model_id }, md());
    await unary(client, "CloseModel", { model_id: bad.model_id }, md());
    text = await scrape();
    expect(sample(text, "ctensors_sidecar_open_models")).toBe(0);
  });

  it("counts client sessions; a session's end closes its models (open_models falls)", async () => {
    const session = await openSession(client, md());
    await unary(client, "OpenModel", { source: good, session_id: session.id }, md());
    let text = await scrape();
    expect(sample(text, "ctensors_sidecar_client_sessions")).toBe(1);
    expect(sample(text, "ctensors_sidecar_open_models")).toBe(1);
    expect(text).not.toContain(session.id);
    session.call.cancel(); // as when the client is killed
    await session.ended;
    await eventually(() => logLines.some((l) => l.includes('"session.ended"')), "the session's end");
    text = await scrape();
    expect(sample(text, "ctensors_sidecar_client_sessions")).toBe(0);
    expect(sample(text, "ctensors_sidecar_open_models")).toBe(0);
  });

  it("serves /metrics only: other paths are 404, other methods 405", async () => {
    const base = `http://127.0.0.1:${sidecar.metrics!.port}`;
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST", body: "x" })).status).toBe(405);
  });

  it("keeps separate counts per sidecar in one process, and stops serving on close", async () => {
    const other = await startSidecar({ socketPath: join(dir, "run", "other.sock"), logger, metrics: { port: 0 } });
    const port = other.metrics!.port;
    try {
      const text = await scrape(port);
      expect(sample(text, "ctensors_sidecar_loads_total", { mode: "resident", outcome: "ok" })).toBeUndefined();
      expect(sample(text, "ctensors_sidecar_errors_total", { code: "ERR_CT_DECRYPTION_FAILED" })).toBeUndefined();
    } finally {
      await other.close();
    }
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});

describe("metrics are opt-in", () => {
  it("no endpoint without the option", async () => {
    const lines: string[] = [];
    const quiet: Logger = { info: (e) => lines.push(e), warn: (e) => lines.push(e), error: (e) => lines.push(e) };
    const plain = await startSidecar({ socketPath: join(dir, "run", "plain.sock"), logger: quiet });
    try {
      expect(plain.metrics).toBeUndefined();
      expect(lines).not.toContain("metrics.listening");
    } finally {
      await plain.close();
    }
  });

  it("a port in use is ERR_CT_IO and leaves nothing running; a bad port is ERR_CT_USAGE", async () => {
    const socketPath = join(dir, "run", "busy.sock");
    await expect(startSidecar({ socketPath, logger, metrics: { port: sidecar.metrics!.port } })).rejects.toMatchObject({
      code: "ERR_CT_IO",
    });
    await expect(startSidecar({ socketPath, logger, metrics: { port: 70000 } })).rejects.toMatchObject({ code: "ERR_CT_USAGE" });
    const again = await startSidecar({ socketPath, logger }); // the socket was released
    await again.close();
  });

  it("ctensors serve --metrics-port N serves them, and exits 0 on SIGTERM", async () => {
    const socket = join(dir, "run", "cli.sock");
    const child = spawn(process.execPath, [CLI, "serve", "--socket", socket, "--allow-plaintext", "--metrics-port", "0"], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, CTENSORS_SOCKET: "" },
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const exit = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      await eventually(() => stderr.includes('"metrics.listening"') || child.exitCode !== null, "the metrics log line", 30_000);
      const line = JSON.parse(stderr.split("\n").find((l) => l.includes('"metrics.listening"'))!);
      expect(line).toMatchObject({ host: "127.0.0.1", path: "/metrics" });
      expect(sample(await scrape(line.port), "ctensors_sidecar_open_models")).toBe(0);
      child.kill("SIGTERM");
      expect(await exit).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
