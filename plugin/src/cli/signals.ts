// Signals in the CLI. Long-running servers (serve, dev-hub) wait for SIGTERM or SIGINT and stop
// cleanly (untilSignal). Commands that write outputs (keygen, encrypt, decrypt, rewrap) run under
// withCleanupOnSignals: SIGINT, SIGTERM or SIGHUP removes every temporary still named on disk
// (io/temporaries.ts) and ends the process with 128 + the signal's number, as a shell reports it.

import { constants } from "node:os";
import { removeTemporariesSync } from "../io/temporaries.js";

/** Resolves on the first SIGTERM or SIGINT; a second signal gets Node's default action (exit). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      resolve(signal);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}

/** The catchable signals that end a command writing outputs. */
export const CLEANUP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const satisfies readonly NodeJS.Signals[];

/**
 * Runs `body`; if SIGINT, SIGTERM or SIGHUP arrives meanwhile, removes every tracked temporary
 * synchronously and exits with 128 + signo (no output is left half-written: see io/files.ts).
 */
export async function withCleanupOnSignals<T>(body: () => Promise<T>): Promise<T> {
  const onSignal = (signal: NodeJS.Signals) => {
    removeTemporariesSync();
    process.stderr.write(`ctensors: interrupted by ${signal}; temporary files removed\n`);
    process.exit(128 + constants.signals[signal]);
  };
  for (const s of CLEANUP_SIGNALS) process.on(s, onSignal);
  try {
    return await body();
  } finally {
    for (const s of CLEANUP_SIGNALS) process.off(s, onSignal);
  }
}
