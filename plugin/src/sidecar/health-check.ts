// A client-side health check of a running sidecar, for probes (a Kubernetes exec probe runs
// `ctensors health --socket PATH`): reads the token file beside the socket, calls Health with a
// deadline, and returns the answer. The sidecar listens on a unix socket only, so the kubelet's own
// gRPC probe (TCP, grpc.health.v1) cannot reach it; this command can, from inside the container.

import { credentials, Metadata, type Client, type ServiceError } from "@grpc/grpc-js";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { CryptoTensorsError } from "../index.js";
import { tokenPathOf } from "./auth.js";
import type { HealthResponse } from "./proto.js";
import { sidecarClientConstructor } from "./proto.js";

export const DEFAULT_HEALTH_TIMEOUT_MS = 3000;

/**
 * Asks the sidecar on `socketPath` for its health.
 * @throws ERR_CT_IO (no token file, nothing answering, refused, or no answer within `timeoutMs`)
 */
export async function checkHealth(socketPath: string, timeoutMs = DEFAULT_HEALTH_TIMEOUT_MS): Promise<HealthResponse> {
  const socket = resolve(socketPath);
  const token = await readFile(tokenPathOf(socket), "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new CryptoTensorsError(
      "ERR_CT_IO",
      `no sidecar token beside ${socket} (${err.code ?? err.message}): the sidecar is not running or not ready`,
      { cause: err },
    );
  });
  const Ctor = sidecarClientConstructor();
  const client = new Ctor(`unix:${socket}`, credentials.createInsecure()) as Client & Record<string, (...args: unknown[]) => unknown>;
  const md = new Metadata();
  md.set("authorization", `Bearer ${token.trim()}`);
  try {
    return await new Promise<HealthResponse>((done, fail) => {
      client.Health!({}, md, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: HealthResponse) =>
        err ? fail(err) : done(res),
      );
    });
  } catch (err) {
    throw new CryptoTensorsError(
      "ERR_CT_IO",
      `the sidecar on ${socket} did not answer Health: ${(err as ServiceError).details || (err as Error).message}`,
      { cause: err },
    );
  } finally {
    client.close();
  }
}
