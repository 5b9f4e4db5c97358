// Small HTTP helpers for the development Hub: JSON answers, errors in the Hub's shape, bounded bodies.

import type { IncomingMessage, ServerResponse } from "node:http";
import { HubError } from "./hub-error.js";

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(data.length), ...headers });
  res.end(data);
}

/** Errors as the Hub answers them: JSON {error}, plus X-Error-Code / X-Error-Message headers. */
export function sendError(res: ServerResponse, err: HubError, head = false): void {
  const headers: Record<string, string> = { "X-Error-Message": err.message.replace(/[^\x20-\x7e]/g, "?") };
  if (err.code) headers["X-Error-Code"] = err.code;
  if (head) {
    res.writeHead(err.status, headers);
    res.end();
    return;
  }
  sendJson(res, err.status, { error: err.message, ...err.extra }, headers);
}

/** Reads a request body up to `limit` bytes (413 beyond). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw new HubError(413, `request body larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) throw new HubError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON body, or a form-encoded one (values stay strings; a repeated key gives an array). */
export async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const buf = await readBody(req, limit);
  const type = String(req.headers["content-type"] ?? "");
  if (type.startsWith("application/x-www-form-urlencoded")) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of new URLSearchParams(buf.toString("utf8"))) {
      if (k in out) {
        const prev = out[k];
        out[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
      } else out[k] = v;
    }
    return out;
  }
  if (buf.length === 0) return {};
  try {
    const v = JSON.parse(buf.toString("utf8")) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch {
    throw new HubError(400, "request body is not a JSON object");
  }
}

/** The bearer token of a request, if any. */
export function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m ? m[1] : undefined;
}
