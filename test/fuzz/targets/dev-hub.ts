// Target "dev-hub": the development Hub's routes over loopback (startDevHub, dev mode: anonymous
// writes accepted, so every handler is reachable). Input: a JSON request description (method, path
// segments, query, headers, body), built from the real routes with hostile segments and fields.
// Oracle: no 500 (an unexpected exception in a handler), the connection is answered (not reset), the
// server keeps answering, no request takes longer than the time bound, and nothing outside the data
// folder is created, changed or removed (a sentinel folder beside it, and the parent's listing).

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { startDevHub, type DevHub } from "../../../plugin/src/hub/dev-hub/index.js";
import { INTERESTING_STRINGS } from "../mutate.js";
import { Finding, withinTime } from "../oracle.js";
import type { FuzzTarget } from "./target.js";

interface Req {
  method: string;
  segs: string[];
  query: [string, string][];
  headers: Record<string, string>;
  body: string | null;
}

const hostileSeg = fc.constantFrom(
  "..",
  ".",
  "%2e%2e",
  "%2E%2E%2F",
  "..%2F..%2F",
  "%2F",
  "%00",
  "%",
  "%zz",
  "%ff",
  "a%2Fb",
  "~",
  "",
  "%20",
  "x".repeat(300),
  "..%5c..",
  "%c0%ae%c0%ae",
);
/** A slot of a route: mostly a value that reaches the handler, sometimes hostile or random. */
const slot = (...valid: string[]) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...valid) },
    { weight: 1, arbitrary: hostileSeg },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map(encodeURIComponent) },
  );
const org = slot("dev");
const name = slot("repo", "other");
const rev = slot("main", "0".repeat(40), "refs%2Fheads%2Fmain", "new-branch");
const file = fc.array(slot("README.md", "sub", "file.txt", "model.safetensors"), { minLength: 1, maxLength: 3 });
const oid = slot("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "0".repeat(64));
const kind = fc.constantFrom("models", "datasets", "spaces");
/** The routes of routes.ts with their usual method; the method is sometimes another one. */
const routeArb: fc.Arbitrary<[string, string[]]> = fc.oneof(
  fc.tuple(
    fc.constant("GET"),
    fc.tuple(kind, org, name).map(([k, o, n]) => ["api", k, o, n]),
  ),
  fc.tuple(
    fc.constant("GET"),
    fc.tuple(kind, org, name, fc.constantFrom("revision", "commits", "tree"), rev).map(([k, o, n, op, r]) => ["api", k, o, n, op, r]),
  ),
  fc.tuple(
    fc.constant("GET"),
    fc.tuple(kind, org, name, rev, file).map(([k, o, n, r, f]) => ["api", k, o, n, "tree", r, ...f]),
  ),
  fc.tuple(
    fc.constant("GET"),
    fc.tuple(kind, org, name).map(([k, o, n]) => ["api", k, o, n, "refs"]),
  ),
  fc.tuple(
    fc.constant("POST"),
    fc
      .tuple(kind, org, name, fc.constantFrom("paths-info", "preupload", "commit", "branch"), rev)
      .map(([k, o, n, op, r]) => ["api", k, o, n, op, r]),
  ),
  fc.tuple(
    fc.constant("DELETE"),
    fc.tuple(kind, org, name, rev).map(([k, o, n, r]) => ["api", k, o, n, "branch", r]),
  ),
  fc.tuple(fc.constant("POST"), fc.constant(["api", "repos", "create"])),
  fc.tuple(fc.constant("DELETE"), fc.constant(["api", "repos", "delete"])),
  fc.tuple(fc.constant("GET"), fc.constant(["api", "whoami-v2"])),
  fc.tuple(
    fc.constant("GET"),
    fc
      .tuple(fc.constantFrom<string[]>([], ["datasets"], ["spaces"]), org, name, fc.constantFrom("resolve", "raw"), rev, file)
      .map(([p, o, n, op, r, f]) => [...p, o, n, op, r, ...f]),
  ),
  fc.tuple(
    fc.constant("POST"),
    fc.tuple(org, name).map(([o, n]) => [o, `${n}.git`, "info", "lfs", "objects", "batch"]),
  ),
  fc.tuple(
    fc.constantFrom("PUT", "GET"),
    fc.tuple(fc.constantFrom("upload", "download"), oid).map(([op, o]) => ["__lfs", op, o]),
  ),
);
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    ...INTERESTING_STRINGS,
    "model",
    "dataset",
    "space",
    "../../outside/victim/",
    "../../outside/victim",
    "../datasets/dev",
    "repo",
    "dev",
    "models/../..",
    "/",
    "dev/../../outside",
    "upload",
    "download",
    "sha256",
    "base64",
  ),
  fc.constantFrom(null, true, false, 0, -1, 1e300, 2 ** 53, [], {}, [null]),
  fc.string({ maxLength: 8 }),
);
const fileOpArb = fc.record(
  {
    path: valueArb,
    content: valueArb,
    encoding: valueArb,
    oid: fc.oneof(valueArb, fc.constant("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
    size: valueArb,
    algo: valueArb,
    sample: valueArb,
  },
  { requiredKeys: [] },
);
const jsonBodyArb = fc.record(
  {
    name: valueArb,
    organization: valueArb,
    type: valueArb,
    private: valueArb,
    visibility: valueArb,
    paths: fc.oneof(valueArb, fc.array(valueArb, { maxLength: 3 })),
    expand: valueArb,
    files: fc.oneof(valueArb, fc.array(fileOpArb, { maxLength: 3 })),
    lfsFiles: fc.array(fileOpArb, { maxLength: 2 }),
    deletedFiles: fc.array(fileOpArb, { maxLength: 2 }),
    deletedFolders: fc.array(fileOpArb, { maxLength: 2 }),
    summary: valueArb,
    parentCommit: valueArb,
    startingPoint: valueArb,
    emptyBranch: valueArb,
    overwrite: valueArb,
    operation: valueArb,
    objects: fc.array(fc.record({ oid: valueArb, size: valueArb }, { requiredKeys: [] }), { maxLength: 2 }),
    transfers: valueArb,
  },
  { requiredKeys: [] },
);
const ndjsonArb = fc
  .array(fc.record({ key: fc.constantFrom("header", "file", "lfsFile", "deletedFile", "deletedFolder", "other"), value: fileOpArb }), {
    maxLength: 4,
  })
  .map((lines) => lines.map((l) => JSON.stringify(l)).join("\n"));
const bodyArb = fc.oneof(
  jsonBodyArb.map((b) => JSON.stringify(b)),
  ndjsonArb,
  fc.string({ maxLength: 64 }),
  fc.constant(null),
  fc.constantFrom("null", "[]", "1", '"x"', "{"),
);

const reqArb = fc.record({
  route: fc.tuple(routeArb, fc.option(fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"), { freq: 6 })),
  query: fc.array(
    fc.tuple(
      fc.constantFrom("recursive", "expand", "limit", "cursor", "p", "create_pr", "X-Amz-Signature", "expires"),
      fc.oneof(fc.constantFrom("true", "1", "-1", "0", "99999999999999999999", "NaN", "MTA=", "LTE=", "%%"), fc.string({ maxLength: 6 })),
    ),
    { maxLength: 3 },
  ),
  headers: fc.record(
    {
      range: fc.oneof(
        fc.constantFrom(
          "bytes=0-0",
          "bytes=-1",
          "bytes=5-2",
          "bytes=-0",
          "bytes=0-",
          "bytes=99999999999999999999-",
          "bytes=1-2,3-4",
          "bytes=-99999999999999999999",
        ),
        fc.string({ maxLength: 10 }),
      ),
      "content-type": fc.constantFrom("application/json", "application/x-ndjson", "application/x-ndjson", "text/plain"),
      authorization: fc.constantFrom("Bearer hf_x", "Bearer", "Basic abc", ""),
    },
    { requiredKeys: [] },
  ),
  body: bodyArb,
});

const inputArb = reqArb
  .map(({ route: [[method, segs], other], ...r }) => ({ method: other ?? method, segs, ...r }))
  .map((r) => new Uint8Array(Buffer.from(JSON.stringify(r))));

let root = "";
let dataDir = "";
let hub: DevHub | null = null;

function send(r: Req): Promise<{ status: number; body: string }> {
  const path = `/${r.segs.join("/")}${r.query.length ? `?${r.query.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}` : ""}`;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) if (v) headers[k] = v;
  // Framed explicitly: Node sends a GET/DELETE body unframed, which the server would read as the next request.
  if (r.body !== null) headers["content-length"] = String(Buffer.byteLength(r.body));
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: hub!.port, method: r.method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8").slice(0, 300) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(r.body ?? undefined);
  });
}

/** Outside the data folder: a repo-shaped folder (what a traversal through the repo routes would reach) and a file. */
const VICTIM_REPO = ["outside", "victim", "s", "dev", "repo"];

function outsideState(): string {
  const listing = readdirSync(root).sort().join(",");
  const keep = statSync(join(root, "outside", "keep.txt"), { throwIfNoEntry: false });
  const repo = statSync(join(root, ...VICTIM_REPO, "repo.json"), { throwIfNoEntry: false });
  return `${listing}|keep.txt ${keep?.size ?? "gone"}|victim repo ${repo ? "present" : "gone"}`;
}

async function seedRepo(): Promise<void> {
  const post = (segs: string[], body: unknown, type = "application/json") =>
    send({
      method: "POST",
      segs,
      query: [],
      headers: { "content-type": type },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  for (const [type, name] of [
    ["model", "repo"],
    ["dataset", "repo"],
  ])
    await post(["api", "repos", "create"], { name, organization: "dev", type });
  const ndjson = [
    { key: "header", value: { summary: "seed" } },
    { key: "file", value: { path: "README.md", content: Buffer.from("hello").toString("base64"), encoding: "base64" } },
    { key: "file", value: { path: "sub/file.txt", content: Buffer.from("x").toString("base64"), encoding: "base64" } },
  ]
    .map((l) => JSON.stringify(l))
    .join("\n");
  const r = await post(["api", "models", "dev", "repo", "commit", "main"], ndjson, "application/x-ndjson");
  if (r.status !== 200) throw new Error(`seeding the dev-hub failed: ${r.status} ${r.body}`);
}

let baseline = "";

function plantVictims(): void {
  mkdirSync(join(root, ...VICTIM_REPO), { recursive: true });
  writeFileSync(join(root, "outside", "keep.txt"), "must survive");
  copyFileSync(join(root, "repo.json.copy"), join(root, ...VICTIM_REPO, "repo.json"));
}

export const devHubTarget: FuzzTarget = {
  name: "dev-hub",
  description: "development Hub routes over loopback (plugin/src/hub/dev-hub): status, liveness, data-folder containment",
  input: inputArb,
  async setup() {
    root = mkdtempSync(join(tmpdir(), "ct-fuzz-hub-"));
    dataDir = join(root, "data");
    hub = await startDevHub({ dataDir });
    await seedRepo();
    copyFileSync(join(dataDir, "repos", "models", "dev", "repo", "repo.json"), join(root, "repo.json.copy"));
    plantVictims();
    baseline = outsideState();
  },
  async teardown() {
    await hub?.close();
    rmSync(root, { recursive: true, force: true });
  },
  async run(input) {
    const r = JSON.parse(Buffer.from(input).toString("utf8")) as Req;
    let res: { status: number; body: string };
    try {
      // A refused or reset connect is the loaded test machine (ephemeral ports), not the server: retried.
      const attempt = () => withinTime(send(r), 20_000, `${r.method} /${r.segs.join("/")}`);
      res = await attempt().catch((err: NodeJS.ErrnoException) => {
        if ((err as { syscall?: string }).syscall === "connect") return new Promise<void>((ok) => setTimeout(ok, 200)).then(attempt);
        throw err;
      });
    } catch (err) {
      if (err instanceof Finding) throw err;
      throw new Finding(`the dev-hub dropped the connection: ${(err as Error).message}`, { cause: err });
    }
    if (res.status >= 500) throw new Finding(`the dev-hub answered ${res.status}: ${res.body}`);
    const now = outsideState();
    if (now !== baseline) {
      plantVictims(); // so that later inputs are judged on their own
      throw new Finding(`a request changed files outside the data folder: ${baseline} → ${now}`);
    }
    // Keep the seeded repo, so that later inputs still reach the handlers behind it.
    const alive = await send({ method: "GET", segs: ["api", "models", "dev", "repo"], query: [], headers: {}, body: null });
    if (alive.status !== 200) await seedRepo();
    return String(res.status);
  },
};
