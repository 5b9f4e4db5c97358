// Waiting for SIGTERM or SIGINT in long-running commands (serve, dev-hub).

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
