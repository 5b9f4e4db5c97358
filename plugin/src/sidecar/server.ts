// Wiring: socket checks, the sweep of regions left by dead sidecars, this sidecar's shared-memory
// instance, the gRPC server with the auth interceptor and the service, the token file, the startup
// log line, and an orderly stop. No request handling here.

import { Server, ServerCredentials } from "@grpc/grpc-js";
import { chmod, rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CryptoTensorsError, defaultPolicyEngine, engineName, type Key, type PolicyEngine, type TrustStore } from "../index.js";
import type { HubSettings } from "../hub/index.js";
import type { KmsKeyRelease } from "../kms/index.js";
import type { ReleasePolicy } from "../release/index.js";
import { authInterceptor, newToken, tokenPathOf, writeTokenFile } from "./auth.js";
import { DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_COUNT } from "./load-plan.js";
import { jsonLogger, type Logger } from "./log.js";
import { serveMetrics, SidecarMetrics, type MetricsEndpoint, type MetricsEndpointOptions } from "./metrics.js";
import { ModelRegistry } from "./model-registry.js";
import { ShmInstance, SHM_DIR } from "./shm/instance.js";
import { hugePagesOffer, probeShmDir } from "./shm/shm-dir.js";
import { sweepStaleRegions } from "./shm/sweep.js";
import { SidecarService, trustedSignerKids } from "./sidecar-service.js";
import { clearStaleSocket, MAX_SOCKET_PATH_BYTES, prepareSocketDir } from "./socket-path.js";
import { SIDECAR_VERSION } from "./version.js";

export const DEFAULT_RESIDENT_REGION_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000;

export interface SidecarOptions {
  /** The unix socket path (see defaultSocketPath()). */
  socketPath: string;
  /** Master keys. The sidecar never zeroes them: the caller owns them. */
  keys?: readonly Key[];
  /** Trusted signer public keys (required to open encrypted models). */
  trust?: TrustStore;
  /**
   * Serve plain (unsigned) models and models with tensors in plaintext too. Default false: only models
   * signed by a trusted key with every tensor encrypted are served (ERR_CT_NOT_CONFIDENTIAL otherwise).
   */
  allowPlaintext?: boolean;
  /** Enables Hub sources (`org/name[@rev]`): endpoint, token, cache folder, offline (see ctensors/hub hubSettings()). */
  hub?: HubSettings;
  /** Master keys held by a key service (ctensors/kms), released at OpenModel to this sidecar's identity. */
  kms?: KmsKeyRelease;
  /** Release checks on model folders (default: a signed release manifest required; no rollback history). */
  release?: ReleasePolicy;
  /** Licence claims given to the models' policies as `input.claims` (docs/key-management.md, "Policy input"). */
  policyClaims?: Record<string, unknown>;
  /** The Rego engine for non-default policies (default: $CTENSORS_REGO_PYTHON's; without one they are refused). */
  policyEngine?: PolicyEngine;
  /** Default: JSON lines on stderr. */
  logger?: Logger;
  /** RESIDENT: bytes per region (default 1 GiB). */
  residentRegionBytes?: number;
  /** STREAMING defaults when the client sends 0 (256 MiB, 2). */
  defaultWindowBytes?: number;
  defaultWindowCount?: number;
  /**
   * Where shared-memory regions are created (default /dev/shm): a tmpfs, or a hugetlbfs mount of
   * reserved huge pages (far fewer page allocations per load; needs the native engine). Anything else
   * is refused (shm/shm-dir.ts). Clients map the regions by the paths the sidecar announces.
   */
  shmDir?: string;
  /** How long close() waits for calls to finish before cancelling them (default 5 s). */
  shutdownTimeoutMs?: number;
  /** Serve Prometheus metrics on http://host:port/metrics (host default 127.0.0.1). Default: no endpoint. */
  metrics?: MetricsEndpointOptions;
}

export interface SidecarHandle {
  socketPath: string;
  tokenPath: string;
  /** Where the metrics endpoint listens (the bound port, when 0 was asked for); absent when metrics are off. */
  metrics?: { host: string; port: number };
  /** Stops serving: ends Loads (their regions are unlinked), closes models (zeroing DEKs), removes the liveness, socket and token files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a sidecar on a unix socket and writes its token file beside it (`<socket>.token`, 0600).
 * First removes the shared-memory regions that dead sidecars left in the region directory (logged as `shm.swept`).
 * @throws ERR_CT_IO (socket directory not private, socket in use, path too long, cannot bind, /dev/shm unusable),
 *   ERR_CT_USAGE (shmDir not tmpfs or hugetlbfs), ERR_CT_UNSUPPORTED (hugetlbfs without the native engine)
 */
export async function startSidecar(options: SidecarOptions): Promise<SidecarHandle> {
  const log = options.logger ?? jsonLogger();
  const shmDir = resolve(options.shmDir ?? SHM_DIR);
  const shmInfo = await probeShmDir(shmDir);
  if (shmInfo.fs === "hugetlbfs" && engineName() !== "native")
    throw new CryptoTensorsError(
      "ERR_CT_UNSUPPORTED",
      `${shmDir} is a hugetlbfs mount: its regions are written through a mapping, which needs the native engine (the JS engine is in use); ` +
        "serve from /dev/shm instead",
      { option: "shm-dir" },
    );
  const { socketPath, tokenPath } = await claimSocket(options.socketPath);
  await sweepDeadInstances(log, shmDir);
  const shm = await ShmInstance.start(shmDir, shmInfo);
  let running: Running;
  const metrics = new SidecarMetrics();
  try {
    const { registry, service } = newService(options, log, shm, metrics);
    const token = newToken();
    const server = await listen(service, socketPath, token, log);
    await publish(server, socketPath, tokenPath, token);
    running = {
      registry,
      service,
      server,
      shm,
      socketPath,
      tokenPath,
      log,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS,
      metricsEndpoint: null,
    };
  } catch (err) {
    await shm.close();
    throw err;
  }
  if (options.metrics) {
    try {
      running.metricsEndpoint = await serveMetrics(metrics, options.metrics, log);
    } catch (err) {
      await stop(running);
      throw err;
    }
  }
  // Before `sidecar.started`: once that line is out, the start-up lines are complete.
  if (shm.fs === "tmpfs") {
    const offer = await hugePagesOffer();
    if (offer)
      log.info("shm.huge_pages_available", {
        mount: offer.mount,
        page_bytes: offer.pageBytes,
        free_bytes: offer.freeBytes,
        hint: `huge pages are reserved on this host: --shm-dir ${offer.mount} puts the regions on them (cheaper loads; docs/sidecar.md)`,
      });
  }
  log.info("sidecar.started", {
    version: SIDECAR_VERSION,
    engine: engineName(),
    pid: process.pid,
    socket: socketPath,
    token_file: tokenPath,
    shm_instance: shm.id,
    shm_dir: shm.dir,
    shm_fs: shm.fs,
    shm_page_bytes: shm.pageBytes,
    require_encrypted: !(options.allowPlaintext ?? false),
    trusted_signers: trustedSignerKids(options.trust),
    keys: options.keys?.length ?? 0,
  });
  let closing: Promise<void> | null = null;
  const endpoint = running.metricsEndpoint;
  return {
    socketPath,
    tokenPath,
    ...(endpoint ? { metrics: { host: endpoint.host, port: endpoint.port } } : {}),
    close: () => (closing ??= stop(running)),
  };
}

/** What a started sidecar holds, and stop() releases. */
interface Running {
  registry: ModelRegistry;
  service: SidecarService;
  server: Server;
  shm: ShmInstance;
  socketPath: string;
  tokenPath: string;
  log: Logger;
  shutdownTimeoutMs: number;
  metricsEndpoint: MetricsEndpoint | null;
}

/** Checks the socket path and its directory, and removes a socket (and token) left by a dead sidecar. */
async function claimSocket(path: string): Promise<{ socketPath: string; tokenPath: string }> {
  const socketPath = resolve(path);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new CryptoTensorsError(
      "ERR_CT_USAGE",
      `socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes (the unix socket limit)`,
      { option: "socket" },
    );
  }
  await prepareSocketDir(dirname(socketPath));
  await clearStaleSocket(socketPath);
  return { socketPath, tokenPath: tokenPathOf(socketPath) };
}

/** Removes what dead sidecars left in the region directory (shm/sweep.ts), and says what in the log. */
async function sweepDeadInstances(log: Logger, dir: string): Promise<void> {
  const report = await sweepStaleRegions(dir).catch((err: NodeJS.ErrnoException) => {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot list ${dir} to remove regions left by dead sidecars: ${err.code ?? err.message}`, {
      cause: err,
    });
  });
  const { unattributed, ...swept } = report;
  log.info("shm.swept", { dir, ...swept });
  if (unattributed > 0)
    log.warn("shm.unattributed", { dir, regions: unattributed, why: "region files without a liveness socket: left alone" });
}

function newService(
  options: SidecarOptions,
  log: Logger,
  shm: ShmInstance,
  metrics: SidecarMetrics,
): { registry: ModelRegistry; service: SidecarService } {
  const keys = options.keys ?? [];
  const allowPlaintext = options.allowPlaintext ?? false;
  const requireEncrypted = !allowPlaintext;
  const registry = new ModelRegistry(
    {
      keys,
      trust: options.trust,
      allowPlaintext,
      hub: options.hub,
      kms: options.kms,
      release: options.release,
      policy: { engine: options.policyEngine ?? defaultPolicyEngine(), claims: options.policyClaims ?? {} },
    },
    log,
    metrics,
  );
  const service = new SidecarService({
    registry,
    log,
    version: SIDECAR_VERSION,
    requireEncrypted,
    trust: options.trust,
    shm,
    metrics,
    load: {
      residentRegionBytes: options.residentRegionBytes ?? DEFAULT_RESIDENT_REGION_BYTES,
      defaultWindowBytes: options.defaultWindowBytes ?? DEFAULT_WINDOW_BYTES,
      defaultWindowCount: options.defaultWindowCount ?? DEFAULT_WINDOW_COUNT,
    },
  });
  return { registry, service };
}

/** A gRPC server with the token check in front of the service, bound to the socket. */
async function listen(service: SidecarService, socketPath: string, token: string, log: Logger): Promise<Server> {
  const server = new Server({ interceptors: [authInterceptor(token, log)] });
  service.addToServer(server);
  await new Promise<void>((done, fail) =>
    server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? fail(err) : done())),
  ).catch((err: Error) => {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot listen on ${socketPath}: ${err.message}`, { cause: err });
  });
  return server;
}

/** Makes the socket private and writes the token file, last: clients take its existence as "the sidecar is ready". */
async function publish(server: Server, socketPath: string, tokenPath: string, token: string): Promise<void> {
  try {
    await chmod(socketPath, 0o600);
    await writeTokenFile(tokenPath, token);
  } catch (err) {
    server.forceShutdown();
    await rm(socketPath, { force: true });
    throw err;
  }
}

/** Ends Loads (their regions are unlinked), drains the server, closes models, then removes the liveness socket, socket and token. */
async function stop({
  registry,
  service,
  server,
  shm,
  socketPath,
  tokenPath,
  log,
  shutdownTimeoutMs,
  metricsEndpoint,
}: Running): Promise<void> {
  const stopped = Date.now();
  await metricsEndpoint?.close();
  await service.shutdown();
  await shutdownServer(server, shutdownTimeoutMs);
  await service.shutdown(); // Loads that began while the server drained
  await registry.closeAll();
  await shm.close();
  await rm(socketPath, { force: true });
  await rm(tokenPath, { force: true });
  log.info("sidecar.stopped", { socket: socketPath, ms: Date.now() - stopped });
}

/** tryShutdown (in-flight calls finish), then forceShutdown after `timeoutMs`. */
function shutdownServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, timeoutMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
