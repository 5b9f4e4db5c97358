// ctensors health [--socket PATH] [--timeout-ms N]
// Asks a running sidecar whether it answers (its Health call, with the token file beside the socket)
// and prints the answer as JSON: exit 0 when it does, 8 (I/O) when not. Meant for probes, e.g. a
// Kubernetes exec probe on the sidecar container (deploy/k8s/).

import { usageError } from "../../errors.js";
import { defineCommand } from "../command.js";
import { SIDECAR_OPTIONS } from "../keys-from-args.js";

export const health = defineCommand({
  summary: "check that a running sidecar answers (for probes): prints its Health as JSON",
  usage: "ctensors health [options]",
  description: "Exit 0 when the sidecar answers, 8 when it does not (not running, not ready, or no answer in time).",
  options: {
    socket: { ...SIDECAR_OPTIONS.socket, description: "the sidecar's unix socket (its token file is PATH.token)" },
    "timeout-ms": { type: "string", value: "N", description: "how long to wait for the answer, in ms", defaultText: "3000" },
  },
  examples: ["ctensors health", "ctensors health --socket /run/ctensors/sidecar/sidecar.sock --timeout-ms 1000"],
  async run({ values, positionals, io }) {
    if (positionals.length) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    const raw = values["timeout-ms"];
    const timeoutMs = raw === undefined ? undefined : Number(raw);
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs <= 0))
      throw usageError(`timeout must be a positive integer of milliseconds, got ${JSON.stringify(raw)}`, "timeout-ms");
    const sidecar = await import("../../sidecar/index.js"); // on first use, as serve does
    const answer = await sidecar.checkHealth(values.socket ?? sidecar.defaultSocketPath(), timeoutMs);
    io.out(JSON.stringify(answer));
    return 0;
  },
});
