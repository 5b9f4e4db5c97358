// The local development Hub (plugin/src/hub/dev-hub) driven by the real @huggingface/hub client.
// huggingface.co is unreachable here: this server is a local stand-in for it, speaking the subset of the
// Hub HTTP API that @huggingface/hub and Python huggingface_hub use (docs/dev-hub.md). Every test talks
// to a server on an ephemeral port over real HTTP.

import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { join } from "node:path";
import {
  createBranch,
  createRepo,
  deleteBranch,
  deleteRepo,
  downloadFile,
  downloadFileToCacheDir,
  listCommits,
  listFiles,
  modelInfo,
  pathsInfo,
  snapshotDownload,
  uploadFiles,
  uploadFilesWithProgress,
  whoAmI,
  type ListFileEntry,
} from "@huggingface/hub";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startDevHub, uploadMode, type DevHub } from "../src/hub/dev-hub/index.js";
import { repoIdOfFields, repoTypeOfField, repoTypeOfSegment, validBranchName, validPath } from "../src/hub/dev-hub/names.js";
import { Storage } from "../src/hub/dev-hub/storage.js";
import { execa } from "execa";
import { CLI, tempDir } from "./helpers.js";

const TOKEN = "hf_devhub_test";
const root = tempDir("ctensors-devhub-");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
const blob = (b: Uint8Array) => new Blob([b]);

// Files of the first commit: regular, LFS by extension, LFS by size (~20 MB), nested paths.
const config = new TextEncoder().encode(JSON.stringify({ model_type: "toy", hidden: 4 }));
const weights = new Uint8Array(randomBytes(100_000));
const big = new Uint8Array(randomBytes(20 * 1024 * 1024 + 123));
const nested = new TextEncoder().encode("nested text\n");

let hub: DevHub;
let dataDir: string;
let commit1: string;
const repo = { type: "model" as const, name: "org/toy" };
const common = () => ({ hubUrl: hub.url, accessToken: TOKEN });

beforeAll(async () => {
  vi.spyOn(console, "debug").mockImplementation(() => {}); // downloadFileToCacheDir's "Downloading …" lines
  dataDir = join(root, "data");
  hub = await startDevHub({ port: 0, dataDir, token: TOKEN, treePageSize: 2 });
  await createRepo({ ...common(), repo });
  const events = [];
  for await (const ev of uploadFilesWithProgress({
    ...common(),
    repo,
    commitTitle: "first",
    useXet: false,
    files: [
      { path: "config.json", content: blob(config) },
      { path: "model.safetensors", content: blob(weights) },
      { path: "big/data.raw", content: blob(big) },
      { path: "a/b/c/notes.txt", content: blob(nested) },
    ],
  })) {
    events.push(ev);
  }
  const info = await modelInfo({ ...common(), name: repo.name, additionalFields: ["sha"] });
  commit1 = (info as { sha: string }).sha;
});

afterAll(async () => {
  await hub?.close();
});

describe("dev-hub with @huggingface/hub", () => {
  it("whoAmI answers with a valid token and refuses a wrong one", async () => {
    const me = await whoAmI({ ...common() });
    expect(me.name).toBe("dev");
    expect(me.type).toBe("user");
    await expect(whoAmI({ hubUrl: hub.url, accessToken: "hf_wrong" })).rejects.toMatchObject({ statusCode: 401 });
    expect((await fetch(`${hub.url}/api/whoami-v2`)).status).toBe(401);
  });

  it("createRepo answers 409 for an existing repo", async () => {
    await expect(createRepo({ ...common(), repo })).rejects.toMatchObject({ statusCode: 409 });
  });

  it("modelInfo returns the head commit and the files", async () => {
    const info = await modelInfo({ ...common(), name: repo.name, additionalFields: ["sha", "siblings"] });
    expect(info.name).toBe("org/toy");
    expect(info.private).toBe(false);
    expect((info as { sha: string }).sha).toMatch(/^[0-9a-f]{40}$/);
    const siblings = (info as unknown as { siblings: Array<{ rfilename: string }> }).siblings.map((s) => s.rfilename);
    expect(siblings).toEqual(["a/b/c/notes.txt", "big/data.raw", "config.json", "model.safetensors"]);
  });

  it("listFiles: recursive with expand, paginated (page size 2), LFS and regular entries", async () => {
    const entries: ListFileEntry[] = [];
    for await (const e of listFiles({ ...common(), repo, recursive: true, expand: true })) entries.push(e);
    expect(entries.map((e) => `${e.type}:${e.path}`)).toEqual([
      "directory:a",
      "directory:a/b",
      "directory:a/b/c",
      "file:a/b/c/notes.txt",
      "directory:big",
      "file:big/data.raw",
      "file:config.json",
      "file:model.safetensors",
    ]);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get("config.json")).toMatchObject({ size: config.length, oid: gitOid(config) });
    expect(byPath.get("config.json")!.lfs).toBeUndefined();
    expect(byPath.get("model.safetensors")!.lfs).toMatchObject({ oid: sha256(weights), size: weights.length });
    expect(byPath.get("big/data.raw")!.lfs).toMatchObject({ oid: sha256(big), size: big.length });
    expect(byPath.get("config.json")!.lastCommit).toMatchObject({ id: commit1, title: "first" });
    // non-recursive, in a folder
    const top: string[] = [];
    for await (const e of listFiles({ ...common(), repo, path: "a/b" })) top.push(`${e.type}:${e.path}`);
    expect(top).toEqual(["directory:a/b/c"]);
    // the Link header really paginates
    const res = await fetch(`${hub.url}/api/models/org/toy/tree/main?recursive=true`);
    expect(((await res.json()) as unknown[]).length).toBe(2);
    expect(res.headers.get("link")).toMatch(/^<http:\/\/.*cursor=.*>; rel="next"$/);
  });

  it("pathsInfo returns files and folders, skips missing paths", async () => {
    const info = await pathsInfo({ ...common(), repo, paths: ["model.safetensors", "a/b", "missing.txt"], expand: true });
    expect(info.map((i) => `${i.type}:${i.path}`)).toEqual(["file:model.safetensors", "directory:a/b"]);
    expect(info[0]!.lfs?.oid).toBe(sha256(weights));
    expect(info[0]!.lastCommit?.id).toBe(commit1);
  });

  it("downloadFile returns the uploaded bytes (regular, LFS, nested)", async () => {
    for (const [path, content] of [
      ["config.json", config],
      ["model.safetensors", weights],
      ["big/data.raw", big],
      ["a/b/c/notes.txt", nested],
    ] as const) {
      const b = await downloadFile({ ...common(), repo, path });
      expect(b, path).not.toBeNull();
      expect(sha256(new Uint8Array(await b!.arrayBuffer())), path).toBe(sha256(content));
    }
    expect(await downloadFile({ ...common(), repo, path: "nope.bin" })).toBeNull();
  });

  it("snapshotDownload and downloadFileToCacheDir write the HF cache layout", async () => {
    const cacheDir = join(root, "cache-js");
    const snap = await snapshotDownload({ ...common(), repo, cacheDir });
    const storage = join(cacheDir, "models--org--toy");
    expect(snap).toBe(join(storage, "snapshots", commit1));
    expect(readFileSync(join(storage, "refs", "main"), "utf8")).toBe(commit1);
    for (const [path, content, blobName] of [
      ["config.json", config, gitOid(config)],
      ["model.safetensors", weights, sha256(weights)],
      ["big/data.raw", big, sha256(big)],
      ["a/b/c/notes.txt", nested, gitOid(nested)],
    ] as const) {
      const link = join(snap, path);
      expect(lstatSync(link).isSymbolicLink(), path).toBe(true);
      expect(readlinkSync(link).startsWith("../")).toBe(true);
      expect(realpathSync(link)).toBe(realpathSync(join(storage, "blobs", blobName)));
      expect(sha256(readFileSync(link)), path).toBe(sha256(content));
    }
    const one = await downloadFileToCacheDir({
      ...common(),
      repo,
      path: "config.json",
      revision: commit1,
      cacheDir: join(root, "cache-js-2"),
    });
    expect(one).toBe(join(root, "cache-js-2", "models--org--toy", "snapshots", commit1, "config.json"));
    expect(readFileSync(one, "utf8")).toBe(new TextDecoder().decode(config));
  });

  it("branches: create, upload to a branch, download by branch and by commit; a new main commit keeps old commits", async () => {
    await createBranch({ ...common(), repo, branch: "dev" });
    const v2 = new TextEncoder().encode(JSON.stringify({ model_type: "toy", hidden: 8 }));
    const r = await uploadFiles({ ...common(), repo, branch: "dev", useXet: false, files: [{ path: "config.json", content: blob(v2) }] });
    const devSha = r.commit.oid;
    expect(devSha).toMatch(/^[0-9a-f]{40}$/);
    const text = async (revision: string) => await (await downloadFile({ ...common(), repo, path: "config.json", revision }))!.text();
    expect(await text("dev")).toBe(new TextDecoder().decode(v2));
    expect(await text(devSha)).toBe(new TextDecoder().decode(v2));
    expect(await text("main")).toBe(new TextDecoder().decode(config));

    // second commit on main, then the first commit still serves the old content
    const v3 = new TextEncoder().encode('{"hidden":16}');
    const r3 = await uploadFiles({ ...common(), repo, useXet: false, files: [{ path: "config.json", content: blob(v3) }] });
    expect(r3.commit.oid).not.toBe(commit1);
    expect(await text("main")).toBe('{"hidden":16}');
    expect(await text(commit1)).toBe(new TextDecoder().decode(config));
    const res = await fetch(`${hub.url}/org/toy/resolve/main/config.json`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(res.headers.get("x-repo-commit")).toBe(r3.commit.oid);
    const history = [];
    for await (const c of listCommits({ ...common(), repo })) history.push(c.oid);
    expect(history.slice(0, 2)).toEqual([r3.commit.oid, commit1]);
    // parentCommit mismatch → 412
    await expect(
      uploadFiles({
        ...common(),
        repo,
        useXet: false,
        parentCommit: commit1,
        files: [{ path: "x.txt", content: blob(new Uint8Array([65])) }],
      }),
    ).rejects.toMatchObject({ statusCode: 412 });
    await deleteBranch({ ...common(), repo, branch: "dev" });
    expect(await fetch(`${hub.url}/org/toy/resolve/dev/config.json`).then((x) => [x.status, x.headers.get("x-error-code")])).toEqual([
      404,
      "RevisionNotFound",
    ]);
  });

  it("resolve: Range requests, HEAD, ETags and error codes", async () => {
    const u = `${hub.url}/org/toy/resolve/${commit1}/model.safetensors`;
    let res = await fetch(u, { headers: { Range: "bytes=0-0" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 0-0/${weights.length}`);
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("etag")).toBe(`"${sha256(weights)}"`);
    expect(res.headers.get("x-linked-etag")).toBe(`"${sha256(weights)}"`);
    expect(res.headers.get("x-linked-size")).toBe(String(weights.length));
    expect(res.headers.get("x-repo-commit")).toBe(commit1);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(weights.subarray(0, 1));
    res = await fetch(u, { headers: { Range: "bytes=5-" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-length")).toBe(String(weights.length - 5));
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(weights.subarray(5));
    res = await fetch(u, { headers: { Range: "bytes=10-19" } });
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(weights.subarray(10, 20));
    res = await fetch(u, { headers: { Range: `bytes=${weights.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe(`bytes */${weights.length}`);
    res = await fetch(u, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(weights.length));
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    res = await fetch(`${hub.url}/org/toy/resolve/${commit1}/config.json`);
    expect(res.headers.get("etag")).toBe(`"${gitOid(config)}"`);
    expect(res.headers.get("x-linked-etag")).toBeNull();
    const codes = async (url: string) => {
      const r = await fetch(url);
      return [r.status, r.headers.get("x-error-code")];
    };
    expect(await codes(`${hub.url}/org/toy/resolve/main/nope.txt`)).toEqual([404, "EntryNotFound"]);
    expect(await codes(`${hub.url}/org/toy/resolve/nobranch/config.json`)).toEqual([404, "RevisionNotFound"]);
    expect(await codes(`${hub.url}/org/toy/resolve/${"0".repeat(40)}/config.json`)).toEqual([404, "RevisionNotFound"]);
    // anonymous caller, unknown repo: 401 like the Hub (does not tell unknown from private)
    expect(await codes(`${hub.url}/org/none/resolve/main/config.json`)).toEqual([401, "RepoNotFound"]);
    const authed = await fetch(`${hub.url}/org/none/resolve/main/config.json`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect([authed.status, authed.headers.get("x-error-code")]).toEqual([404, "RepoNotFound"]);
  });

  it("token checks: writes need the token, private repos refuse anonymous reads", async () => {
    await expect(createRepo({ hubUrl: hub.url, accessToken: "hf_wrong", repo: "org/other" })).rejects.toMatchObject({ statusCode: 401 });
    const anon = await fetch(`${hub.url}/api/repos/create`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "x", organization: "org" }),
    });
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: string }).error).toMatch(/authenticated/);
    await expect(
      uploadFiles({
        hubUrl: hub.url,
        accessToken: "hf_wrong",
        repo,
        useXet: false,
        files: [{ path: "z.txt", content: blob(new Uint8Array([1])) }],
      }),
    ).rejects.toMatchObject({ statusCode: 401 });
    const noAuthCommit = await fetch(`${hub.url}/api/models/org/toy/commit/main`, {
      method: "POST",
      headers: { "Content-Type": "application/x-ndjson" },
      body: JSON.stringify({ key: "header", value: { summary: "x" } }),
    });
    expect(noAuthCommit.status).toBe(401);

    await createRepo({ ...common(), repo: "org/secret", private: true });
    await uploadFiles({
      ...common(),
      repo: "org/secret",
      useXet: false,
      files: [{ path: "s.txt", content: blob(new TextEncoder().encode("secret")) }],
    });
    const anonRead = await fetch(`${hub.url}/org/secret/resolve/main/s.txt`);
    expect(anonRead.status).toBe(401);
    expect(anonRead.headers.get("x-error-code")).toBe("RepoNotFound");
    expect((await fetch(`${hub.url}/api/models/org/secret`)).status).toBe(401);
    expect((await fetch(`${hub.url}/api/models/org/secret/tree/main`)).status).toBe(401);
    expect(await (await downloadFile({ ...common(), repo: "org/secret", path: "s.txt" }))!.text()).toBe("secret");
    expect((await modelInfo({ ...common(), name: "org/secret" })).private).toBe(true);
  });

  it("LFS: a PUT with the wrong content is refused (400) and nothing is stored; a commit of an unknown LFS oid fails", async () => {
    const good = new Uint8Array(randomBytes(1000));
    const oid = sha256(good);
    const batch = await fetch(`${hub.url}/org/toy.git/info/lfs/objects/batch`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/vnd.git-lfs+json", Accept: "application/vnd.git-lfs+json" },
      body: JSON.stringify({
        operation: "upload",
        transfers: ["basic", "multipart"],
        hash_algo: "sha_256",
        objects: [{ oid, size: good.length }],
      }),
    });
    expect(batch.status).toBe(200);
    const json = (await batch.json()) as { transfer: string; objects: Array<{ actions?: { upload?: { href: string } } }> };
    expect(json.transfer).toBe("basic");
    const href = json.objects[0]!.actions!.upload!.href;
    const bad = new Uint8Array(good);
    bad[0]! ^= 1;
    const put = await fetch(href, { method: "PUT", body: bad });
    expect(put.status).toBe(400);
    expect(existsSync(join(dataDir, "lfs", oid))).toBe(false);
    // a tampered href is refused
    const tampered = href.replace(/sig=(.)/, (_m, c: string) => `sig=${c === "0" ? "1" : "0"}`);
    expect(tampered).not.toBe(href);
    expect((await fetch(tampered, { method: "PUT", body: good })).status).toBe(403);

    const commitBody = (o: string) =>
      [
        { key: "header", value: { summary: "lfs ref" } },
        { key: "lfsFile", value: { path: "ghost.safetensors", algo: "sha256", size: good.length, oid: o } },
      ]
        .map((l) => JSON.stringify(l))
        .join("\n");
    const post = (o: string) =>
      fetch(`${hub.url}/api/models/org/toy/commit/main`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/x-ndjson" },
        body: commitBody(o),
      });
    const refused = await post(oid);
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: string }).error).toMatch(/not uploaded/);

    // the right bytes are accepted, then the commit goes through, and the batch no longer asks for an upload
    expect((await fetch(href, { method: "PUT", body: good })).status).toBe(200);
    expect(sha256(readFileSync(join(dataDir, "lfs", oid)))).toBe(oid);
    expect((await post(oid)).status).toBe(200);
    const again = await fetch(`${hub.url}/org/toy.git/info/lfs/objects/batch`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/vnd.git-lfs+json" },
      body: JSON.stringify({ operation: "upload", transfers: ["basic"], objects: [{ oid, size: good.length }] }),
    });
    expect(((await again.json()) as { objects: Array<{ actions?: unknown }> }).objects[0]!.actions).toBeUndefined();
  });

  it("dataset repos, and deleteRepo", async () => {
    const ds = { type: "dataset" as const, name: "org/data" };
    await createRepo({ ...common(), repo: ds });
    await uploadFiles({
      ...common(),
      repo: ds,
      useXet: false,
      files: [
        { path: "train.parquet", content: blob(weights) },
        { path: "README.md", content: blob(nested) },
      ],
    });
    expect(sha256(new Uint8Array(await (await downloadFile({ ...common(), repo: ds, path: "train.parquet" }))!.arrayBuffer()))).toBe(
      sha256(weights),
    );
    const r = await fetch(`${hub.url}/datasets/org/data/resolve/main/train.parquet`, { method: "HEAD" });
    expect(r.headers.get("x-linked-etag")).toBe(`"${sha256(weights)}"`);
    // the model namespace does not see it
    expect((await fetch(`${hub.url}/org/data/resolve/main/README.md`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    await deleteRepo({ ...common(), repo: ds });
    await expect(downloadFile({ ...common(), repo: ds, path: "README.md" })).rejects.toMatchObject({ statusCode: 404 });
  });

  it("persists across close() and a restart on the same dataDir", async () => {
    const before = await modelInfo({ ...common(), name: repo.name, additionalFields: ["sha"] });
    await hub.close();
    hub = await startDevHub({ port: 0, dataDir, token: TOKEN });
    const after = await modelInfo({ ...common(), name: repo.name, additionalFields: ["sha"] });
    expect((after as { sha: string }).sha).toBe((before as { sha: string }).sha);
    const b = await downloadFile({ ...common(), repo, path: "big/data.raw", revision: commit1 });
    expect(sha256(new Uint8Array(await b!.arrayBuffer()))).toBe(sha256(big));
    expect(await (await downloadFile({ ...common(), repo: "org/secret", path: "s.txt" }))!.text()).toBe("secret");
  });
});

describe("dev-hub input checks", () => {
  it("refuses repo names that could leave dataDir, and bad file paths in commits", async () => {
    const post = (body: unknown) =>
      fetch(`${hub.url}/api/repos/create`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ name: "..", organization: "org" })).status).toBe(400);
    expect((await post({ name: "x", organization: ".." })).status).toBe(400);
    expect((await post({ name: "a/b", organization: "org" })).status).toBe(400);
    // raw request, an encoded "/" inside the namespace segment
    const raw = await new Promise<[number | undefined, unknown]>((resolve, reject) => {
      get(
        {
          host: "127.0.0.1",
          port: hub.port,
          path: "/api/models/..%2F..%2Fx/data/revision/main",
          headers: { Authorization: `Bearer ${TOKEN}` },
        },
        (res) => {
          res.resume();
          resolve([res.statusCode, res.headers["x-error-code"]]);
        },
      ).on("error", reject);
    });
    expect(raw).toEqual([404, "RepoNotFound"]);
    const commit = await fetch(`${hub.url}/api/models/org/toy/commit/main`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/x-ndjson" },
      body: [
        { key: "header", value: { summary: "x" } },
        { key: "file", value: { path: "../evil", content: "eA==", encoding: "base64" } },
      ]
        .map((l) => JSON.stringify(l))
        .join("\n"),
    });
    expect(commit.status).toBe(400);
  });
});

describe("dev-hub request names", () => {
  const send = (method: string, path: string, body: unknown) =>
    fetch(`${hub.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  it("never deletes outside the data folder: a repo type, namespace or name with a path in it is refused (400)", async () => {
    // A decoy repo where `type: "../../victim/"` would lead (repos/<type>s/<org>/<name> joined under dataDir).
    const victim = join(root, "victim", "s", "org", "toy");
    mkdirSync(victim, { recursive: true });
    writeFileSync(join(victim, "repo.json"), "{}");
    for (const body of [
      { type: "../../victim/", organization: "org", name: "toy" },
      { type: "model/../../victim", organization: "org", name: "toy" },
      { type: "constructor", organization: "org", name: "toy" },
      { type: "model", organization: "../victim", name: "toy" },
      { type: "model", organization: "org", name: "../../x" },
      { type: "model", organization: 7, name: "toy" },
    ]) {
      const r = await send("DELETE", "/api/repos/delete", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    expect(existsSync(join(victim, "repo.json"))).toBe(true);
    expect((await send("POST", "/api/repos/create", { type: "../x", name: "y" })).status).toBe(400);
    // The real repo is still there.
    expect((await modelInfo({ ...common(), name: repo.name })).name).toBe(repo.name);
  });

  it("refuses branch names that are not names, and treats Object property names as unknown revisions and files", async () => {
    for (const bad of ["x..y", "a/../b", "HEAD", "__proto__", "a//b", "0123456789abcdef0123456789abcdef01234567"]) {
      const r = await send("POST", `/api/models/org/toy/branch/${encodeURIComponent(bad)}`, {});
      expect(r.status, bad).toBe(400);
    }
    for (const rev of ["constructor", "__proto__", "toString"]) {
      const r = await fetch(`${hub.url}/api/models/org/toy/revision/${rev}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(r.status, rev).toBe(404);
      const f = await fetch(`${hub.url}/org/toy/resolve/main/${rev}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(f.status, rev).toBe(404);
    }
    // A commit line that is not an object is a bad request, not an internal error.
    const c = await fetch(`${hub.url}/api/models/org/toy/commit/main`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/x-ndjson" },
      body: 'null\n{"key":"file","value":null}',
    });
    expect(c.status).toBe(400);
  });

  it("checks names in one place, and storage refuses any other name", () => {
    expect(repoTypeOfSegment("models")).toBe("model");
    for (const seg of ["model", "constructor", "__proto__", "..", undefined]) expect(repoTypeOfSegment(seg), String(seg)).toBeUndefined();
    expect(repoTypeOfField(undefined)).toBe("model");
    for (const t of ["../x", "models", "", 1, {}])
      expect(
        thrownBy(() => repoTypeOfField(t)),
        String(t),
      ).toMatchObject({ status: 400 });
    expect(repoIdOfFields(undefined, "toy", "dev")).toBe("dev/toy");
    for (const [o, n] of [
      ["..", "x"],
      ["org", "a/b"],
      ["org", "x.git"],
      ["org", ""],
      [1, "x"],
    ]) {
      expect(
        thrownBy(() => repoIdOfFields(o, n, "dev")),
        `${o}/${n}`,
      ).toMatchObject({ status: 400 });
    }
    expect(validBranchName("release/v1")).toBe(true);
    for (const p of ["a", "a/b.txt", "__proto__"]) expect(validPath(p), p).toBe(true);
    for (const p of ["", "/a", "a/", "a/../b", "./a", "a\\b", "a\0b", "x".repeat(1001), 3]) expect(validPath(p), String(p)).toBe(false);
    const storage = new Storage(join(root, "unused"));
    expect(thrownBy(() => storage.repoDir("../../x" as "model", "org/toy"))).toMatchObject({ status: 400 });
    expect(thrownBy(() => storage.repoDir("model", "../x"))).toMatchObject({ status: 400 });
    expect(thrownBy(() => storage.lfsPath("../x"))).toMatchObject({ status: 400 });
    expect(thrownBy(() => storage.objectPath("../x"))).toMatchObject({ status: 400 });
  });
});

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("dev-hub without a token (development mode)", () => {
  it("accepts anonymous writes and logs a warning and one line per request", async () => {
    const lines: string[] = [];
    const open = await startDevHub({ dataDir: join(root, "open"), log: (l) => lines.push(l) });
    try {
      expect(lines[0]).toMatch(/warning/);
      const r = await fetch(`${open.url}/api/repos/create`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "m", organization: "o" }),
      });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { url: string }).url).toBe(`${open.url}/o/m`);
      expect(lines.some((l) => /^POST \/api\/repos\/create 200 \d+B/.test(l))).toBe(true);
    } finally {
      await open.close();
    }
  });
});

describe("uploadMode", () => {
  it("LFS for weight extensions, ≥ 10 MiB and binary samples; regular otherwise", () => {
    expect(uploadMode("model.safetensors", 10)).toBe("lfs");
    expect(uploadMode("x/model.CRYPTOTENSORS", 10)).toBe("lfs");
    expect(uploadMode("onnx/model.onnx_data", 10)).toBe("lfs");
    expect(uploadMode("config.json", 100)).toBe("regular");
    expect(uploadMode("big.txt", 10 * 1024 * 1024)).toBe("lfs");
    expect(uploadMode("blob.dat", 3, Buffer.from([1, 0, 2]))).toBe("lfs");
  });
});

// The command as a user runs it (needs `npm run build`, like cli.test.ts).
describe("ctensors dev-hub", () => {
  it("prints the URL, serves, and exits 0 on SIGTERM; the same data is served after a restart", async () => {
    const data = join(root, "cli-data");
    const start = () => {
      const child = execa("node", [CLI, "dev-hub", "--port", "0", "--data", data, "--token", TOKEN], { reject: false });
      const url = new Promise<string>((resolve, reject) => {
        child.stdout!.on("data", (d: Buffer) => {
          const m = /^(http:\/\/127\.0\.0\.1:\d+)$/m.exec(d.toString());
          if (m) resolve(m[1]!);
        });
        void child.then((r) => reject(new Error(`dev-hub exited early (${r.exitCode}): ${r.stderr}`)));
      });
      return { child, url };
    };
    const a = start();
    const url = await a.url;
    await createRepo({ hubUrl: url, accessToken: TOKEN, repo: "org/cli" });
    expect((await whoAmI({ hubUrl: url, accessToken: TOKEN })).name).toBe("dev");
    a.child.kill("SIGTERM");
    const r = await a.child;
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/POST \/api\/repos\/create 200/);
    expect(r.stderr).toMatch(/not a Hub replacement/);

    const b = start();
    const url2 = await b.url;
    expect((await modelInfo({ hubUrl: url2, accessToken: TOKEN, name: "org/cli" })).name).toBe("org/cli");
    b.child.kill("SIGINT");
    expect((await b.child).exitCode).toBe(0);
  });

  it("usage errors exit 2", async () => {
    const r = await execa("node", [CLI, "dev-hub", "--port", "0"], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--data DIR is required/);
    const bad = await execa("node", [CLI, "dev-hub", "--data", join(root, "x"), "--port", "99999"], { reject: false });
    expect(bad.exitCode).toBe(2);
  });
});
