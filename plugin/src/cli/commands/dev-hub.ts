// ctensors dev-hub --data DIR [--port PORT] [--host 127.0.0.1] [--token TOKEN]
// Runs the local Hub-compatible development server (plugin/src/hub/dev-hub) until SIGINT or SIGTERM.
// A development and test stand-in for huggingface.co, not a Hub replacement (docs/dev-hub.md).

import { startDevHub } from "../../hub/dev-hub/index.js";
import { usageError } from "../../errors.js";
import { defineCommand, expectPositionals } from "../command.js";
import { untilSignal } from "../signals.js";

export const devHub = defineCommand({
  summary: "run a local Hub-compatible development server (for tests and demos; not a Hub replacement)",
  usage: "ctensors dev-hub --data DIR [options]",
  description:
    "Prints its URL on stdout once listening and serves until Ctrl-C (SIGINT) or SIGTERM. Use it with\n" +
    "HF_ENDPOINT=<url> (Python, and ctensors push/pull/serve) or hubUrl (JS). docs/dev-hub.md says what it is not.",
  options: {
    data: { type: "string", value: "DIR", description: "the folder that holds the repos (created if missing)" },
    port: { type: "string", value: "PORT", default: "0", description: "the port to listen on (0: a free one)" },
    host: { type: "string", value: "HOST", default: "127.0.0.1", description: "the address to listen on" },
    token: {
      type: "string",
      value: "TOKEN",
      description: "writes and private reads need 'Authorization: Bearer TOKEN' (@huggingface/hub sends only tokens starting with hf_)",
      defaultText: "none: anonymous writes are accepted (development mode)",
    },
  },
  examples: ["ctensors dev-hub --data ./hub-data", "ctensors dev-hub --data ./hub-data --port 8080 --token hf_dev"],
  async run({ values, positionals, io }) {
    expectPositionals(positionals, []);
    const { data, port: portText, token } = values;
    if (!data) throw usageError("--data DIR is required");
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port > 65535)
      throw usageError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(portText)}`);
    if (token !== undefined && !token) throw usageError("--token must not be empty");
    const signal = untilSignal();
    const hub = await startDevHub({
      port,
      host: values.host,
      dataDir: data,
      ...(token !== undefined ? { token } : {}),
      log: io.quiet ? (line) => (line.includes("warning") ? io.err(line) : undefined) : (line) => io.err(line),
    });
    io.out(hub.url);
    io.err(`dev-hub: listening on ${hub.url} (data in ${data}); a development server, not a Hub replacement. Ctrl-C stops it.`);
    await signal;
    await hub.close();
    return 0;
  },
});
