// Request routing and handlers of the development Hub (the Hub HTTP API subset that @huggingface/hub and
// Python huggingface_hub use; see docs/dev-hub.md).

import type { IncomingMessage, ServerResponse } from "node:http";
import { changesOf, commitInfoOf, parseCommitBody } from "./commit-request.js";
import { bearer, readBody, readJson, sendError, sendJson } from "./http.js";
import { entryNotFound, HubError, repoNotFound } from "./hub-error.js";
import type { Lfs } from "./lfs.js";
import { fileAt, lfsPointer, listTree, type Change, type Commit, type FileEntry, type RepoMeta, type RepoType } from "./model.js";
import { repoIdOfFields, repoTypeOfField, repoTypeOfSegment, validBranchName, validPath } from "./names.js";
import { branchHead, repoObjectId, type Repos } from "./repos.js";
import type { Storage } from "./storage.js";

/** Files at least this large are uploaded with LFS, whatever their name. */
export const LFS_SIZE_THRESHOLD = 10 * 1024 * 1024;
/** File names uploaded with LFS (a subset of the Hub's default .gitattributes). */
export const LFS_EXTENSIONS = [
  ".safetensors",
  ".cryptotensors",
  ".bin",
  ".onnx",
  ".onnx_data",
  ".pt",
  ".pth",
  ".ckpt",
  ".h5",
  ".msgpack",
  ".gguf",
  ".npy",
  ".npz",
  ".pkl",
  ".pickle",
  ".tflite",
  ".ot",
  ".arrow",
  ".parquet",
  ".zip",
  ".tar",
  ".gz",
  ".7z",
  ".zst",
  ".xz",
  ".bz2",
  ".tgz",
  ".model",
  ".wasm",
  ".joblib",
  ".pb",
  ".mlmodel",
];
export const MAX_COMMIT_BODY = 64 * 1024 * 1024;
const MAX_JSON_BODY = 16 * 1024 * 1024;

export interface HubContext {
  storage: Storage;
  repos: Repos;
  lfs: Lfs;
  /** Token required for writes and private reads; undefined = dev mode (anonymous writes accepted). */
  token?: string;
  user: string;
  treePageSize: number;
}

/** Whether an upload goes through LFS: by extension, by size (≥ 10 MiB), or binary content (a NUL byte in the sample). */
export function uploadMode(path: string, size: number, sample?: Buffer): "lfs" | "regular" {
  const lower = path.toLowerCase();
  if (LFS_EXTENSIONS.some((e) => lower.endsWith(e))) return "lfs";
  if (size >= LFS_SIZE_THRESHOLD) return "lfs";
  if (sample?.includes(0)) return "lfs";
  return "regular";
}

type Auth = "anonymous" | "valid";

/** The answer to the Xet token endpoints: this server stores files through LFS only. */
export const XET_UNSUPPORTED =
  "the development Hub does not implement Xet storage: set HF_HUB_DISABLE_XET=1 so that huggingface_hub (hf upload, upload_file, upload_folder) uploads through LFS";

export class Router {
  constructor(private readonly ctx: HubContext) {}

  /** Handles one request; errors become Hub-shaped JSON answers. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === "HEAD";
    try {
      await this.route(req, res);
    } catch (err) {
      if (res.headersSent) {
        res.destroy(err as Error);
        return;
      }
      if (err instanceof HubError) sendError(res, err, head);
      else sendError(res, new HubError(500, `internal error: ${(err as Error).message}`), head);
    }
  }

  private auth(req: IncomingMessage): Auth {
    const t = bearer(req);
    if (this.ctx.token === undefined) return req.headers.authorization ? "valid" : "anonymous"; // dev mode
    if (t === undefined) {
      if (req.headers.authorization) throw new HubError(401, "Invalid credentials in Authorization header");
      return "anonymous";
    }
    if (t !== this.ctx.token) throw new HubError(401, "Invalid credentials in Authorization header");
    return "valid";
  }

  private requireWrite(auth: Auth): void {
    if (this.ctx.token !== undefined && auth !== "valid")
      throw new HubError(401, "You must be authenticated to write: pass a token (Authorization: Bearer ...)");
  }

  /** The repo for a read: private repos (and unknown ones, so as not to tell them apart) answer 401 to anonymous callers. */
  private async readable(type: RepoType, id: string, auth: Auth): Promise<RepoMeta> {
    const meta = await this.ctx.repos.get(type, id);
    const hide = this.ctx.token !== undefined && auth !== "valid";
    if (!meta || (meta.private && hide)) {
      if (hide) throw new HubError(401, "Repository not found", "RepoNotFound");
      throw repoNotFound();
    }
    return meta;
  }

  private async writable(type: RepoType, id: string, auth: Auth): Promise<RepoMeta> {
    this.requireWrite(auth);
    const meta = await this.ctx.repos.get(type, id);
    if (!meta) throw repoNotFound();
    return meta;
  }

  private base(req: IncomingMessage): string {
    return `http://${req.headers.host ?? "127.0.0.1"}`;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    let segs: string[];
    try {
      // The request target is a path: "//host/..." must stay a path, not become a protocol-relative URL.
      const target = req.url ?? "/";
      url = target.startsWith("/") ? new URL(`http://x${target}`) : new URL(target, "http://x");
      segs = url.pathname.split("/").slice(1).map(decodeURIComponent);
    } catch {
      throw new HubError(400, "malformed URL");
    }
    if (segs.at(-1) === "" && segs.length > 1) segs = segs.slice(0, -1);
    const m = req.method ?? "GET";

    if (segs[0] === "__lfs" && segs.length === 3) {
      if (segs[1] === "upload" && m === "PUT") return this.ctx.lfs.put(segs[2]!, url.searchParams, req, res);
      if (segs[1] === "download" && (m === "GET" || m === "HEAD")) {
        const size = this.ctx.lfs.checkHref("download", segs[2]!, url.searchParams);
        return this.sendFile(req, res, this.ctx.storage.lfsPath(segs[2]!), size, {});
      }
      throw new HubError(405, "method not allowed");
    }

    const auth = this.auth(req);

    if (segs[0] === "api") {
      if (segs[1] === "whoami-v2" && segs.length === 2 && m === "GET") return this.whoami(auth, res);
      // Python huggingface_hub ≥ 2 fetches this registry once a day (agent detection); an empty one disables it.
      if (segs[1] === "agent-harnesses" && segs.length === 2 && m === "GET")
        return sendJson(res, 200, { standardEnvVars: [], harnesses: {} });
      if (segs[1] === "repos" && segs[2] === "create" && segs.length === 3 && m === "POST") return this.createRepo(req, res, auth);
      if (segs[1] === "repos" && segs[2] === "delete" && segs.length === 3 && m === "DELETE") return this.deleteRepo(req, res, auth);
      const type = repoTypeOfSegment(segs[1]);
      if (type && segs.length >= 4) return this.api(req, res, auth, type, `${segs[2]}/${segs[3]}`, segs.slice(4), url);
      throw new HubError(404, `no such endpoint: ${m} ${url.pathname}`);
    }

    // {org}/{name}.git/info/lfs/objects/batch, datasets/… and spaces/… likewise
    let rest = segs;
    let type: RepoType = "model";
    if ((segs[0] === "datasets" || segs[0] === "spaces") && segs.length >= 5) {
      type = repoTypeOfSegment(segs[0])!;
      rest = segs.slice(1);
    }
    if (rest.length === 6 && rest[1]!.endsWith(".git") && rest.slice(2).join("/") === "info/lfs/objects/batch" && m === "POST") {
      const id = `${rest[0]}/${rest[1]!.slice(0, -4)}`;
      const body = await readJson(req, MAX_JSON_BODY);
      if (body.operation === "upload") await this.writable(type, id, auth);
      else await this.readable(type, id, auth);
      return this.ctx.lfs.batch(body, this.base(req), res);
    }
    if (rest.length >= 5 && (rest[2] === "resolve" || rest[2] === "raw") && (m === "GET" || m === "HEAD")) {
      return this.resolveFile(req, res, auth, type, `${rest[0]}/${rest[1]}`, rest[3]!, rest.slice(4).join("/"), rest[2] === "raw");
    }
    throw new HubError(404, `no such endpoint: ${m} ${url.pathname}`);
  }

  private whoami(auth: Auth, res: ServerResponse): void {
    if (auth !== "valid") throw new HubError(401, "Invalid credentials in Authorization header");
    sendJson(res, 200, {
      type: "user",
      id: repoObjectId("model", `user/${this.ctx.user}`),
      name: this.ctx.user,
      fullname: this.ctx.user,
      email: null,
      emailVerified: false,
      canPay: false,
      isPro: false,
      periodEnd: null,
      avatarUrl: "",
      orgs: [],
      auth: { type: "access_token", accessToken: { displayName: "dev-hub", role: "write", createdAt: new Date(0).toISOString() } },
    });
  }

  private async createRepo(req: IncomingMessage, res: ServerResponse, auth: Auth): Promise<void> {
    this.requireWrite(auth);
    const body = await readJson(req, MAX_JSON_BODY);
    const type = repoTypeOfField(body.type);
    const id = repoIdOfFields(body.organization, body.name, this.ctx.user);
    const isPrivate = body.visibility !== undefined ? body.visibility === "private" : body.private === true;
    const prefix = type === "model" ? "" : `${type}s/`;
    const repoUrl = `${this.base(req)}/${prefix}${id}`;
    try {
      await this.ctx.repos.create(type, id, isPrivate, this.ctx.user);
    } catch (err) {
      if (err instanceof HubError && err.status === 409) throw new HubError(409, err.message, err.code, { url: repoUrl });
      throw err;
    }
    sendJson(res, 200, { url: repoUrl, name: id, id: repoObjectId(type, id) });
  }

  private async deleteRepo(req: IncomingMessage, res: ServerResponse, auth: Auth): Promise<void> {
    this.requireWrite(auth);
    const body = await readJson(req, MAX_JSON_BODY);
    await this.ctx.repos.remove(repoTypeOfField(body.type), repoIdOfFields(body.organization, body.name, this.ctx.user));
    sendJson(res, 200, {});
  }

  private async api(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Auth,
    type: RepoType,
    id: string,
    rest: string[],
    url: URL,
  ): Promise<void> {
    const m = req.method ?? "GET";
    const [op, rev] = rest;
    if (rest.length === 0 && m === "GET") return this.info(res, await this.readable(type, id, auth), "main");
    if (op === "revision" && rest.length === 2 && m === "GET") return this.info(res, await this.readable(type, id, auth), rev!);
    if (op === "tree" && rest.length >= 2 && m === "GET")
      return this.tree(req, res, await this.readable(type, id, auth), rev!, rest.slice(2).join("/"), url);
    if (op === "paths-info" && rest.length === 2 && m === "POST")
      return this.pathsInfo(req, res, await this.readable(type, id, auth), rev!);
    if (op === "commits" && rest.length === 2 && m === "GET") return this.commits(req, res, await this.readable(type, id, auth), rev!, url);
    if (op === "refs" && rest.length === 1 && m === "GET") return this.refs(res, await this.readable(type, id, auth));
    if (op === "preupload" && rest.length === 2 && m === "POST")
      return this.preupload(req, res, await this.writable(type, id, auth), rev!, url);
    if (op === "commit" && rest.length === 2 && m === "POST") return this.commit(req, res, await this.writable(type, id, auth), rev!, url);
    if ((op === "xet-write-token" || op === "xet-read-token") && rest.length === 2) {
      // Python huggingface_hub uploads through Xet whenever hf_xet is installed, with no fallback to
      // LFS: 501 (not a 404, which reads as a missing repo), with the fix in the message for clients
      // that show it (hf_xet shows only the status; docs/dev-hub.md says HF_HUB_DISABLE_XET=1).
      await this.readable(type, id, auth);
      throw new HubError(501, XET_UNSUPPORTED);
    }
    if (op === "branch" && rest.length === 2 && m === "POST") {
      const meta = await this.writable(type, id, auth);
      const body = await readJson(req, MAX_JSON_BODY);
      const opts: { startingPoint?: string; empty?: boolean; overwrite?: boolean; author: string } = { author: this.ctx.user };
      if (typeof body.startingPoint === "string") opts.startingPoint = body.startingPoint;
      if (body.emptyBranch === true) opts.empty = true;
      if (body.overwrite === true) opts.overwrite = true;
      if (!validBranchName(rev)) throw new HubError(400, `invalid branch name ${JSON.stringify(rev)}`);
      await this.ctx.repos.createBranch(meta, rev!, opts);
      return sendJson(res, 200, {});
    }
    if (op === "branch" && rest.length === 2 && m === "DELETE") {
      await this.ctx.repos.deleteBranch(await this.writable(type, id, auth), rev!);
      return sendJson(res, 200, {});
    }
    throw new HubError(404, `no such endpoint: ${m} ${url.pathname}`);
  }

  private async info(res: ServerResponse, meta: RepoMeta, rev: string): Promise<void> {
    const c = await this.ctx.repos.resolve(meta, rev);
    const [author] = meta.id.split("/");
    const body: Record<string, unknown> = {
      _id: repoObjectId(meta.type, meta.id),
      id: meta.id,
      author,
      sha: c.id,
      private: meta.private,
      gated: false,
      disabled: false,
      downloads: 0,
      likes: 0,
      tags: [],
      createdAt: meta.createdAt,
      lastModified: c.date,
      siblings: Object.keys(c.tree)
        .sort()
        .map((p) => {
          const e = c.tree[p]!;
          return {
            rfilename: p,
            size: e.size,
            blobId: e.oid,
            ...(e.lfs ? { lfs: { sha256: e.lfs.oid, size: e.lfs.size, pointerSize: e.lfs.pointerSize } } : {}),
          };
        }),
      usedStorage: Object.values(c.tree).reduce((n, e) => n + e.size, 0),
    };
    if (meta.type === "model") {
      body.modelId = meta.id;
      body.library_name = null;
      body.pipeline_tag = null;
    }
    if (meta.type === "space") body.sdk = "static";
    sendJson(res, 200, body);
  }

  private async renderEntry(
    meta: RepoMeta,
    c: Commit,
    item: { type: "file" | "directory"; path: string; entry?: FileEntry; oid: string },
    expand: boolean,
  ): Promise<Record<string, unknown>> {
    if (item.type === "directory") return { type: "directory", oid: item.oid, size: 0, path: item.path };
    const e = item.entry!;
    const out: Record<string, unknown> = { type: "file", oid: e.oid, size: e.size, path: item.path };
    if (e.lfs) out.lfs = { oid: e.lfs.oid, size: e.lfs.size, pointerSize: e.lfs.pointerSize };
    if (expand) {
      const last = (await this.ctx.repos.commit(meta, e.lastCommit)) ?? c;
      out.lastCommit = { id: last.id, title: last.title, date: last.date };
    }
    return out;
  }

  private async tree(req: IncomingMessage, res: ServerResponse, meta: RepoMeta, rev: string, dir: string, url: URL): Promise<void> {
    const c = await this.ctx.repos.resolve(meta, rev);
    if (dir && !validPath(dir)) throw entryNotFound(dir);
    const recursive = url.searchParams.get("recursive")?.toLowerCase() === "true" || url.searchParams.get("recursive") === "1";
    const expand = url.searchParams.get("expand")?.toLowerCase() === "true" || url.searchParams.get("expand") === "1";
    const items = listTree(c, dir, recursive);
    if (!items) throw entryNotFound(dir);
    const limitParam = Number(url.searchParams.get("limit"));
    const pageSize =
      Number.isSafeInteger(limitParam) && limitParam > 0 ? Math.min(limitParam, this.ctx.treePageSize) : this.ctx.treePageSize;
    const cursor = url.searchParams.get("cursor");
    const start = cursor ? Number(Buffer.from(cursor, "base64url").toString("utf8")) : 0;
    if (!Number.isSafeInteger(start) || start < 0) throw new HubError(400, "invalid cursor");
    const page = items.slice(start, start + pageSize);
    const headers: Record<string, string> = {};
    if (start + pageSize < items.length) {
      const next = new URL(url.pathname + url.search, this.base(req));
      next.searchParams.set("cursor", Buffer.from(String(start + pageSize)).toString("base64url"));
      headers.Link = `<${next.href}>; rel="next"`;
    }
    sendJson(res, 200, await Promise.all(page.map((i) => this.renderEntry(meta, c, i, expand))), headers);
  }

  private async pathsInfo(req: IncomingMessage, res: ServerResponse, meta: RepoMeta, rev: string): Promise<void> {
    const c = await this.ctx.repos.resolve(meta, rev);
    const body = await readJson(req, MAX_JSON_BODY);
    const paths = body.paths === undefined ? [] : Array.isArray(body.paths) ? body.paths : [body.paths];
    const expand = body.expand === true || String(body.expand).toLowerCase() === "true" || body.expand === "1";
    const out = [];
    for (const p of paths) {
      if (typeof p !== "string") throw new HubError(400, "paths must be strings");
      const path = p.replace(/^\/+|\/+$/g, "");
      const file = fileAt(c, path);
      if (file) out.push(await this.renderEntry(meta, c, { type: "file", path, entry: file, oid: file.oid }, expand));
      else if (path && validPath(path)) {
        const parent = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
        const dir = listTree(c, parent, false)?.find((i) => i.path === path && i.type === "directory");
        if (dir) out.push(await this.renderEntry(meta, c, dir, expand));
      }
    }
    sendJson(res, 200, out);
  }

  private async commits(req: IncomingMessage, res: ServerResponse, meta: RepoMeta, rev: string, url: URL): Promise<void> {
    const head = await this.ctx.repos.resolve(meta, rev);
    const all = await this.ctx.repos.history(meta, head);
    const limitParam = Number(url.searchParams.get("limit"));
    const limit = Number.isSafeInteger(limitParam) && limitParam > 0 ? Math.min(limitParam, 1000) : 50;
    const p = Number(url.searchParams.get("p") ?? 0);
    const page = Number.isSafeInteger(p) && p >= 0 ? p : 0;
    const slice = all.slice(page * limit, (page + 1) * limit);
    const headers: Record<string, string> = { "X-Total-Count": String(all.length) };
    if ((page + 1) * limit < all.length) {
      const next = new URL(url.pathname + url.search, this.base(req));
      next.searchParams.set("p", String(page + 1));
      headers.Link = `<${next.href}>; rel="next"`;
    }
    sendJson(
      res,
      200,
      slice.map((c) => ({
        id: c.id,
        title: c.title,
        message: c.message,
        date: c.date,
        parents: c.parents,
        authors: [{ user: c.author, avatar: "" }],
      })),
      headers,
    );
  }

  private refs(res: ServerResponse, meta: RepoMeta): void {
    sendJson(res, 200, {
      branches: Object.entries(meta.branches).map(([name, sha]) => ({ name, ref: `refs/heads/${name}`, targetCommit: sha })),
      tags: [],
      converts: [],
    });
  }

  private async preupload(req: IncomingMessage, res: ServerResponse, meta: RepoMeta, rev: string, url: URL): Promise<void> {
    if (url.searchParams.get("create_pr")) throw new HubError(400, "pull requests are not supported by the development Hub");
    await this.ctx.repos.resolve(meta, rev);
    const body = await readJson(req, MAX_JSON_BODY);
    if (!Array.isArray(body.files)) throw new HubError(400, "files must be an array");
    const files = (body.files as Array<{ path?: unknown; size?: unknown; sample?: unknown }>).map((f) => {
      const path = String(f?.path ?? "");
      if (!validPath(path)) throw new HubError(400, `invalid path ${JSON.stringify(path)}`);
      const size = Number(f?.size ?? 0);
      const sample = typeof f?.sample === "string" ? Buffer.from(f.sample, "base64") : undefined;
      return { path, uploadMode: uploadMode(path, size, sample), shouldIgnore: false };
    });
    sendJson(res, 200, { files, commitOid: branchHead(meta, rev) ?? null });
  }

  private async commit(req: IncomingMessage, res: ServerResponse, meta: RepoMeta, branch: string, url: URL): Promise<void> {
    if (url.searchParams.get("create_pr")) throw new HubError(400, "pull requests are not supported by the development Hub");
    const lines = parseCommitBody(await readBody(req, MAX_COMMIT_BODY), String(req.headers["content-type"] ?? ""));
    const changes = await changesOf(lines, this.ctx.storage);
    await this.refuseMissingDeletes(meta, branch, changes);
    const c = await this.ctx.repos.commitChanges(meta, branch, changes, commitInfoOf(lines, this.ctx.user));
    const prefix = meta.type === "model" ? "" : `${meta.type}s/`;
    sendJson(res, 200, {
      success: true,
      commitOid: c.id,
      commitUrl: `${this.base(req)}/${prefix}${meta.id}/commit/${c.id}`,
      pullRequestUrl: null,
      hookOutput: "",
    });
  }

  /** Deleting a file that does not exist is an error on the Hub. */
  private async refuseMissingDeletes(meta: RepoMeta, branch: string, changes: Change[]): Promise<void> {
    const head = await this.ctx.repos.resolve(meta, branch);
    for (const ch of changes) if (ch.kind === "delete" && !fileAt(head, ch.path)) throw entryNotFound(ch.path);
  }

  private async resolveFile(
    req: IncomingMessage,
    res: ServerResponse,
    auth: Auth,
    type: RepoType,
    id: string,
    rev: string,
    path: string,
    raw: boolean,
  ): Promise<void> {
    const meta = await this.readable(type, id, auth);
    const c = await this.ctx.repos.resolve(meta, rev);
    const e = validPath(path) ? fileAt(c, path) : undefined;
    if (!e) throw entryNotFound(path);
    const headers: Record<string, string> = { "X-Repo-Commit": c.id, "Content-Type": "application/octet-stream" };
    if (e.lfs && raw) {
      // raw/ serves the LFS pointer, like the Hub
      const pointer = Buffer.from(lfsPointer(e.lfs.oid, e.lfs.size));
      headers.ETag = `"${e.oid}"`;
      return this.sendBuffer(req, res, pointer, headers);
    }
    if (e.lfs) {
      headers.ETag = `"${e.lfs.oid}"`;
      headers["X-Linked-ETag"] = `"${e.lfs.oid}"`;
      headers["X-Linked-Size"] = String(e.lfs.size);
      return this.sendFile(req, res, this.ctx.storage.lfsPath(e.lfs.oid), e.size, headers);
    }
    headers.ETag = `"${e.oid}"`;
    return this.sendFile(req, res, this.ctx.storage.objectPath(e.oid), e.size, headers);
  }

  private sendBuffer(req: IncomingMessage, res: ServerResponse, data: Buffer, headers: Record<string, string>): void {
    res.writeHead(200, { ...headers, "Content-Length": String(data.length), "Accept-Ranges": "bytes" });
    res.end(req.method === "HEAD" ? undefined : data);
  }

  /** Streams a file from disk, honouring a single `Range: bytes=…` (206 / 416). */
  private async sendFile(
    req: IncomingMessage,
    res: ServerResponse,
    file: string,
    size: number,
    headers: Record<string, string>,
  ): Promise<void> {
    const range = parseRange(req.headers.range, size);
    const head = req.method === "HEAD";
    if (range === "unsatisfiable") {
      if (size === 0) {
        // An empty file answers any range with its (empty) content; the Content-Range tells ranged probes its size.
        res.writeHead(200, { ...headers, "Accept-Ranges": "bytes", "Content-Length": "0", "Content-Range": "bytes */0" });
        res.end();
        return;
      }
      res.writeHead(416, { ...headers, "Content-Range": `bytes */${size}`, "Content-Length": "0" });
      res.end();
      return;
    }
    const [start, end] = range ?? [0, size - 1];
    const status = range ? 206 : 200;
    const out: Record<string, string> = {
      ...headers,
      "Accept-Ranges": "bytes",
      "Content-Length": String(size === 0 ? 0 : end - start + 1),
    };
    if (range) out["Content-Range"] = `bytes ${start}-${end}/${size}`;
    res.writeHead(status, out);
    if (head || size === 0) {
      res.end();
      return;
    }
    const stream = this.ctx.storage.openRead(file, start, end);
    await new Promise<void>((resolve) => {
      stream.on("error", (err) => {
        res.destroy(err);
        resolve();
      });
      res.on("close", () => {
        stream.destroy();
        resolve();
      });
      stream.pipe(res);
    });
  }
}

/** A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; undefined = no (or an ignored multi-) range. */
export function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === "" && b === "") return undefined;
  let start: number;
  let end: number;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "unsatisfiable";
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== "" && Number(b) < start) return undefined;
  }
  if (start >= size) return "unsatisfiable";
  return [start, end];
}
