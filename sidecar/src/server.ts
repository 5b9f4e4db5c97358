// Wiring: socket checks, the gRPC server with the auth interceptor and the service, the token file,
// the startup log line, and an orderly stop. No request handling here.

import { Server, ServerCredentials } from "@grpc/grpc-js";
import { chmod, rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CryptoTensorsError, type Key, type TrustStore } from "ctensors";
import type { HubSettings } from "ctensors/hub";
import type { ReleasePolicy } from "ctensors/release";
import { authInterceptor, newToken, tokenPathOf, writeTokenFile } from "./auth.js";
import { DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_COUNT } from "./load-plan.js";
import { jsonLogger, type Logger } from "./log.js";
import { ModelRegistry } from "./model-registry.js";
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
  /** Refuse plaintext and unsigned models, and files with any tensor in plaintext. */
  requireEncrypted?: boolean;
  /** Enables Hub sources (`org/name[@rev]`): endpoint, token, cache folder, offline (see ctensors/hub hubSettings()). */
  hub?: HubSettings;
  /** Release checks on model folders (default: a signed release manifest required; no rollback history). */
  release?: ReleasePolicy;
  /** Default: JSON lines on stderr. */
  logger?: Logger;
  /** RESIDENT: bytes per region (default 1 GiB). */
  residentRegionBytes?: number;
  /** STREAMING defaults when the client sends 0 (256 MiB, 2). */
  defaultWindowBytes?: number;
  defaultWindowCount?: number;
  /** How long close() waits for calls to finish before cancelling them (default 5 s). */
  shutdownTimeoutMs?: number;
}

export interface SidecarHandle {
  socketPath: string;
  tokenPath: string;
  /** Stops serving: ends Loads (their regions are unlinked), closes models (zeroing DEKs), removes socket and token files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a sidecar on a unix socket and writes its token file beside it (`<socket>.token`, 0600).
 * @throws ERR_CT_IO (socket directory not private, socket in use, path too long, cannot bind)
 */
export async function startSidecar(options: SidecarOptions): Promise<SidecarHandle> {
  const log = options.logger ?? jsonLogger();
  const socketPath = resolve(options.socketPath);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new TypeError(`socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes (the unix socket limit): choose a shorter --socket`);
  }
  const tokenPath = tokenPathOf(socketPath);
  await prepareSocketDir(dirname(socketPath));
  await clearStaleSocket(socketPath);

  const keys = options.keys ?? [];
  const requireEncrypted = options.requireEncrypted ?? false;
  const registry = new ModelRegistry({ keys, trust: options.trust, requireEncrypted, hub: options.hub, release: options.release }, log);
  const service = new SidecarService({
    registry, log, version: SIDECAR_VERSION, requireEncrypted, trust: options.trust,
    load: {
      residentRegionBytes: options.residentRegionBytes ?? DEFAULT_RESIDENT_REGION_BYTES,
      defaultWindowBytes: options.defaultWindowBytes ?? DEFAULT_WINDOW_BYTES,
      defaultWindowCount: options.defaultWindowCount ?? DEFAULT_WINDOW_COUNT,
    },
  });
  const token = newToken();
  const server = new Server({ interceptors: [authInterceptor(token, log)] });
  service.addToServer(server);
  await new Promise<void>((done, fail) =>
    server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? fail(err) : done())),
  ).catch((err: Error) => {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot listen on ${socketPath}: ${err.message}`, { cause: err });
  });
  try {
    await chmod(socketPath, 0o600);
    // Last: clients take the token file's existence as "the sidecar is ready".
    await writeTokenFile(tokenPath, token);
  } catch (err) {
    server.forceShutdown();
    await rm(socketPath, { force: true });
    throw err;
  }

  log.info("sidecar.started", {
    version: SIDECAR_VERSION, pid: process.pid, socket: socketPath, token_file: tokenPath,
    require_encrypted: requireEncrypted, trusted_signers: trustedSignerKids(options.trust), keys: keys.length,
  });

  let closing: Promise<void> | null = null;
  const close = async () => {
    const stopped = Date.now();
    await service.shutdown();
    await shutdownServer(server, options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS);
    await service.shutdown(); // Loads that began while the server drained
    await registry.closeAll();
    await rm(socketPath, { force: true });
    await rm(tokenPath, { force: true });
    log.info("sidecar.stopped", { socket: socketPath, ms: Date.now() - stopped });
  };
  return {
    socketPath,
    tokenPath,
    close: () => (closing ??= close()),
  };
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
