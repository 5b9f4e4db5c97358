// The sidecar's default socket: one rule for `ctensors serve` (the sidecar package re-exports it) and
// `ctensors vllm`. The Python client (python-shim/src/ctensors/_client.py) applies the same rule; a
// Python test asks both for the default in the same environment and compares.

import { join } from "node:path";

/** The environment variable that names the socket. */
export const SOCKET_ENV = "CTENSORS_SOCKET";

/**
 * The socket used when none is given: `$CTENSORS_SOCKET` if set; else `$XDG_RUNTIME_DIR/ctensors/sidecar.sock`
 * if XDG_RUNTIME_DIR is set; else `/tmp/ctensors-<uid>/sidecar.sock`.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0): string {
  const explicit = env[SOCKET_ENV];
  if (explicit) return explicit;
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime) return join(runtime, "ctensors", "sidecar.sock");
  return `/tmp/ctensors-${uid}/sidecar.sock`;
}
