// `ctensors pull` against ordinary repos, concurrent pulls, a Hub that drops connections mid-file, a
// hostile Hub (files longer than listed, endless listings) and file/folder clashes in the cache.
// The Hub is the development server (plugin/src/hub/dev-hub), reached directly or through a loopback
// proxy that injects faults; the hostile Hub is a bare loopback server (faulty-hub.ts).

import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRepo, uploadFiles } from "@huggingface/hub";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevHub, type DevHub } from "../../plugin/src/hub/dev-hub/index.js";
import { MAX_LIST_ENTRIES, MAX_LIST_PAGES } from "../../plugin/src/hub/listing.js";
import { parseRepoRef } from "../../plugin/src/hub/repo-ref.js";
import { hubSettings } from "../../plugin/src/hub/settings.js";
import { fetchSnapshot } from "../../plugin/src/hub/snapshot.js";
import { partialPath } from "../../plugin/src/hub/partial.js";
import { CLI, REPO_ROOT, tempDir } from "../../plugin/test/helpers.js";
import { startFaultyProxy, startHostileHub, type FaultyProxy, type Loopback } from "./faulty-hub.js";

const TOKEN = "hf_ctensors_faults_test";
const dir = tempDir("ct-hub-faults-");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

// An ordinary repo: a weight file (LFS), an empty file, three files with the same content (one blob).
const weights = new Uint8Array(randomBytes(2 * 1024 * 1024));
const same = new TextEncoder().encode('{"same": true}\n');
const FILES: Record<string, Uint8Array> = {
  "weights.safetensors": weights,
  "empty.txt": new Uint8Array(0),
  "a.json": same,
  "b.json": same,
  "sub/c.json": same,
};

let hub: DevHub;
let proxy: FaultyProxy;
let commit = "";

async function ct(args: string[], endpoint: string) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("HF_") && !k.startsWith("HUGGING")) env[k] = v;
  Object.assign(env, { HF_ENDPOINT: endpoint, HF_TOKEN: TOKEN, HF_HOME: join(dir, "hf-home") });
  const r = await execa("node", [CLI, ...args], { cwd: REPO_ROOT, stdin: "ignore", reject: false, extendEnv: false, env, timeout: 60_000 });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function expectExit(r: { code: number; stdout: string; stderr: string }, code: number, errorCode?: string): void {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(code);
  if (errorCode) expect(r.stderr).toContain(`[${errorCode}]`);
}

/** The snapshot holds every file with its bytes, and blobs/ holds nothing but complete blobs. */
function expectCompleteSnapshot(cache: string): void {
  const repoDir = join(cache, "models--acme--ordinary");
  const snap = join(repoDir, "snapshots", commit);
  for (const [path, bytes] of Object.entries(FILES)) expect(Buffer.compare(readFileSync(join(snap, path)), bytes), path).toBe(0);
  expect(readlinkSync(join(snap, "a.json"))).toBe(`../../blobs/${gitOid(same)}`);
  expect(readlinkSync(join(snap, "sub", "c.json"))).toBe(`../../../blobs/${gitOid(same)}`);
  const blobs = readdirSync(join(repoDir, "blobs")).sort();
  expect(blobs).toEqual([gitOid(new Uint8Array(0)), gitOid(same), sha256(weights)].sort());
}

beforeAll(async () => {
  hub = await startDevHub({ dataDir: join(dir, "hub-data"), token: TOKEN });
  proxy = await startFaultyProxy(hub.url);
  const creds = { hubUrl: hub.url, accessToken: TOKEN };
  await createRepo({ repo: "acme/ordinary", ...creds });
  await uploadFiles({
    repo: "acme/ordinary",
    useXet: false,
    files: Object.entries(FILES).map(([path, b]) => ({ path, content: new Blob([b]) })),
    ...creds,
  });
  const r = await ct(["pull", "acme/ordinary", "--json", "--include", "nothing", "--cache-dir", join(dir, "probe")], hub.url);
  expectExit(r, 0);
  commit = JSON.parse(r.stdout).commit;
});

afterAll(async () => {
  await proxy?.close();
  await hub?.close();
});

describe("pull of ordinary repos", () => {
  it("downloads an empty file and files with identical content (one blob)", async () => {
    const cache = join(dir, "c-ordinary");
    const r = await ct(["pull", "acme/ordinary", "--json", "--cache-dir", cache], hub.url);
    expectExit(r, 0);
    expect(JSON.parse(r.stdout).files).toEqual(Object.keys(FILES).sort());
    expectCompleteSnapshot(cache);
    expect(statSync(join(cache, "models--acme--ordinary", "snapshots", commit, "empty.txt")).size).toBe(0);
  });

  it("lets several processes pull the same repo into one cache at the same time", async () => {
    const cache = join(dir, "c-concurrent");
    // Every weight download stalls half-way, so that the pulls overlap.
    proxy.fault = (path) => (path.endsWith("/weights.safetensors") ? { stall: { bytes: weights.length / 2, ms: 1500 } } : undefined);
    proxy.downloads.length = 0;
    try {
      const runs = await Promise.all([0, 1, 2].map(() => ct(["pull", "acme/ordinary", "--json", "--cache-dir", cache], proxy.url)));
      for (const r of runs) {
        expectExit(r, 0);
        expect(JSON.parse(r.stdout).commit).toBe(commit);
      }
    } finally {
      proxy.fault = () => undefined;
    }
    expect(proxy.downloads.filter((d) => d.includes("/weights.safetensors")).length).toBeGreaterThan(1);
    expectCompleteSnapshot(cache);
  });

  it("lets one process (the sidecar) bring the same repo into the cache for several callers at once", async () => {
    const cache = join(dir, "c-in-process");
    proxy.fault = (path) => (path.endsWith("/weights.safetensors") ? { stall: { bytes: weights.length / 2, ms: 500 } } : undefined);
    proxy.downloads.length = 0;
    try {
      const settings = hubSettings({ hubUrl: proxy.url, token: TOKEN, cacheDir: cache }, {});
      const snaps = await Promise.all([0, 1, 2].map(() => fetchSnapshot(parseRepoRef("acme/ordinary"), settings)));
      for (const snap of snaps) expect(snap.commit).toBe(commit);
    } finally {
      proxy.fault = () => undefined;
    }
    expect(proxy.downloads.filter((d) => d.includes("/weights.safetensors"))).toHaveLength(1); // one download, shared
    expectCompleteSnapshot(cache);
  });
});

describe("a Hub that drops the connection mid-file", () => {
  it("resumes the download with a Range request", async () => {
    const cache = join(dir, "c-drop-once");
    let drops = 0;
    proxy.fault = (path) => (path.endsWith("/weights.safetensors") && drops++ === 0 ? { dropAfter: 700_000 } : undefined);
    proxy.downloads.length = 0;
    try {
      const r = await ct(["pull", "acme/ordinary", "--json", "--cache-dir", cache], proxy.url);
      expectExit(r, 0);
    } finally {
      proxy.fault = () => undefined;
    }
    const gets = proxy.downloads.filter((d) => d.includes("/weights.safetensors"));
    expect(gets).toHaveLength(2);
    expect(gets[0]).toMatch(/^200 .* -$/);
    // The rest from where the written part ends (at most the 700,000 bytes that went through).
    const from = Number(/^206 .* bytes=(\d+)-/.exec(gets[1]!)?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(700_000);
    expectCompleteSnapshot(cache);
  });

  it("fails cleanly when it keeps dropping, keeps no blob, and the next run resumes", async () => {
    const cache = join(dir, "c-drop-always");
    proxy.fault = (path) => (path.endsWith("/weights.safetensors") ? { dropAfter: 500_000 } : undefined);
    let r;
    try {
      r = await ct(["pull", "acme/ordinary", "--cache-dir", cache], proxy.url);
    } finally {
      proxy.fault = () => undefined;
    }
    expectExit(r, 9, "ERR_CT_HUB");
    expect(r.stderr).toContain("weights.safetensors");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const blobs = join(cache, "models--acme--ordinary", "blobs");
    expect(existsSync(join(blobs, sha256(weights)))).toBe(false);
    const partials = readdirSync(blobs).filter((f) => f.endsWith(".incomplete"));
    expect(partials).toHaveLength(1);
    const kept = statSync(join(blobs, partials[0]!)).size;
    expect(kept).toBeGreaterThan(500_000); // four tries, each cut after 500,000 bytes, each resumed
    expect(kept).toBeLessThanOrEqual(4 * 500_000);
    proxy.downloads.length = 0;
    expectExit(await ct(["pull", "acme/ordinary", "--cache-dir", cache], proxy.url), 0);
    expect(proxy.downloads.filter((d) => d.includes("/weights.safetensors"))).toEqual([
      expect.stringMatching(new RegExp(`^206 .* bytes=${kept}-`)),
    ]);
    expectCompleteSnapshot(cache);
  });

  it("adopts the partial file of a process that was killed, and starts over when it does not verify", async () => {
    const cache = join(dir, "c-adopt");
    expectExit(await ct(["pull", "acme/ordinary", "--cache-dir", cache], hub.url), 0);
    const blob = join(cache, "models--acme--ordinary", "blobs", sha256(weights));
    const dead = spawnSync(process.execPath, ["-e", ""]).pid; // a process that has exited
    for (const [partial, resumed] of [
      [weights.subarray(0, 5000), true],
      [new Uint8Array(5000).fill(7), false],
    ] as const) {
      writeFileSync(partialPath(blob, dead), partial);
      writeFileSync(blob, "x"); // wrong size: downloaded again
      proxy.downloads.length = 0;
      expectExit(await ct(["pull", "acme/ordinary", "--cache-dir", cache], proxy.url), 0);
      const gets = proxy.downloads.filter((d) => d.includes("/weights.safetensors"));
      expect(gets[0]).toMatch(/^206 .* bytes=5000-/);
      expect(gets.some((g) => g.startsWith("200 "))).toBe(!resumed);
      expectCompleteSnapshot(cache);
    }
  });
});

describe("a hostile Hub", () => {
  const SHA = "1".repeat(40);
  const LFS = "2".repeat(64);
  const evilFile = { type: "file", path: "model.bin", oid: "3".repeat(40), size: 100, lfs: { oid: LFS, size: 100, pointerSize: 130 } };
  let evil: Loopback;
  let sent = 0;
  let closed = false;
  let listing: (url: URL, page: number) => { entries: unknown[]; next: boolean; headers?: Record<string, string> } = () => ({
    entries: [evilFile],
    next: false,
  });

  beforeAll(async () => {
    evil = await startHostileHub(async (req, res, url) => {
      if (url.pathname === `/api/models/acme/evil/tree/${SHA}`) {
        const page = Number(url.searchParams.get("cursor") ?? 0);
        const { entries, next, headers } = listing(url, page);
        const link = new URL(url.pathname + url.search, evil.url);
        link.searchParams.set("cursor", String(page + 1));
        res.writeHead(200, { "Content-Type": "application/json", ...(next ? { Link: `<${link.href}>; rel="next"` } : {}), ...headers });
        res.end(headers?.["Content-Length"] ? undefined : JSON.stringify(entries));
        return;
      }
      if (url.pathname === `/acme/evil/resolve/${SHA}/model.bin`) {
        if (req.headers.range === "bytes=0-0") {
          res.writeHead(206, { "Content-Range": "bytes 0-0/100", ETag: `"${LFS}"`, "Content-Length": "1" });
          res.end("x");
          return;
        }
        // Listed as 100 bytes; streams 64 MiB unless the client hangs up.
        res.writeHead(200, { "Content-Type": "application/octet-stream" });
        let wake = () => {};
        res.on("close", () => {
          closed = true;
          wake();
        });
        res.on("drain", () => wake());
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        while (sent < 64 * 1024 * 1024 && !closed) {
          sent += chunk.length;
          if (!res.write(chunk)) await new Promise<void>((r) => (wake = r));
        }
        res.end();
        return;
      }
      res.writeHead(404, { "X-Error-Code": "RepoNotFound" });
      res.end("{}");
    });
  });

  afterAll(async () => {
    await evil?.close();
  });

  it("stops reading a file at its listed size (ERR_CT_INTEGRITY) and keeps nothing", async () => {
    const cache = join(dir, "c-evil-size");
    const r = await ct(["pull", `acme/evil@${SHA}`, "--cache-dir", cache], evil.url);
    expectExit(r, 4, "ERR_CT_INTEGRITY");
    expect(r.stderr).toContain("more than the 100 bytes");
    expect(closed).toBe(true);
    expect(sent).toBeLessThan(16 * 1024 * 1024); // not 64 MiB: the client hung up
    expect(readdirSync(join(cache, "models--acme--evil", "blobs"))).toEqual([]);
  });

  it("refuses a listing that goes on for too many pages, or has too many entries, or too large a page (ERR_CT_HUB)", async () => {
    const cache = join(dir, "c-evil-list");
    listing = (_url, page) => (page < 3 * MAX_LIST_PAGES ? { entries: [], next: true } : { entries: [], next: false });
    const pages = await ct(["pull", `acme/evil@${SHA}`, "--cache-dir", cache], evil.url);
    expectExit(pages, 9, "ERR_CT_HUB");
    expect(pages.stderr).toContain(`more than ${MAX_LIST_PAGES} pages`);

    const perPage = 20_000;
    listing = (_url, page) => ({
      entries: Array.from({ length: perPage }, (_, i) => ({ ...evilFile, path: `f${page}-${i}` })),
      next: page < (2 * MAX_LIST_ENTRIES) / perPage,
    });
    const entries = await ct(["pull", `acme/evil@${SHA}`, "--cache-dir", cache], evil.url);
    expectExit(entries, 9, "ERR_CT_HUB");
    expect(entries.stderr).toContain(`more than ${MAX_LIST_ENTRIES} entries`);

    listing = () => ({ entries: [], next: false, headers: { "Content-Length": String(1024 * 1024 * 1024) } });
    const huge = await ct(["pull", `acme/evil@${SHA}`, "--cache-dir", cache], evil.url);
    expectExit(huge, 9, "ERR_CT_HUB");
    expect(huge.stderr).toContain("larger than");
  });

  it("refuses a listing that names a path both as a file and as a folder (ERR_CT_HUB)", async () => {
    listing = () => ({ entries: [evilFile, { ...evilFile, path: "model.bin/inner" }], next: false });
    const r = await ct(["pull", `acme/evil@${SHA}`, "--cache-dir", join(dir, "c-evil-clash")], evil.url);
    expectExit(r, 9, "ERR_CT_HUB");
    expect(r.stderr).toContain("both as a file and as a folder");
  });
});

describe("file/folder clashes in the cache", () => {
  it("answers ERR_CT_IO with the path and a remedy, without a stack trace", async () => {
    const notAFolder = join(dir, "cache-is-a-file");
    writeFileSync(notAFolder, "");
    const r = await ct(["pull", "acme/ordinary", "--cache-dir", notAFolder], hub.url);
    expectExit(r, 8, "ERR_CT_IO");
    expect(r.stderr).toContain(`${notAFolder} is not a folder`);
    expect(r.stderr).toContain("--cache-dir");
    expect(r.stderr).not.toMatch(/\n\s+at /);

    // A folder where the snapshot needs a file.
    const cache = join(dir, "c-clash");
    mkdirSync(join(cache, "models--acme--ordinary", "snapshots", commit, "empty.txt"), { recursive: true });
    writeFileSync(join(cache, "models--acme--ordinary", "snapshots", commit, "empty.txt", "x"), "");
    const s = await ct(["pull", "acme/ordinary", "--cache-dir", cache], hub.url);
    expectExit(s, 8, "ERR_CT_IO");
    expect(s.stderr).toContain(join(cache, "models--acme--ordinary", "snapshots", commit, "empty.txt"));
    expect(s.stderr).toContain("remove or rename it");
  });
});
