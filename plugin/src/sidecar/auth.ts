// The per-run bearer token: 32 random bytes (hex) written to `<socket>.token` (owner-only), and the
// one check of every call's `authorization: Bearer <token>` metadata, as a server interceptor.

import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { link, open, unlink } from "node:fs/promises";
import { SidecarError } from "./errors.js";
import { errorToStatus } from "./errors-to-status.js";
import type { Logger } from "./log.js";

export const TOKEN_BYTES = 32;

export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString("hex");
}

export function tokenPathOf(socketPath: string): string {
  return `${socketPath}.token`;
}

/**
 * Writes the token file with mode 0600, never over an existing file, and atomically: a client that
 * sees the file sees the whole token (written to a private temporary name, then hard-linked).
 */
export async function writeTokenFile(path: string, token: string): Promise<void> {
  const tmp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(token);
    await fh.chmod(0o600);
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Compares in constant time (digests make the lengths equal, so nothing depends on where they differ). */
export function tokenMatches(expectedToken: string, values: readonly unknown[]): boolean {
  if (values.length !== 1 || typeof values[0] !== "string") return false;
  return timingSafeEqual(digest(values[0]), digest(`Bearer ${expectedToken}`));
}

/** Refuses every call whose metadata lacks the right token, before any handler runs. */
export function authInterceptor(token: string, log: Logger): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            if (tokenMatches(token, metadata.get("authorization"))) {
              nextMetadata(metadata);
              return;
            }
            const err = new SidecarError(
              "ERR_CT_UNAUTHENTICATED",
              "missing or wrong token: send `authorization: Bearer <token>` with the token from the sidecar's token file",
            );
            call.sendStatus(errorToStatus(err, log, { rpc: method.path }));
          },
        }),
    });
}
