// Test helpers: a real @grpc/grpc-js client of the sidecar (same proto, loaded at run time), a Load
// driver that plays the client's half of the protocol from Node (no mmap here: it reads the region
// file before saying `mapped`, and keeps an fd open in place of the mapping), and shm probes.

import {
  credentials,
  Metadata,
  status,
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ServiceError,
  type StatusObject,
} from "@grpc/grpc-js";
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from "node:fs";
import { expect } from "vitest";
import { sidecarClientConstructor } from "../../src/sidecar/proto.js";
import { REGION_NAME } from "../../src/sidecar/shm/instance.js";
import type { LoadStart, RegionReady } from "../../src/sidecar/proto.js";

export const REGION_PATH = /^\/dev\/shm\/ctensors-[0-9a-f]{16}-[0-9a-f]{32}$/;

export type SidecarClient = Client & Record<string, (...args: unknown[]) => unknown>;

export function newClient(socketPath: string): SidecarClient {
  const Ctor = sidecarClientConstructor();
  return new Ctor(`unix:${socketPath}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }) as unknown as SidecarClient;
}

export function auth(token: string | null): Metadata {
  const md = new Metadata();
  if (token !== null) md.set("authorization", `Bearer ${token}`);
  return md;
}

export function tokenOf(socketPath: string): string {
  return readFileSync(`${socketPath}.token`, "utf8").trim();
}

export interface RpcFailure {
  code: status;
  details: string;
  ctCode: string | undefined;
}

function failureOf(s: StatusObject | ServiceError): RpcFailure {
  const v = s.metadata?.get("ct-error-code")[0];
  return { code: s.code as status, details: s.details, ctCode: v === undefined ? undefined : String(v) };
}

export function unary<Res = any>(client: SidecarClient, method: string, request: object, md: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => {
    client[method]!(request, md, (err: ServiceError | null, res: Res) => (err ? reject(failureOf(err)) : resolve(res)));
  });
}

export interface ClientSession {
  /** The session id the server sent. */
  id: string;
  /** The Session call: cancel() it to end the session as a client that goes away would. */
  call: ClientReadableStream<{ session_id: string }>;
  /** The call's final status, once it has ended. */
  ended: Promise<StatusObject>;
}

/** Starts a client session (the Session call), resolved once the server has sent its id. */
export function openSession(client: SidecarClient, md: Metadata): Promise<ClientSession> {
  const call = client.Session!({}, md) as ClientReadableStream<{ session_id: string }>;
  const ended = new Promise<StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  return new Promise((resolve, reject) => {
    call.once("data", (msg: { session_id: string }) => resolve({ id: msg.session_id, call, ended }));
    void ended.then((s) => reject(failureOf(s)));
  });
}

/** Awaits a call that must fail, and returns its status, message and ct-error-code trailer. */
export async function rpcFailure(p: Promise<unknown>): Promise<RpcFailure> {
  try {
    await p;
  } catch (err) {
    if (typeof (err as RpcFailure).code === "number") return err as RpcFailure;
    throw err;
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** Regions this process holds open (the sidecar's fds and the test's "mappings"), by path. */
export function openRegions(): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`).replace(/ \(deleted\)$/, "");
      if (target.startsWith("/dev/shm/ctensors-")) out.add(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Region files in /dev/shm (not the sidecars' liveness sockets, not the Python tests' fake regions). */
export function shmFiles(): Set<string> {
  return new Set(
    readdirSync("/dev/shm")
      .filter((n) => REGION_NAME.test(n))
      .map((n) => `/dev/shm/${n}`),
  );
}

export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface LoadResult {
  tensors: Map<string, Buffer>;
  readies: RegionReady[];
  done: { tensors: number; bytes: number };
  /** Most regions held open at once (sampled at every RegionReady). */
  maxOpenRegions: number;
  paths: string[];
}

export interface LoadOptions {
  /** Called on each RegionReady before the driver acts; return "stop" to take over (the driver then does nothing more). */
  // biome-ignore lint/suspicious/noConfusingVoidType: callbacks either return nothing or "stop"
  onReady?: (ready: RegionReady, call: ClientDuplexStream<object, any>) => "stop" | void;
  /** Prefixed to every region path before the driver opens it: `/proc/<pid>/root` reads a /dev/shm of another mount namespace. */
  shmRoot?: string;
}

/** Runs one Load as a well-behaved client would, reading every tensor out of shared memory. */
export function runLoad(client: SidecarClient, md: Metadata, start: Partial<LoadStart>, options: LoadOptions = {}): Promise<LoadResult> {
  const streaming = start.mode === "LOAD_MODE_STREAMING";
  return new Promise((resolve, reject) => {
    const call = client.Load!(md) as ClientDuplexStream<object, any>;
    const fds = new Map<number, number>();
    const result: LoadResult = { tensors: new Map(), readies: [], done: undefined as never, maxOpenRegions: 0, paths: [] };
    let stopped = false;
    let problem: unknown = null;
    const closeFds = () => {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
    };
    call.on("data", (msg: { ready?: RegionReady; done?: LoadResult["done"] }) => {
      if (stopped || problem) return;
      try {
        if (msg.ready) {
          const ready = msg.ready;
          result.readies.push(ready);
          if (options.onReady?.(ready, call) === "stop") {
            stopped = true;
            return;
          }
          let whole: Buffer | null = null;
          if (ready.path) {
            expect(ready.path).toMatch(REGION_PATH);
            expect(fds.has(ready.region_id)).toBe(false);
            const path = (options.shmRoot ?? "") + ready.path;
            const st = statSync(path);
            expect(st.mode & 0o777).toBe(0o600);
            expect(st.size).toBe(ready.region_bytes);
            if (!streaming) whole = readFileSync(path); // before `mapped`: then the file is gone
            fds.set(ready.region_id, openSync(path, "r"));
            result.paths.push(ready.path);
            call.write({ mapped: { region_id: ready.region_id } });
          }
          const fd = fds.get(ready.region_id);
          if (fd === undefined) throw new Error(`region ${ready.region_id} came without a path and was never mapped`);
          expect(fstatSync(fd).size).toBe(ready.region_bytes);
          result.maxOpenRegions = Math.max(result.maxOpenRegions, openRegions().size);
          for (const p of ready.tensors) {
            expect(p.offset % 64).toBe(0);
            expect(p.offset + p.byte_size).toBeLessThanOrEqual(ready.region_bytes);
            let bytes: Buffer;
            if (whole) bytes = Buffer.from(whole.subarray(p.offset, p.offset + p.byte_size));
            else {
              bytes = Buffer.alloc(p.byte_size);
              if (p.byte_size) expect(readSync(fd, bytes, 0, p.byte_size, p.offset)).toBe(p.byte_size);
            }
            expect(result.tensors.has(p.name)).toBe(false);
            result.tensors.set(p.name, bytes);
          }
          if (streaming) call.write({ consumed: { region_id: ready.region_id } });
        } else if (msg.done) {
          result.done = msg.done;
          call.end();
        }
      } catch (err) {
        problem = err;
        call.cancel();
      }
    });
    call.on("error", () => {});
    call.on("status", (s: StatusObject) => {
      closeFds();
      if (problem) reject(problem);
      else if (s.code === status.OK) resolve(result);
      else reject(failureOf(s));
    });
    call.write({ start });
  });
}
