// Prometheus metrics of one sidecar (prom-client), and the opt-in HTTP endpoint that serves them
// (`GET /metrics`). Each sidecar has its own registry (never prom-client's global one), so several
// sidecars in one process keep separate counts.
//
// Labels are bounded and carry nothing secret: the load mode, the load outcome and the ERR_CT_* code.
// No path, source, model id, tensor name or key ever becomes a label (the number of open models is a gauge).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { CryptoTensorsError } from "../index.js";
import { CancelledError, ShutdownError, SidecarError } from "./errors.js";
import type { Logger } from "./log.js";

export const METRICS_PATH = "/metrics";
export const DEFAULT_METRICS_HOST = "127.0.0.1";

/** The load mode as a label: "unknown" when a Load failed before its `start` named one. */
export type LoadModeLabel = "resident" | "streaming" | "unknown";

/** Load durations, in seconds: from a small model in milliseconds to a large one over minutes. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Where shared-memory regions report their size (shm/region.ts): +bytes when created, -bytes when closed. */
export interface ShmUsage {
  add(bytes: number): void;
}

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly loads = new Counter({
    name: "ctensors_sidecar_loads_total",
    help: "Load streams ended, by mode and outcome (ok, error, cancelled).",
    labelNames: ["mode", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly bytes = new Counter({
    name: "ctensors_sidecar_load_bytes_total",
    help: "Bytes of tensors decrypted into shared memory for clients, by load mode.",
    labelNames: ["mode"] as const,
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: "ctensors_sidecar_load_duration_seconds",
    help: "Duration of successful Load streams, from the stream's start to `done`, by mode.",
    labelNames: ["mode"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: "ctensors_sidecar_errors_total",
    help: "Calls refused or failed, by ERR_CT_* code (what the client got in ct-error-code).",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  private readonly shmBytes = new Gauge({
    name: "ctensors_sidecar_shm_bytes",
    help: "Bytes of shared-memory regions this sidecar holds open (created and not yet closed).",
    registers: [this.registry],
  });
  private openModelCount: () => number = () => 0;
  private sessionCount: () => number = () => 0;

  constructor() {
    const count = () => this.openModelCount();
    new Gauge({
      name: "ctensors_sidecar_open_models",
      help: "Models open in the sidecar (OpenModel not yet matched by CloseModel or by the end of its client's session, or in use by a Load).",
      registers: [this.registry],
      collect() {
        this.set(count());
      },
    });
    const sessions = () => this.sessionCount();
    new Gauge({
      name: "ctensors_sidecar_client_sessions",
      help: "Client sessions open (Session calls): each holds the models its client opened until the client goes away.",
      registers: [this.registry],
      collect() {
        this.set(sessions());
      },
    });
  }

  /** Shared-memory regions report here (ShmRegion.create). */
  readonly shm: ShmUsage = { add: (bytes) => this.shmBytes.inc(bytes) };

  /** The model registry tells how many models are open (read at each scrape). */
  countOpenModels(count: () => number): void {
    this.openModelCount = count;
  }

  /** The client sessions tell how many are open (read at each scrape). */
  countSessions(count: () => number): void {
    this.sessionCount = count;
  }

  loadFinished(mode: LoadModeLabel, seconds: number): void {
    this.loads.inc({ mode, outcome: "ok" });
    this.durations.observe({ mode }, seconds);
  }

  /** A Load that ended early: cancelled by its client, or failed (counted under its code too). */
  loadEnded(mode: LoadModeLabel, reason: unknown): void {
    this.loads.inc({ mode, outcome: reason instanceof CancelledError ? "cancelled" : "error" });
    if (!(reason instanceof CancelledError)) this.failed(reason);
  }

  bytesServed(mode: LoadModeLabel, bytes: number): void {
    this.bytes.inc({ mode }, bytes);
  }

  /** A call's failure, counted by the code the client receives (errors-to-status.ts); a shutdown or a cancel has none. */
  failed(err: unknown): void {
    const code = errorCodeOf(err);
    if (code) this.errors.inc({ code });
  }
}

/** The ERR_CT_* code a failure is sent with, as errorToStatus() decides it (null: sent without a code). */
function errorCodeOf(err: unknown): string | null {
  if (err instanceof CryptoTensorsError || err instanceof SidecarError) return err.code;
  if (err instanceof ShutdownError || err instanceof CancelledError) return null;
  return "ERR_CT_INTERNAL";
}

export interface MetricsEndpointOptions {
  /** TCP port; 0 picks a free one (see MetricsEndpoint.port). */
  port: number;
  /** Default 127.0.0.1: only local scrapers. */
  host?: string;
}

export interface MetricsEndpoint {
  host: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on host:port. Nothing else is served: other paths
 * are 404, other methods 405.
 * @throws ERR_CT_USAGE (not a port number), ERR_CT_IO (cannot listen: port in use, unknown host)
 */
export async function serveMetrics(metrics: SidecarMetrics, options: MetricsEndpointOptions, log: Logger): Promise<MetricsEndpoint> {
  const { port } = options;
  const host = options.host ?? DEFAULT_METRICS_HOST;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new CryptoTensorsError("ERR_CT_USAGE", `metrics port must be an integer from 0 to 65535, got ${port}`, {
      option: "metrics-port",
    });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(req.method === "HEAD" ? undefined : text),
      (err: Error) => {
        log.error("metrics.failed", { error: err.message });
        res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot serve metrics on ${host}:${port}: ${err.code ?? err.message}`, { cause: err });
  });
  const bound = (server.address() as AddressInfo).port;
  log.info("metrics.listening", { host, port: bound, path: METRICS_PATH });
  return {
    host,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
