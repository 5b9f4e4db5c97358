// Git LFS for the development Hub: the batch API (basic transfer only) and the upload/download hrefs it
// hands out. Like the Hub's pre-signed storage URLs, an href carries its own authorization (an HMAC over
// operation, oid, size and expiry, with a per-process secret): the clients send no Authorization header
// on the PUT. The PUT body is streamed to disk and hashed while streaming; it is stored under lfs/<sha256>
// only if the sha256 and the size match.

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendJson } from "./http.js";
import { HubError } from "./hub-error.js";
import { validLfsOid } from "./names.js";
import type { Storage } from "./storage.js";

const HREF_TTL_S = 3600;

export class Lfs {
  private readonly secret = randomBytes(32);

  constructor(private readonly storage: Storage) {}

  private sign(op: string, oid: string, size: number, exp: number): string {
    return createHmac("sha256", this.secret).update(`${op}\n${oid}\n${size}\n${exp}`).digest("hex");
  }

  href(base: string, op: "upload" | "download", oid: string, size: number): string {
    const exp = Math.floor(Date.now() / 1000) + HREF_TTL_S;
    return `${base}/__lfs/${op}/${oid}?size=${size}&exp=${exp}&sig=${this.sign(op, oid, size, exp)}`;
  }

  /** Checks an href's signature; returns the size it was issued for. */
  checkHref(op: "upload" | "download", oid: string, query: URLSearchParams): number {
    const size = Number(query.get("size"));
    const exp = Number(query.get("exp"));
    const sig = query.get("sig") ?? "";
    const want = Buffer.from(this.sign(op, oid, size, exp));
    const got = Buffer.from(sig);
    if (!validLfsOid(oid) || !Number.isSafeInteger(size) || size < 0 || got.length !== want.length || !timingSafeEqual(got, want)) {
      throw new HubError(403, "invalid or missing LFS href signature");
    }
    if (exp < Date.now() / 1000) throw new HubError(403, "LFS href expired");
    return size;
  }

  /** POST {repo}.git/info/lfs/objects/batch (authorization and repo checks are the caller's). */
  async batch(body: Record<string, unknown>, base: string, res: ServerResponse): Promise<void> {
    const operation = body.operation;
    if (operation !== "upload" && operation !== "download") throw new HubError(422, "operation must be upload or download");
    const transfers = Array.isArray(body.transfers) ? body.transfers : ["basic"];
    if (!transfers.includes("basic")) throw new HubError(422, "only the basic transfer is supported");
    if (!Array.isArray(body.objects)) throw new HubError(422, "objects must be an array");
    const objects = [];
    for (const o of body.objects as Array<{ oid?: unknown; size?: unknown }>) {
      const oid = String(o?.oid ?? "");
      const size = Number(o?.size);
      if (!validLfsOid(oid) || !Number.isSafeInteger(size) || size < 0) {
        objects.push({ oid, size, error: { code: 422, message: "invalid oid or size" } });
        continue;
      }
      const have = await this.storage.lfsSize(oid);
      if (operation === "upload") {
        if (have === size) objects.push({ oid, size });
        else
          objects.push({
            oid,
            size,
            authenticated: true,
            actions: { upload: { href: this.href(base, "upload", oid, size), expires_in: HREF_TTL_S } },
          });
      } else if (have === undefined) {
        objects.push({ oid, size, error: { code: 404, message: "Object does not exist" } });
      } else {
        objects.push({
          oid,
          size: have,
          authenticated: true,
          actions: { download: { href: this.href(base, "download", oid, have), expires_in: HREF_TTL_S } },
        });
      }
    }
    sendJson(res, 200, { transfer: "basic", objects, hash_algo: "sha256" }, { "Content-Type": "application/vnd.git-lfs+json" });
  }

  /** PUT /__lfs/upload/<oid>?size&exp&sig */
  async put(oid: string, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const size = this.checkHref("upload", oid, query);
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) !== size) {
      req.resume();
      throw new HubError(400, `Content-Length ${declared} does not match the announced size ${size}`);
    }
    if ((await this.storage.lfsSize(oid)) === size) {
      req.resume();
      await new Promise((r) => req.on("end", r));
    } else {
      const problem = await this.storage.putLfs(oid, size, req);
      if (problem) throw new HubError(400, problem);
    }
    res.writeHead(200, { ETag: `"${oid}"`, "Content-Length": "0" });
    res.end();
  }
}
