// The development Hub's HTTP server: a local, Hub-compatible stand-in for huggingface.co that the real
// @huggingface/hub and Python huggingface_hub clients talk to (for tests and demos; not a Hub replacement).

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Lfs } from "./lfs.js";
import { Repos } from "./repos.js";
import { Router } from "./routes.js";
import { Storage } from "./storage.js";

export interface DevHubOptions {
  /** TCP port; 0 (default) = an ephemeral port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Where repos, commits and file contents are stored (created if missing). */
  dataDir: string;
  /**
   * When set, every write and every read of a private repo needs `Authorization: Bearer <token>`.
   * @huggingface/hub only sends tokens that start with "hf_". Unset = dev mode: anonymous writes accepted.
   */
  token?: string;
  /** User name returned by whoami-v2 and used as the default namespace (default "dev"). */
  user?: string;
  /** One line per request and the startup warnings; default: silent. */
  log?: (line: string) => void;
  /** Entries per page of the tree listing (default 1000). */
  treePageSize?: number;
}

export interface DevHub {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The request handler of a development Hub over `opts.dataDir`, without a server (for a server of
 * one's own, or to drive the routes in-process). `router.handle(req, res)` answers one request.
 */
export async function createRouter(opts: Omit<DevHubOptions, "port" | "host" | "log">): Promise<Router> {
  if (!opts.dataDir) throw new TypeError("startDevHub: dataDir is required");
  const storage = new Storage(opts.dataDir);
  await storage.init();
  const treePageSize = opts.treePageSize ?? 1000;
  if (!Number.isSafeInteger(treePageSize) || treePageSize < 1) throw new TypeError("startDevHub: treePageSize must be a positive integer");
  return new Router({
    storage,
    repos: new Repos(storage),
    lfs: new Lfs(storage),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    user: opts.user ?? "dev",
    treePageSize,
  });
}

export async function startDevHub(opts: DevHubOptions): Promise<DevHub> {
  const host = opts.host ?? "127.0.0.1";
  const log = opts.log ?? (() => {});
  const router = await createRouter(opts);
  if (opts.token === undefined) log("dev-hub: warning: no token set, anonymous writes are accepted (development mode)");

  const server = createServer((req, res) => {
    const started = Date.now();
    let bytes = 0;
    const write = res.write.bind(res);
    const countChunk = (chunk: unknown) => {
      if (typeof chunk === "string") bytes += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) bytes += chunk.length;
    };
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      countChunk(chunk);
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
    const end = res.end.bind(res);
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== "function") countChunk(chunk);
      return (end as (...a: unknown[]) => typeof res)(chunk, ...rest);
    }) as typeof res.end;
    res.on("close", () => {
      log(`${req.method} ${(req.url ?? "").replace(/sig=[0-9a-f]+/, "sig=…")} ${res.statusCode} ${bytes}B ${Date.now() - started}ms`);
    });
    void router.handle(req, res);
  });
  server.requestTimeout = 0; // large uploads
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
