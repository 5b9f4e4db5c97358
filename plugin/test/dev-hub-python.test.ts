// The local development Hub (plugin/src/hub/dev-hub) driven by the real Python huggingface_hub client in
// .venv (plugin/test/hub/devhub_client.py), next to the real @huggingface/hub client.
// huggingface.co is unreachable here: the server is a local stand-in for it. Also checks that an HF cache
// written by @huggingface/hub's snapshotDownload is readable by Python offline (what the sidecar relies on).

import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRepo, downloadFile, snapshotDownload, uploadFiles } from "@huggingface/hub";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevHub, type DevHub } from "../src/hub/dev-hub/index.js";
import { REPO_ROOT, tempDir, VENV_PYTHON } from "./helpers.js";

const TOKEN = "hf_devhub_test";
const SCRIPT = join(REPO_ROOT, "plugin", "test", "hub", "devhub_client.py");
const root = tempDir("ctensors-devhub-py-");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const enc = (s: string) => new TextEncoder().encode(s);

const files1: Record<string, Uint8Array> = {
  "config.json": enc('{"model_type":"toy"}'),
  "model.safetensors": new Uint8Array(randomBytes(300_000)),
  "nested/dir/readme.txt": enc("hello from a nested path\n"),
};
const config2 = enc('{"model_type":"toy","v":2}');

let hub: DevHub;
let commit1: string;
let commit2: string;

interface PyResult {
  version: string;
  snapshot?: string;
  files?: Record<string, string>;
  file_sha256?: string;
  file_realpath?: string;
  whoami?: string;
  commit?: string;
  tree?: Array<[string, string | null]>;
  paths_info?: string[];
  refs?: string[];
  commits?: string[];
}

async function py(args: Record<string, unknown>, env: Record<string, string>): Promise<PyResult> {
  const home = join(root, "hf-home");
  mkdirSync(home, { recursive: true });
  const r = await execa(VENV_PYTHON, [SCRIPT, JSON.stringify(args)], {
    env: {
      HF_HOME: home, // no user token or config from the machine
      HF_HUB_DISABLE_XET: "1",
      HF_HUB_DISABLE_TELEMETRY: "1",
      HF_HUB_DISABLE_PROGRESS_BARS: "1",
      ...env,
    },
    extendEnv: true,
    reject: false,
    timeout: 60_000,
  });
  if (r.exitCode !== 0) throw new Error(`python exited ${r.exitCode}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as PyResult;
}

const expected = (files: Record<string, Uint8Array>) => Object.fromEntries(Object.entries(files).map(([p, b]) => [p, sha256(b)]));

beforeAll(async () => {
  hub = await startDevHub({ port: 0, dataDir: join(root, "data"), token: TOKEN });
  const common = { hubUrl: hub.url, accessToken: TOKEN };
  await createRepo({ ...common, repo: "org/py" });
  const r1 = await uploadFiles({
    ...common,
    repo: "org/py",
    useXet: false,
    files: Object.entries(files1).map(([path, b]) => ({ path, content: new Blob([b]) })),
  });
  commit1 = r1.commit.oid;
  const r2 = await uploadFiles({
    ...common,
    repo: "org/py",
    useXet: false,
    files: [{ path: "config.json", content: new Blob([config2]) }],
  });
  commit2 = r2.commit.oid;
});

afterAll(async () => {
  await hub?.close();
});

describe("dev-hub with Python huggingface_hub", () => {
  it("snapshot_download and hf_hub_download online (main and an old commit), then again with HF_HUB_OFFLINE=1", async () => {
    const cache = join(root, "cache-py");
    const env = { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, HF_HUB_CACHE: cache };
    const main = await py({ op: "download", repo_id: "org/py", file: "model.safetensors" }, env);
    expect(main.snapshot).toBe(join(cache, "models--org--py", "snapshots", commit2));
    expect(main.files).toEqual(expected({ ...files1, "config.json": config2 }));
    expect(main.file_sha256).toBe(sha256(files1["model.safetensors"]!));
    expect(main.file_realpath).toBe(join(cache, "models--org--py", "blobs", sha256(files1["model.safetensors"]!)));

    const old = await py({ op: "download", repo_id: "org/py", revision: commit1, file: "config.json" }, env);
    expect(old.snapshot).toBe(join(cache, "models--org--py", "snapshots", commit1));
    expect(old.files).toEqual(expected(files1));
    expect(old.file_sha256).toBe(sha256(files1["config.json"]!));

    // offline, from the cache only (the server is not asked: point HF_ENDPOINT at a closed port)
    const offEnv = { ...env, HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };
    const off = await py({ op: "download", repo_id: "org/py", file: "model.safetensors" }, offEnv);
    expect(off.snapshot).toBe(main.snapshot);
    expect(off.files).toEqual(main.files);
    const offOld = await py({ op: "download", repo_id: "org/py", revision: commit1, file: "config.json" }, offEnv);
    expect(offOld.files).toEqual(expected(files1));
  });

  it("a cache written by @huggingface/hub's snapshotDownload is readable by Python offline", async () => {
    const cache = join(root, "cache-js");
    const snap = await snapshotDownload({ hubUrl: hub.url, accessToken: TOKEN, repo: "org/py", cacheDir: cache });
    expect(snap).toBe(join(cache, "models--org--py", "snapshots", commit2));
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };
    const viaMain = await py({ op: "download", repo_id: "org/py", file: "model.safetensors", local_files_only: true }, env);
    expect(viaMain.snapshot).toBe(snap);
    expect(viaMain.files).toEqual(expected({ ...files1, "config.json": config2 }));
    expect(viaMain.file_sha256).toBe(sha256(files1["model.safetensors"]!));
    const viaSha = await py(
      { op: "download", repo_id: "org/py", revision: commit2, file: "nested/dir/readme.txt", local_files_only: true },
      env,
    );
    expect(viaSha.file_sha256).toBe(sha256(files1["nested/dir/readme.txt"]!));
  });

  it("upload_folder from Python (regular + LFS), read back by @huggingface/hub", async () => {
    const folder = join(root, "upload");
    mkdirSync(join(folder, "sub"), { recursive: true });
    const weights = new Uint8Array(randomBytes(50_000));
    writeFileSync(join(folder, "model.safetensors"), weights);
    writeFileSync(join(folder, "sub", "notes.md"), "# notes\n");
    const r = await py(
      { op: "upload", repo_id: "org/frompy", folder },
      { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, HF_HUB_CACHE: join(root, "cache-up") },
    );
    expect(r.whoami).toBe("dev");
    expect(r.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(r.tree).toEqual([
      ["model.safetensors", sha256(weights)],
      ["sub/notes.md", null],
    ]);
    expect(r.paths_info).toEqual(["model.safetensors", "sub"]);
    expect(r.refs).toEqual(["main"]);
    expect(r.commits).toEqual(["from python", "initial commit"]);
    const b = await downloadFile({ hubUrl: hub.url, accessToken: TOKEN, repo: "org/frompy", path: "model.safetensors" });
    expect(sha256(new Uint8Array(await b!.arrayBuffer()))).toBe(sha256(weights));
    expect(existsSync(join(root, "data", "lfs", sha256(weights)))).toBe(true);
  });
});
