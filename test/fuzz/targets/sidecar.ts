// Target "sidecar": the sidecar's request fields over the real gRPC server on a unix socket
// (startSidecar with keys, trust and requireEncrypted; a real @grpc/grpc-js client). Input: one kind
// byte, then the payload. Kind 0: a mutated seed file (as the reader target makes them) opened with
// OpenModel, loaded RESIDENT and STREAMING, closed. Kind 1: a JSON script of calls with hostile fields
// (sources, model ids, tensor names, modes, window sizes up to 2^64-1, Load messages out of order,
// unknown region ids, wrong or missing tokens) against the valid seed model.
// Oracle: every failed call carries a ct-error-code of the proto (never ERR_CT_INTERNAL, never a bare
// INTERNAL/UNKNOWN status), no call hangs, Health answers after every input, and once every call has
// ended no shared-memory region is left open or on disk.

import { status, type ClientDuplexStream, type StatusObject } from "@grpc/grpc-js";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { REGO_PYTHON_ENV } from "../../../plugin/src/policy.js";
import { startSidecar, type SidecarHandle } from "../../../plugin/src/sidecar/index.js";
import type { Logger } from "../../../plugin/src/sidecar/log.js";
import {
  auth,
  newClient,
  openRegions,
  runLoad,
  tokenOf,
  unary,
  type RpcFailure,
  type SidecarClient,
} from "../../../plugin/test/sidecar/helpers.js";
import { applyByteOp, applyTextOp, applyTreeOps, byteOpArb, concat, INTERESTING_STRINGS, textOpArb, treeOpArb } from "../mutate.js";
import { Finding, withinTime } from "../oracle.js";
import { encKeys, resign, seedFiles, trust } from "../seeds.js";
import type { FuzzTarget } from "./target.js";

const seeds = [...seedFiles.values()];
const VALID_SEED = "ts-v2-aes128gcm.safetensors";
const seedArb = fc.nat({ max: seeds.length - 1 }).map((i) => seeds[i]!);
const fileArb = fc
  .tuple(
    fc.constantFrom(0, 1),
    fc.oneof(
      fc.tuple(seedArb, fc.array(byteOpArb, { minLength: 1, maxLength: 3 })).map(([s, ops]) => ops.reduce(applyByteOp, s)),
      fc.tuple(seedArb, fc.array(textOpArb, { minLength: 1, maxLength: 2 })).map(([s, ops]) => ops.reduce(applyTextOp, s)),
      fc.tuple(seedArb, fc.array(treeOpArb, { minLength: 1, maxLength: 2 })).map(([s, ops]) => applyTreeOps(s, ops)?.file ?? s),
    ),
  )
  .map(([resigned, f]) => concat(Uint8Array.of(resigned), f));

const u64 = fc.oneof(
  fc.constantFrom(0, 1, 63, 64, 4096, 65536, 2 ** 31, 2 ** 32, 2 ** 53 - 1, "18446744073709551615", "9223372036854775808"),
  fc.nat(),
);
const nameArb = fc.oneof(
  fc.constantFrom("model.w", "model.b", "10", "2", "empty", "norm", "nope", "", "\u0000", "../x", ...INTERESTING_STRINGS.slice(0, 8)),
  fc.string({ maxLength: 6 }),
);
const callArb = fc.oneof(
  fc.record({
    rpc: fc.constant("OpenModel"),
    source: fc.oneof(
      fc.constantFrom(
        "$MODEL",
        "$DIR",
        "/proc/1",
        "/dev/null",
        "/proc/self/environ",
        "/etc/passwd",
        "relative.safetensors",
        "",
        "org/name",
        "org/name@main",
        "a".repeat(5000),
        "/nonexistent/x",
        "$MODEL/..",
        "$MODEL\u0000x",
      ),
      fc.string({ maxLength: 10 }),
    ),
    refresh: fc.boolean(),
    session: fc.constantFrom("none", "live", "ended", "forged"),
  }),
  fc.record({ rpc: fc.constant("Session"), hold_ms: fc.constantFrom(0, 5, 50), token: fc.constantFrom("valid", "none", "wrong") }),
  fc.record({
    rpc: fc.constant("Load"),
    model: fc.oneof(fc.constant("$ID"), fc.constant("$ID"), fc.string({ maxLength: 8 })),
    names: fc.option(fc.array(nameArb, { maxLength: 4 }), { nil: undefined }),
    mode: fc.constantFrom("LOAD_MODE_UNSPECIFIED", "LOAD_MODE_RESIDENT", "LOAD_MODE_STREAMING", 7),
    window_bytes: u64,
    window_count: fc.oneof(fc.constantFrom(0, 1, 2, 1000, 2 ** 32 - 1), fc.nat()),
    before: fc.array(fc.record({ kind: fc.constantFrom("mapped", "consumed", "start"), region_id: u64 }), { maxLength: 2 }),
    after: fc.array(fc.record({ kind: fc.constantFrom("mapped", "consumed", "start"), region_id: u64 }), { maxLength: 2 }),
    follow: fc.boolean(),
  }),
  fc.record({
    rpc: fc.constant("CloseModel"),
    model: fc.oneof(fc.constant("$ID"), fc.string({ maxLength: 8 })),
    session: fc.constantFrom("none", "live", "ended", "forged"),
  }),
  fc.record({ rpc: fc.constant("Health"), token: fc.constantFrom("valid", "none", "wrong", "empty") }),
);
const scriptArb = fc.array(callArb, { minLength: 1, maxLength: 4 }).map((calls) => new Uint8Array(Buffer.from(JSON.stringify(calls))));
const inputArb = fc.oneof(
  fc.tuple(fileArb).map(([f]) => concat(Uint8Array.of(0), f)),
  scriptArb.map((s) => concat(Uint8Array.of(1), s)),
);

const PROTO_CODES = new Set([
  "ERR_CT_FORMAT",
  "ERR_CT_UNSUPPORTED",
  "ERR_CT_SIGNATURE_INVALID",
  "ERR_CT_UNTRUSTED_SIGNER",
  "ERR_CT_INTEGRITY",
  "ERR_CT_NOT_CONFIDENTIAL",
  "ERR_CT_DECRYPTION_FAILED",
  "ERR_CT_KEY_NOT_FOUND",
  "ERR_CT_KEY_INVALID",
  "ERR_CT_POLICY_DENIED",
  "ERR_CT_POLICY_UNSUPPORTED",
  "ERR_CT_IO",
  "ERR_CT_HUB",
  "ERR_CT_UNAUTHENTICATED",
  "ERR_CT_BAD_REQUEST",
  "ERR_CT_MODEL_NOT_OPEN",
]);

let dir = "";
let socketPath = "";
let sidecar: SidecarHandle | null = null;
let client: SidecarClient | null = null;
let token = "";
let validId = "";
const internalLog: string[] = [];
const logger: Logger = {
  info: () => {},
  warn: () => {},
  error: (event, fields) => internalLog.push(`${event} ${JSON.stringify(fields)}`.slice(0, 2000)),
};

/** The outcome of a failed call, or a Finding when it is not a coded refusal. */
function refused(f: RpcFailure, what: string): string {
  if (typeof f.code !== "number") throw f;
  if (f.ctCode && PROTO_CODES.has(f.ctCode)) return f.ctCode;
  const log = internalLog.splice(0).join("\n");
  throw new Finding(
    `${what}: status ${status[f.code]} "${f.details}" with ct-error-code ${f.ctCode ?? "(none)"}${log ? `\nsidecar log: ${log}` : ""}`,
  );
}

async function call(method: string, request: object, token_ = token): Promise<string> {
  try {
    await withinTime(unary(client!, method, request, auth(token_)), 20_000, method);
    return "ok";
  } catch (err) {
    if (err instanceof Finding) throw err;
    return refused(err as RpcFailure, method);
  }
}

interface LoadCall {
  model: string;
  names?: string[];
  mode: string | number;
  window_bytes: number | string;
  window_count: number;
  before: { kind: string; region_id: number | string }[];
  after: { kind: string; region_id: number | string }[];
  follow: boolean;
}

/** A Load with hostile fields and messages: the well-behaved driver when `follow`, else raw messages then end. */
async function load(c: LoadCall, id: string): Promise<string> {
  const start = {
    model_id: c.model === "$ID" ? id : c.model,
    names: c.names ?? [],
    mode: c.mode,
    window_bytes: c.window_bytes,
    window_count: c.window_count,
  };
  if (c.follow && !c.before.length) {
    try {
      await withinTime(runLoad(client!, auth(token), start as never), 30_000, "Load");
      return "ok";
    } catch (err) {
      if (err instanceof Finding) throw err;
      if (typeof (err as RpcFailure).code === "number") return refused(err as RpcFailure, "Load");
      throw new Finding(`Load broke the protocol: ${(err as Error).message}`, { cause: err });
    }
  }
  const msg = (m: { kind: string; region_id: number | string }) =>
    m.kind === "start" ? { start } : { [m.kind]: { region_id: m.region_id } };
  const done = new Promise<StatusObject>((resolve) => {
    const stream = client!.Load!(auth(token)) as ClientDuplexStream<object, unknown>;
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("status", resolve);
    try {
      for (const m of c.before) stream.write(msg(m));
      stream.write({ start });
      for (const m of c.after) stream.write(msg(m));
    } catch (err) {
      stream.cancel();
      resolve({ code: status.INVALID_ARGUMENT, details: `client refused to encode: ${(err as Error).message}`, metadata: null as never });
    }
    setTimeout(() => stream.cancel(), 200);
  });
  const s = await withinTime(done, 20_000, "Load (raw messages)");
  if (s.code === status.OK || s.code === status.CANCELLED) return status[s.code];
  if (!s.metadata) return "client-refused";
  const v = s.metadata.get("ct-error-code")[0];
  return refused({ code: s.code, details: s.details, ctCode: v === undefined ? undefined : String(v) }, "Load");
}

/** Opens a Session call and resolves with its id (or the refusal) and a way to end it. */
async function openSession(token_: string | null = token): Promise<{ id: string | null; outcome: string; end: () => void }> {
  const stream = client!.Session!({}, auth(token_)) as import("@grpc/grpc-js").ClientReadableStream<{ session_id: string }>;
  const end = () => stream.cancel();
  const first = new Promise<{ id: string | null; failure?: RpcFailure }>((resolve) => {
    stream.on("data", (m: { session_id: string }) => resolve({ id: m.session_id }));
    stream.on("error", (err: StatusObject) => {
      const v = err.metadata?.get("ct-error-code")[0];
      resolve({ id: null, failure: { code: err.code, details: err.details, ctCode: v === undefined ? undefined : String(v) } });
    });
  });
  const { id, failure } = await withinTime(first, 20_000, "Session");
  // A refusal must be a coded one, like every other call's (refused() throws a Finding otherwise).
  return { id, outcome: failure ? refused(failure, "Session") : "ok", end };
}

/** The session id a scripted call sends: none, a live session's, one that has ended, or a forged one. */
async function sessionId(kind: string, live: { id: string | null }): Promise<string | undefined> {
  if (kind === "live") return live.id ?? undefined;
  if (kind === "forged") return "f".repeat(32);
  if (kind === "ended") {
    const s = await openSession();
    s.end();
    await new Promise((r) => setTimeout(r, 20));
    return s.id ?? undefined;
  }
  return undefined;
}

async function noRegionsLeft(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (openRegions().size) {
    if (Date.now() > deadline)
      throw new Finding(`shared-memory regions left open after every call ended: ${[...openRegions()].join(", ")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runFile(input: Uint8Array): Promise<string> {
  let file = input.subarray(1);
  if (input[0] === 1) file = resign(file) ?? file;
  const path = join(dir, "models", "input.safetensors");
  writeFileSync(path, file);
  let id = "";
  try {
    await withinTime(
      unary(client!, "OpenModel", { source: path, refresh: true }, auth(token)).then((r: { model_id: string }) => {
        id = r.model_id;
      }),
      20_000,
      "OpenModel",
    );
  } catch (err) {
    if (err instanceof Finding) throw err;
    return refused(err as RpcFailure, "OpenModel");
  }
  const outcomes = [];
  for (const mode of ["LOAD_MODE_RESIDENT", "LOAD_MODE_STREAMING"])
    outcomes.push(await load({ model: "$ID", mode, window_bytes: 64, window_count: 2, before: [], after: [], follow: true }, id));
  await call("CloseModel", { model_id: id });
  return `open ok, load ${outcomes.join("/")}`;
}

async function runScript(input: Uint8Array): Promise<string> {
  const calls = JSON.parse(Buffer.from(input.subarray(1)).toString("utf8")) as Array<Record<string, any>>;
  const outcomes: string[] = [];
  const opened: string[] = [];
  const tokens: Record<string, string | null> = { valid: token, none: null, wrong: "0".repeat(64), empty: "" };
  // One live session per script; every model a script opens in it is released when it ends (below).
  const live = await openSession();
  try {
    for (const c of calls) {
      if (c.rpc === "OpenModel") {
        const source = String(c.source)
          .replace("$MODEL", join(dir, "valid", VALID_SEED))
          .replace("$DIR", join(dir, "valid"));
        const session_id = await sessionId(String(c.session ?? "none"), live);
        outcomes.push(await call("OpenModel", { source, refresh: c.refresh, ...(session_id === undefined ? {} : { session_id }) }));
        if (outcomes.at(-1) === "ok") opened.push(source);
      } else if (c.rpc === "Session") {
        const s = await openSession(tokens[c.token as string] ?? null);
        await new Promise((r) => setTimeout(r, Number(c.hold_ms)));
        s.end();
        outcomes.push(s.outcome);
      } else if (c.rpc === "Load") outcomes.push(await load(c as LoadCall, validId));
      else if (c.rpc === "CloseModel") {
        const session_id = await sessionId(String(c.session ?? "none"), live);
        const model_id = c.model === "$ID" ? "never-the-shared-id" : c.model;
        outcomes.push(await call("CloseModel", { model_id, ...(session_id === undefined ? {} : { session_id }) }));
      } else outcomes.push(await call("Health", {}, tokens[c.token as string] as string));
    }
  } finally {
    live.end();
  }
  return outcomes[0] ?? "empty";
}

export const sidecarTarget: FuzzTarget = {
  name: "sidecar",
  description:
    "sidecar gRPC requests over a unix socket: OpenModel sources, Load fields and message order, CloseModel, sessions (live, ended, forged ids), tokens; mutated model files",
  input: inputArb,
  seeds: () => seeds.map((s) => concat(Uint8Array.of(0, 0), s)),
  async setup() {
    delete process.env[REGO_PYTHON_ENV];
    dir = mkdtempSync(join(tmpdir(), "ct-fuzz-sc-"));
    mkdirSync(join(dir, "models"));
    mkdirSync(join(dir, "valid"));
    writeFileSync(join(dir, "valid", VALID_SEED), seedFiles.get(VALID_SEED)!);
    socketPath = join(dir, "run", "s.sock");
    sidecar = await startSidecar({ socketPath, keys: encKeys, trust, requireEncrypted: true, logger, residentRegionBytes: 4096 });
    token = tokenOf(socketPath);
    client = newClient(socketPath);
    validId = ((await unary(client, "OpenModel", { source: join(dir, "valid", VALID_SEED) }, auth(token))) as { model_id: string })
      .model_id;
  },
  async teardown() {
    client?.close();
    await sidecar?.close();
    rmSync(dir, { recursive: true, force: true });
  },
  async run(input) {
    const outcome = await (input[0] === 1 ? runScript(input) : runFile(input.subarray(1)));
    await noRegionsLeft();
    if ((await call("Health", {})) !== "ok") throw new Finding("the sidecar stopped answering Health");
    if (!existsSync(socketPath)) throw new Finding("the sidecar's socket is gone");
    return outcome.split(" ")[0]!;
  },
};
