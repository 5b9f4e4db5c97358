// ctensors dev-hub --data DIR [--port PORT] [--host 127.0.0.1] [--token TOKEN]
// Runs the local Hub-compatible development server (plugin/src/hub/dev-hub) until SIGINT or SIGTERM.
// A development and test stand-in for huggingface.co, not a Hub replacement (docs/dev-hub.md).

import { startDevHub } from "../../hub/dev-hub/index.js";
import { usageError } from "../../errors.js";
import { defineCommand, expectPositionals } from "../command.js";
import { untilSignal } from "../signals.js";

export const devHub = defineCommand({
  summary: "run a local Hub-compatible development server (for tests and demos; not a Hub replacement)",
  usage:
    "ctensors dev-hub --data DIR [--port PORT] [--host HOST] [--token TOKEN]\n" +
    "  --port 0 (the default) picks a free port; the URL is printed on stdout once listening.\n" +
    "  --token: writes and private reads need 'Authorization: Bearer TOKEN' (@huggingface/hub needs a token starting with hf_);\n" +
    "  without it anonymous writes are accepted (development mode). Use it with HF_ENDPOINT=<url> (Python) or hubUrl (JS).",
  options: {
    data: { type: "string" },
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    token: { type: "string" },
  },
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
