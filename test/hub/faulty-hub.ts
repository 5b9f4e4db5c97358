// Loopback servers for fault injection against the Hub client: a proxy in front of the development Hub
// that can stall or cut file downloads, and a bare server whose every answer the test writes (a
// hostile Hub).

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Loopback {
  url: string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<Loopback> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What the proxy does with the body of one file download (a GET of /resolve/ that is not the 1-byte size probe). */
export interface FileFault {
  /** Cut the connection once this many bytes of the body have been sent. */
  dropAfter?: number;
  /** Hold the body for `ms` once `bytes` have been sent. */
  stall?: { bytes: number; ms: number };
}

export interface FaultyProxy extends Loopback {
  /** Decides the fault of each file download (by URL path); undefined = pass through. */
  fault: (path: string) => FileFault | undefined;
  /** "<status> <path> <range>" of every file download that went through. */
  downloads: string[];
}

export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  const upstream = new URL(target);
  const proxy: FaultyProxy = { url: "", close: async () => {}, fault: () => undefined, downloads: [] };
  const server = createServer((req, res) => {
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const path = (req.url ?? "").split("?")[0]!;
        const isFile = req.method === "GET" && path.includes("/resolve/") && req.headers.range !== "bytes=0-0";
        if (isFile) proxy.downloads.push(`${answer.statusCode} ${path} ${req.headers.range ?? "-"}`);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const fault = isFile ? proxy.fault(path) : undefined;
        if (!fault) return void answer.pipe(res);
        void relay(answer, res, fault);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  const lb = await listen(server);
  proxy.url = lb.url;
  proxy.close = lb.close;
  return proxy;
}

async function relay(from: IncomingMessage, to: ServerResponse, fault: FileFault): Promise<void> {
  let sent = 0;
  for await (const chunk of from as AsyncIterable<Buffer>) {
    let part = chunk;
    if (fault.dropAfter !== undefined && sent + part.length >= fault.dropAfter) {
      part = part.subarray(0, fault.dropAfter - sent);
      to.write(part);
      // Let the bytes go out, then cut the connection mid-body.
      await new Promise((r) => setTimeout(r, 50));
      to.socket?.destroy();
      from.destroy();
      return;
    }
    if (fault.stall && sent < fault.stall.bytes && sent + part.length >= fault.stall.bytes) {
      const cut = fault.stall.bytes - sent;
      to.write(part.subarray(0, cut));
      sent += cut;
      await new Promise((r) => setTimeout(r, fault.stall!.ms));
      part = part.subarray(cut);
    }
    sent += part.length;
    to.write(part);
  }
  to.end();
}

/** A server that answers every request with `handle` (a hostile Hub written by the test). */
export async function startHostileHub(
  handle: (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>,
): Promise<Loopback> {
  const server = createServer((req, res) => {
    void Promise.resolve(handle(req, res, new URL(req.url ?? "/", "http://x"))).catch(() => res.destroy());
  });
  return listen(server);
}
