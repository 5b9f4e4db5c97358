// The sidecar end to end over a real unix socket, with a real @grpc/grpc-js client: authentication,
// OpenModel manifests, RESIDENT and STREAMING loads compared byte for byte with the plaintext, error
// codes, and shared-memory hygiene (every region file unlinked, every fd closed, whatever happens).

import { status, type ClientDuplexStream } from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptFile } from "../../src/container/encrypt-file.js";
import { readHeader } from "../../src/container/reader.js";
import { DIGESTS_KEY, RESERVED_KEYS } from "../../src/container/reserved.js";
import { TrustStore } from "../../src/keys/trust.js";
import { tamper } from "../hostile-files.js";
import {
  mkfifo,
  newEncryptionKey,
  newSigningKey,
  releaseFifos,
  sampleTensors,
  tempDir,
  withDeadline,
  writePlainSafetensors,
  type PlainTensor,
} from "../helpers.js";
import { startSidecar, type SidecarHandle } from "../../src/sidecar/index.js";
import type { Logger } from "../../src/sidecar/log.js";
import {
  auth,
  eventually,
  newClient,
  openRegions,
  openSession,
  rpcFailure,
  runLoad,
  shmFiles,
  tokenOf,
  unary,
  REGION_PATH,
  type SidecarClient,
} from "./helpers.js";

const dir = tempDir("ct-sc-");
const encKey = newEncryptionKey();
const signKey = newSigningKey("publisher-1");
const trust = new TrustStore([signKey]);
const logLines: string[] = [];
const logger: Logger = {
  info: (event, fields) => logLines.push(JSON.stringify({ level: "info", event, ...fields })),
  warn: (event, fields) => logLines.push(JSON.stringify({ level: "warn", event, ...fields })),
  error: (event, fields) => logLines.push(JSON.stringify({ level: "error", event, ...fields })),
};

const MiB = 1024 * 1024;
const shard2: PlainTensor[] = [
  { name: "lm_head.weight", dtype: "F32", shape: [64, 48] },
  { name: "extra.bias", dtype: "BF16", shape: [33] },
];
const bigTensors: PlainTensor[] = [
  ...Array.from({ length: 6 }, (_, i): PlainTensor => ({ name: `layers.${i}.weight`, dtype: "F32", shape: [175, 1000] })), // 700 kB each
  { name: "norm", dtype: "F16", shape: [7] },
];

const plainA = join(dir, "plain-a");
const encA = join(dir, "enc-a");
const encBig = join(dir, "big.enc.safetensors");
const plainFile = join(dir, "plain.safetensors");
const strippedFile = join(dir, "stripped.safetensors");
const partialFile = join(dir, "partial.safetensors");
const tamperedData = join(dir, "tampered-data.safetensors");
const tamperedHeader = join(dir, "tampered-header.safetensors");
const duplicated = join(dir, "duplicated");
const expected = new Map<string, Uint8Array>();
const expectedBig = new Map<string, Uint8Array>();
let expectedPlain = new Map<string, Uint8Array>();

const socketPath = join(dir, "run", "sidecar.sock"); // "run" does not exist: the sidecar creates it (0700)
let sidecar: SidecarHandle;
let client: SidecarClient;
let token: string;

beforeAll(async () => {
  mkdirSync(plainA);
  mkdirSync(encA);
  const shards = [
    ["model-00001-of-00002.safetensors", sampleTensors()],
    ["model-00002-of-00002.safetensors", shard2],
  ] as const;
  for (const [file, tensors] of shards) {
    for (const [n, b] of writePlainSafetensors(join(plainA, file), [...tensors])) expected.set(n, b);
    await encryptFile(join(plainA, file), join(encA, file), { key: encKey, signKey, chunkBytes: 1000 });
  }
  writeFileSync(join(encA, "config.json"), "{}");
  for (const [n, b] of writePlainSafetensors(join(dir, "big.safetensors"), bigTensors)) expectedBig.set(n, b);
  await encryptFile(join(dir, "big.safetensors"), encBig, { key: encKey, signKey });
  expectedPlain = writePlainSafetensors(plainFile, sampleTensors());
  await encryptFile(plainFile, partialFile, { key: encKey, signKey, tensors: ["model.layers.*"] });
  // An encrypted file stripped of its reserved entries: a plain safetensors file of ciphertext.
  writeFileSync(
    strippedFile,
    tamper(new Uint8Array(readFileSync(encBig)), (f) => [...RESERVED_KEYS, DIGESTS_KEY].forEach((k) => f.metadata.delete(k))),
  );

  // Tampering: one ciphertext byte (the header signature still verifies), one header byte.
  const bytes = readFileSync(encBig);
  const data = Buffer.from(bytes);
  data[data.length - 10_000]! ^= 1;
  writeFileSync(tamperedData, data);
  const header = Buffer.from(bytes);
  const at = header.indexOf('"format":"pt"');
  expect(at).toBeGreaterThan(0);
  header.write('"format":"pu"', at);
  writeFileSync(tamperedHeader, header);

  mkdirSync(duplicated);
  writePlainSafetensors(join(duplicated, "a.safetensors"), [{ name: "w", dtype: "F32", shape: [2] }]);
  writePlainSafetensors(join(duplicated, "b.safetensors"), [{ name: "w", dtype: "F32", shape: [2] }]);

  // This sidecar also serves plaintext models (plainFile, duplicated): it opts out of the secure default.
  // Folders here are built shard by shard (no release manifest): release checks are tested in release.test.ts.
  sidecar = await startSidecar({
    socketPath,
    keys: [encKey],
    trust,
    logger,
    residentRegionBytes: 16 * 1024,
    allowPlaintext: true,
    release: { allowUnsigned: true },
  });
  token = tokenOf(socketPath);
  client = newClient(socketPath);
});

afterAll(async () => {
  client?.close();
  await sidecar?.close();
});

const md = () => auth(token);
const open = (source: string, c = client) => unary(c, "OpenModel", { source }, md());

function expectSame(got: Map<string, Buffer>, want: Map<string, Uint8Array>, names = [...want.keys()]): void {
  expect([...got.keys()].sort()).toEqual([...names].sort());
  for (const n of names) expect(got.get(n)!.equals(Buffer.from(want.get(n)!)), n).toBe(true);
}

async function expectNoRegionsLeft(paths: readonly string[] = []): Promise<void> {
  await eventually(() => openRegions().size === 0, "every region fd to be closed");
  for (const p of paths) expect(existsSync(p), p).toBe(false);
}

describe("startup", () => {
  it("creates the socket directory 0700, the token file 0600, and logs a startup line without secrets", () => {
    expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o700);
    expect(statSync(`${socketPath}.token`).mode & 0o777).toBe(0o600);
    expect(statSync(socketPath).isSocket()).toBe(true);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(sidecar.tokenPath).toBe(`${socketPath}.token`);
    const started = JSON.parse(logLines.find((l) => l.includes('"sidecar.started"'))!);
    expect(started).toMatchObject({ socket: socketPath, require_encrypted: false, trusted_signers: ["publisher-1"], keys: 1 });
  });

  it("refuses a second sidecar on a live socket, and leaves the running one alone", async () => {
    const err = await startSidecar({ socketPath, logger }).catch((e: unknown) => e as Error & { code: string });
    expect(err).toMatchObject({ code: "ERR_CT_IO" });
    expect(err.message).toContain("already serving");
    expect(tokenOf(socketPath)).toBe(token);
    expect((await unary(client, "Health", {}, md())).version).toBeTruthy();
  });

  it("refuses a socket directory open to group or others", async () => {
    const loose = join(dir, "loose");
    mkdirSync(loose, { mode: 0o755 });
    execFileSync("chmod", ["755", loose]);
    const err = await startSidecar({ socketPath: join(loose, "s.sock"), logger }).catch((e: unknown) => e as Error & { code: string });
    expect(err).toMatchObject({ code: "ERR_CT_IO" });
    expect(err.message).toMatch(/mode 0755/);
    expect(existsSync(join(loose, "s.sock.token"))).toBe(false);
  });

  it("replaces a stale socket and token left by a dead sidecar", async () => {
    const d = join(dir, "stale");
    mkdirSync(d, { mode: 0o700 });
    const path = join(d, "s.sock");
    // A socket file nobody listens on: bound by a process that then exits.
    execFileSync("python3", ["-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`]);
    writeFileSync(`${path}.token`, "old", { mode: 0o600 });
    const h = await startSidecar({ socketPath: path, logger });
    try {
      expect(tokenOf(path)).toMatch(/^[0-9a-f]{64}$/);
      const c = newClient(path);
      expect((await unary(c, "Health", {}, auth(tokenOf(path)))).require_encrypted).toBe(true); // the default
      c.close();
    } finally {
      await h.close();
    }
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.token`)).toBe(false);
  });

  it("refuses a socket path that is not a socket", async () => {
    const d = join(dir, "notsock");
    mkdirSync(d, { mode: 0o700 });
    writeFileSync(join(d, "s.sock"), "x");
    await expect(startSidecar({ socketPath: join(d, "s.sock"), logger })).rejects.toMatchObject({ code: "ERR_CT_IO" });
    expect(readFileSync(join(d, "s.sock"), "utf8")).toBe("x");
  });
});

describe("authentication", () => {
  it("refuses calls without a token or with a wrong one (UNAUTHENTICATED, ERR_CT_UNAUTHENTICATED)", async () => {
    for (const m of [auth(null), auth("0".repeat(64)), auth(`${token}0`), auth(token.toUpperCase())]) {
      const f = await rpcFailure(unary(client, "OpenModel", { source: encA }, m));
      expect(f).toMatchObject({ code: status.UNAUTHENTICATED, ctCode: "ERR_CT_UNAUTHENTICATED" });
      expect(f.details).not.toContain(token);
      expect((await rpcFailure(unary(client, "Health", {}, m))).ctCode).toBe("ERR_CT_UNAUTHENTICATED");
    }
    const md2 = auth(null);
    md2.set("authorization", `Basic ${token}`);
    expect((await rpcFailure(unary(client, "Health", {}, md2))).code).toBe(status.UNAUTHENTICATED);
  });

  it("refuses a Load stream without the token before any region exists", async () => {
    const f = await rpcFailure(runLoad(client, auth(null), { model_id: "m-x", mode: "LOAD_MODE_RESIDENT" }));
    expect(f).toMatchObject({ code: status.UNAUTHENTICATED, ctCode: "ERR_CT_UNAUTHENTICATED" });
  });

  it("never logs the token", () => {
    expect(logLines.join("\n")).not.toContain(token);
  });
});

describe("Health and OpenModel", () => {
  it("reports version, require_encrypted and trusted signer kids", async () => {
    const h = await unary(client, "Health", {}, md());
    expect(h).toMatchObject({ version: "0.1.0", require_encrypted: false, trusted_signers: ["publisher-1"] });
  });

  it("returns the manifest of every shard of a folder, with a stable model id", async () => {
    const res = await open(encA);
    expect(res.model_id).toMatch(/^m-[0-9a-f]{16}$/);
    expect(res.signer_kid).toBe("publisher-1");
    expect(res.metadata).toEqual({ format: "pt" });
    // File order: shard by shard, each in offset order.
    const inFileOrder = [];
    for (const shard of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) {
      inFileOrder.push(...(await readHeader(join(encA, shard))).header.tensors.map((t) => t.name));
    }
    expect(res.tensors.map((t: any) => t.name)).toEqual(inFileOrder);
    expect(inFileOrder.sort()).toEqual([...expected.keys()].sort());
    const q = res.tensors.find((t: any) => t.name === "model.layers.0.self_attn.q_proj.weight");
    expect(q).toEqual({
      name: q.name,
      dtype: "F32",
      shape: [48, 48],
      byte_size: 48 * 48 * 4,
      encrypted: true,
      file: "model-00001-of-00002.safetensors",
    });
    expect(res.tensors.find((t: any) => t.name === "lm_head.weight").file).toBe("model-00002-of-00002.safetensors");
    expect(res.total_bytes).toBe([...expected.values()].reduce((s, b) => s + b.length, 0));
    expect((await open(`${encA}/`)).model_id).toBe(res.model_id);
    await unary(client, "CloseModel", { model_id: res.model_id }, md());
    await unary(client, "CloseModel", { model_id: res.model_id }, md());
  });

  it("counts references: the model stays open until every OpenModel is matched by a CloseModel", async () => {
    const a = await open(encBig);
    await open(encBig);
    expect((await unary(client, "Health", {}, md())).open_models).toContain(encBig);
    await unary(client, "CloseModel", { model_id: a.model_id }, md());
    expect((await unary(client, "Health", {}, md())).open_models).toContain(encBig);
    await unary(client, "CloseModel", { model_id: a.model_id }, md());
    expect((await unary(client, "Health", {}, md())).open_models).not.toContain(encBig);
    const f = await rpcFailure(unary(client, "CloseModel", { model_id: a.model_id }, md()));
    expect(f).toMatchObject({ code: status.NOT_FOUND, ctCode: "ERR_CT_MODEL_NOT_OPEN" });
  });

  it("opens a plain file when encryption is not required", async () => {
    const res = await open(plainFile);
    expect(res.signer_kid).toBe("");
    expect(res.tensors.every((t: any) => !t.encrypted && t.file === "plain.safetensors")).toBe(true);
    const got = await runLoad(client, md(), { model_id: res.model_id, mode: "LOAD_MODE_RESIDENT" });
    expectSame(got.tensors, expectedPlain);
    await unary(client, "CloseModel", { model_id: res.model_id }, md());
  });

  it("maps refusals to status + ct-error-code", async () => {
    expect(await rpcFailure(open("relative/path"))).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
    expect(await rpcFailure(open(""))).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
    expect(await rpcFailure(open(join(dir, "missing")))).toMatchObject({ code: status.NOT_FOUND, ctCode: "ERR_CT_IO" });
    expect(await rpcFailure(open(tamperedHeader))).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_SIGNATURE_INVALID" });
    expect(await rpcFailure(open(duplicated))).toMatchObject({ code: status.FAILED_PRECONDITION, ctCode: "ERR_CT_FORMAT" });
    const empty = join(dir, "empty-folder");
    mkdirSync(empty);
    expect(await rpcFailure(open(empty))).toMatchObject({ code: status.FAILED_PRECONDITION, ctCode: "ERR_CT_FORMAT" });
  });

  it("refuses a folder whose shard index does not match its shards (a dropped shard is not a partial model)", async () => {
    const partial = join(dir, "dropped-shard");
    mkdirSync(partial);
    copyFileSync(join(encA, "model-00001-of-00002.safetensors"), join(partial, "model-00001-of-00002.safetensors"));
    const weightMap: Record<string, string> = {};
    for (const shard of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) {
      for (const t of (await readHeader(join(encA, shard))).header.tensors) weightMap[t.name] = shard;
    }
    writeFileSync(join(partial, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const failure = await rpcFailure(open(partial));
    expect(failure).toMatchObject({ code: status.FAILED_PRECONDITION, ctCode: "ERR_CT_FORMAT" });
    expect(failure.details).toContain("model-00002-of-00002.safetensors");
    // The same index next to both shards is accepted.
    copyFileSync(join(encA, "model-00002-of-00002.safetensors"), join(partial, "model-00002-of-00002.safetensors"));
    const res = await open(partial);
    expect(res.tensors.length).toBe(Object.keys(weightMap).length);
    await unary(client, "CloseModel", { model_id: res.model_id }, md());
  });

  it("refuses a model signed by an untrusted key, and one it has no key for", async () => {
    const other = join(dir, "other.enc.safetensors");
    await encryptFile(join(dir, "big.safetensors"), other, { key: encKey, signKey: newSigningKey("stranger") });
    expect(await rpcFailure(open(other))).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_UNTRUSTED_SIGNER" });
    const nokey = join(dir, "nokey.enc.safetensors");
    await encryptFile(join(dir, "big.safetensors"), nokey, { key: newEncryptionKey("aes256gcm", "other-key"), signKey });
    expect(await rpcFailure(open(nokey))).toMatchObject({ code: status.FAILED_PRECONDITION, ctCode: "ERR_CT_KEY_NOT_FOUND" });
  });
});

describe("Load RESIDENT", () => {
  it("places every tensor of a sharded model in regions, 64-byte aligned, unlinked once mapped", async () => {
    const { model_id } = await open(encA);
    const before = shmFiles();
    const got = await runLoad(client, md(), { model_id, mode: "LOAD_MODE_RESIDENT" });
    expectSame(got.tensors, expected);
    expect(got.done).toEqual({ tensors: expected.size, bytes: [...expected.values()].reduce((s, b) => s + b.length, 0) });
    expect(got.readies.length).toBeGreaterThan(1); // 16 KiB regions
    expect(got.readies.every((r) => r.path !== "" && r.region_bytes <= 16 * 1024)).toBe(true);
    expect(new Set(got.readies.map((r) => r.region_id)).size).toBe(got.readies.length);
    await expectNoRegionsLeft(got.paths);
    expect([...shmFiles()].filter((f) => !before.has(f))).toEqual([]);
    await unary(client, "CloseModel", { model_id }, md());
  });

  it("loads a subset in the order asked; a tensor bigger than a region gets one of its own", async () => {
    const { model_id } = await open(encBig);
    const names = ["norm", "layers.3.weight", "layers.1.weight"];
    const got = await runLoad(client, md(), { model_id, mode: "LOAD_MODE_RESIDENT", names });
    expect(got.readies.flatMap((r) => r.tensors.map((t) => t.name))).toEqual(names);
    expect(got.readies.map((r) => r.region_bytes)).toEqual([64, 700_032, 700_032]);
    expectSame(got.tensors, expectedBig, names);
    await unary(client, "CloseModel", { model_id }, md());
  });
});

describe("Load STREAMING", () => {
  it("reuses at most window_count regions, announcing each path once", async () => {
    const { model_id } = await open(encBig);
    const before = shmFiles();
    const got = await runLoad(client, md(), { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB, window_count: 2 });
    expectSame(got.tensors, expectedBig);
    expect(got.readies.length).toBe(6); // 700 kB tensors: one per 1 MiB window (+ "norm" packed with the last)
    expect(got.readies.map((r) => r.region_id)).toEqual([1, 2, 1, 2, 1, 2]);
    expect(got.readies.map((r) => r.path !== "")).toEqual([true, true, false, false, false, false]);
    expect(got.readies.every((r) => r.region_bytes === MiB)).toBe(true);
    expect(got.maxOpenRegions).toBeLessThanOrEqual(2);
    await expectNoRegionsLeft(got.paths);
    expect([...shmFiles()].filter((f) => !before.has(f))).toEqual([]);
    await unary(client, "CloseModel", { model_id }, md());
  });

  it("works with one region, and never makes a window smaller than the largest tensor", async () => {
    const { model_id } = await open(encBig);
    const one = await runLoad(client, md(), { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: 1, window_count: 1 });
    expectSame(one.tensors, expectedBig);
    expect(new Set(one.readies.map((r) => r.region_id))).toEqual(new Set([1]));
    expect(one.maxOpenRegions).toBe(1);
    // Defaults (256 MiB, 2) shrink to what the request needs: one region for the whole model.
    const dflt = await runLoad(client, md(), { model_id, mode: "LOAD_MODE_STREAMING" });
    expect(dflt.readies).toHaveLength(1);
    expect(dflt.readies[0]!.region_bytes).toBeLessThan(5 * MiB);
    expectSame(dflt.tensors, expectedBig);
    await unary(client, "CloseModel", { model_id }, md());
    await expectNoRegionsLeft([...one.paths, ...dflt.paths]);
  });
});

describe("Load protocol errors", () => {
  let modelId: string;
  beforeAll(async () => {
    modelId = (await open(encBig)).model_id;
  });
  afterAll(async () => {
    await unary(client, "CloseModel", { model_id: modelId }, md());
  });

  function rawLoad(messages: object[], endAfter = true) {
    return new Promise<{ code: status; ctCode: string | undefined; readies: number }>((resolve) => {
      const call = client.Load!(md()) as ClientDuplexStream<object, any>;
      let readies = 0;
      call.on("data", () => readies++);
      call.on("error", () => {});
      call.on("status", (s) => resolve({ code: s.code, ctCode: s.metadata.get("ct-error-code")[0] as string | undefined, readies }));
      for (const m of messages) call.write(m);
      if (endAfter) call.end();
    });
  }

  it("a first message other than start is ERR_CT_BAD_REQUEST", async () => {
    for (const first of [{ mapped: { region_id: 1 } }, { consumed: { region_id: 1 } }, {}]) {
      expect(await rawLoad([first])).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
    }
    expect(await rawLoad([])).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
  });

  it("bad start messages are ERR_CT_BAD_REQUEST or ERR_CT_MODEL_NOT_OPEN", async () => {
    const bad = (start: object) => rawLoad([{ start }], false);
    expect(await bad({ model_id: modelId, mode: "LOAD_MODE_UNSPECIFIED" })).toMatchObject({ ctCode: "ERR_CT_BAD_REQUEST" });
    expect(await bad({ model_id: modelId, mode: "LOAD_MODE_RESIDENT", names: ["nope"] })).toMatchObject({ ctCode: "ERR_CT_BAD_REQUEST" });
    expect(await bad({ model_id: modelId, mode: "LOAD_MODE_RESIDENT", names: ["norm", "norm"] })).toMatchObject({
      ctCode: "ERR_CT_BAD_REQUEST",
    });
    expect(await bad({ model_id: "m-0000000000000000", mode: "LOAD_MODE_RESIDENT" })).toMatchObject({
      code: status.NOT_FOUND,
      ctCode: "ERR_CT_MODEL_NOT_OPEN",
    });
  });

  it("out-of-order messages end the stream with ERR_CT_BAD_REQUEST and release its regions", async () => {
    const cases: Array<(ready: any, call: ClientDuplexStream<object, any>) => void> = [
      (r, c) => c.write({ mapped: { region_id: r.region_id + 7 } }), // unknown region
      (r, c) => (c.write({ mapped: { region_id: r.region_id } }), c.write({ mapped: { region_id: r.region_id } })), // twice
      (r, c) => c.write({ consumed: { region_id: r.region_id } }), // consumed before mapped
      (r, c) => (c.write({ mapped: { region_id: r.region_id } }), c.write({ start: { model_id: modelId } })), // second start
      (_r, c) => c.end(), // half-close while the sidecar waits for `mapped`
    ];
    for (const misbehave of cases) {
      const paths: string[] = [];
      const f = await rpcFailure(
        runLoad(
          client,
          md(),
          { model_id: modelId, mode: "LOAD_MODE_STREAMING", window_bytes: MiB },
          {
            onReady: (ready, call) => {
              if (ready.path) paths.push(ready.path);
              if (paths.length === 1 && ready.path) misbehave(ready, call);
              return "stop";
            },
          },
        ),
      );
      expect(f).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
      await expectNoRegionsLeft(paths);
    }
    // `consumed` in a RESIDENT load.
    const f = await rpcFailure(
      runLoad(
        client,
        md(),
        { model_id: modelId, mode: "LOAD_MODE_RESIDENT" },
        {
          onReady: (ready, call) => {
            call.write({ mapped: { region_id: ready.region_id } });
            call.write({ consumed: { region_id: ready.region_id } });
            return "stop";
          },
        },
      ),
    );
    expect(f.ctCode).toBe("ERR_CT_BAD_REQUEST");
    await expectNoRegionsLeft();
  });
});

describe("failures mid-load and cancellation", () => {
  it("a modified ciphertext fails the load with ERR_CT_DECRYPTION_FAILED and leaves no region", async () => {
    const { model_id } = await open(tamperedData);
    const paths: string[] = [];
    const f = await rpcFailure(
      runLoad(
        client,
        md(),
        { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB },
        {
          onReady: (r) => void (r.path && paths.push(r.path)),
        },
      ),
    );
    expect(f).toMatchObject({ code: status.DATA_LOSS, ctCode: "ERR_CT_DECRYPTION_FAILED" });
    await expectNoRegionsLeft(paths);
    const r = await rpcFailure(runLoad(client, md(), { model_id, mode: "LOAD_MODE_RESIDENT" }));
    expect(r.ctCode).toBe("ERR_CT_DECRYPTION_FAILED");
    await unary(client, "CloseModel", { model_id }, md());
    await expectNoRegionsLeft();
  });

  it("a cancelled stream leaves no /dev/shm/ctensors-* file and no open fd behind", async () => {
    const { model_id } = await open(encBig);
    for (const when of ["before mapped", "after mapped"] as const) {
      const paths: string[] = [];
      const f = await rpcFailure(
        runLoad(
          client,
          md(),
          { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB },
          {
            onReady: (ready, call) => {
              paths.push(ready.path);
              if (when === "after mapped") call.write({ mapped: { region_id: ready.region_id } });
              setTimeout(() => call.cancel(), 50);
              return "stop";
            },
          },
        ),
      );
      expect(f.code).toBe(status.CANCELLED);
      await expectNoRegionsLeft(paths);
    }
    // The sidecar still serves.
    expectSame((await runLoad(client, md(), { model_id, mode: "LOAD_MODE_RESIDENT" })).tensors, expectedBig);
    await unary(client, "CloseModel", { model_id }, md());
    expect(logLines.some((l) => l.includes('"load.cancelled"'))).toBe(true);
  });

  it("serves several clients at once; one client's failure does not touch the others", async () => {
    const clients = [newClient(socketPath), newClient(socketPath), newClient(socketPath), newClient(socketPath)];
    try {
      const [a, big] = await Promise.all([open(encA, clients[0]), open(encBig, clients[1])]);
      const bigAgain = await open(encBig, clients[2]);
      expect(bigAgain.model_id).toBe(big.model_id);
      const cancelled = runLoad(
        clients[3]!,
        md(),
        { model_id: big.model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB },
        {
          onReady: (_r, call) => (call.cancel(), "stop"),
        },
      );
      const broken = runLoad(
        clients[3]!,
        md(),
        { model_id: big.model_id, mode: "LOAD_MODE_RESIDENT" },
        {
          onReady: (r, call) => (call.write({ mapped: { region_id: r.region_id + 100 } }), "stop"),
        },
      );
      const [ra, rbig1, rbig2, ra2, c, b] = await Promise.allSettled([
        runLoad(clients[0]!, md(), { model_id: a.model_id, mode: "LOAD_MODE_RESIDENT" }),
        runLoad(clients[1]!, md(), { model_id: big.model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB, window_count: 2 }),
        runLoad(clients[2]!, md(), { model_id: big.model_id, mode: "LOAD_MODE_RESIDENT" }),
        runLoad(clients[2]!, md(), { model_id: a.model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB }),
        cancelled,
        broken,
      ]);
      expectSame((ra as PromiseFulfilledResult<any>).value.tensors, expected);
      expectSame((rbig1 as PromiseFulfilledResult<any>).value.tensors, expectedBig);
      expectSame((rbig2 as PromiseFulfilledResult<any>).value.tensors, expectedBig);
      expectSame((ra2 as PromiseFulfilledResult<any>).value.tensors, expected);
      expect((c as PromiseRejectedResult).reason.code).toBe(status.CANCELLED);
      expect((b as PromiseRejectedResult).reason.ctCode).toBe("ERR_CT_BAD_REQUEST");
      for (const [c2, id] of [
        [clients[0], a.model_id],
        [clients[1], big.model_id],
        [clients[2], big.model_id],
      ] as const) {
        await unary(c2!, "CloseModel", { model_id: id }, md());
      }
      await expectNoRegionsLeft();
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe("secure by default: only signed, fully encrypted models unless allowPlaintext", () => {
  it("refuses plain, stripped and partially encrypted models with ERR_CT_NOT_CONFIDENTIAL and serves encrypted ones", async () => {
    const strictSocket = join(dir, "strict", "s.sock");
    const strict = await startSidecar({ socketPath: strictSocket, keys: [encKey], trust, logger, release: { allowUnsigned: true } });
    const c = newClient(strictSocket);
    try {
      const m = auth(tokenOf(strictSocket));
      expect((await unary(c, "Health", {}, m)).require_encrypted).toBe(true);
      for (const source of [plainFile, strippedFile, partialFile]) {
        const f = await rpcFailure(unary(c, "OpenModel", { source }, m));
        expect(f, source).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_NOT_CONFIDENTIAL" });
      }
      const ok = await unary(c, "OpenModel", { source: encA }, m);
      expectSame((await runLoad(c, m, { model_id: ok.model_id, mode: "LOAD_MODE_RESIDENT" })).tensors, expected);
      // Another sidecar's token is not this one's.
      expect((await rpcFailure(unary(c, "Health", {}, md()))).ctCode).toBe("ERR_CT_UNAUTHENTICATED");
    } finally {
      c.close();
      await strict.close();
    }
    expect(existsSync(strictSocket)).toBe(false);
  });

  it("with allowPlaintext, the stripped file is served as what it is: plain safetensors, unsigned, nothing marked encrypted", async () => {
    const res = await open(strippedFile);
    expect(res.signer_kid).toBe("");
    expect(res.tensors.every((t: { encrypted: boolean }) => !t.encrypted)).toBe(true);
    await unary(client, "CloseModel", { model_id: res.model_id }, md());
  });
});

describe("client sessions: a client's models are released when it goes away", () => {
  const health = async () => (await unary(client, "Health", {}, md())).open_models as string[];
  const openIn = (source: string, session: string) => unary(client, "OpenModel", { source, session_id: session }, md());
  const events = (name: string) => logLines.map((l) => JSON.parse(l)).filter((e) => e.event === name);

  it("ending a session's call closes the models opened in it (DEKs zeroed: the readers are closed); others stay open", async () => {
    const s = await openSession(client, md());
    expect(s.id).toMatch(/^s-[0-9a-f]{32}$/);
    const closedBefore = events("model.closed").length;
    const inSession = await openIn(encBig, s.id);
    await openIn(encBig, s.id); // two references of one session: both dropped with it
    const outside = await open(encA); // no session: lives until CloseModel, as before sessions existed
    expect(await health()).toEqual(expect.arrayContaining([encBig, encA]));
    // The session's models load as any other.
    expectSame((await runLoad(client, md(), { model_id: inSession.model_id, mode: "LOAD_MODE_RESIDENT" })).tensors, expectedBig);
    s.call.cancel(); // what the kernel does to the call of a client that is killed: its socket closes
    await eventually(() => events("session.ended").some((e) => e.released_models === 1), "the session's end to be logged");
    expect(await health()).not.toContain(encBig);
    expect(await health()).toContain(encA);
    expect(events("model.closed").slice(closedBefore)).toEqual([expect.objectContaining({ model_id: inSession.model_id, source: encBig })]);
    // The id is a capability: never logged.
    expect(logLines.some((l) => l.includes(s.id))).toBe(false);
    // The references are gone: CloseModel in the ended session finds none.
    const f = await rpcFailure(unary(client, "CloseModel", { model_id: inSession.model_id, session_id: s.id }, md()));
    expect(f).toMatchObject({ code: status.NOT_FOUND, ctCode: "ERR_CT_MODEL_NOT_OPEN" });
    await unary(client, "CloseModel", { model_id: outside.model_id }, md());
    expect(await health()).not.toContain(encA);
  });

  it("references are counted per owner: a model stays open while another session or a session-less OpenModel holds it", async () => {
    const a = await openSession(client, md());
    const b = await openSession(client, md());
    const { model_id } = await openIn(encBig, a.id);
    await openIn(encBig, b.id);
    // A session only drops its own references: neither CloseModel without a session nor another session's.
    expect(await rpcFailure(unary(client, "CloseModel", { model_id }, md()))).toMatchObject({ ctCode: "ERR_CT_MODEL_NOT_OPEN" });
    await open(encBig);
    a.call.cancel();
    await a.ended;
    await eventually(() => events("session.ended").length >= 2, "session a's end");
    expect(await health()).toContain(encBig); // b and the session-less reference hold it
    await unary(client, "CloseModel", { model_id, session_id: b.id }, md());
    expect(await health()).toContain(encBig);
    await unary(client, "CloseModel", { model_id }, md());
    expect(await health()).not.toContain(encBig);
    b.call.cancel();
    await b.ended;
  });

  it("a Load in progress keeps its model until it ends, even when the session that opened it ends first", async () => {
    const s = await openSession(client, md());
    const { model_id } = await openIn(encBig, s.id);
    const got = await runLoad(
      client,
      md(),
      { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB, window_count: 1 },
      {
        onReady: (ready) => {
          if (ready.path) s.call.cancel(); // the session ends while the first region is out
        },
      },
    );
    expectSame(got.tensors, expectedBig);
    await eventually(() => events("model.closed").some((e) => e.model_id === model_id), "the model to close after the load");
    expect(await health()).not.toContain(encBig);
  });

  it("OpenModel with an unknown or ended session is ERR_CT_BAD_REQUEST, and opens nothing", async () => {
    const unknown = await rpcFailure(openIn(encBig, "s-0123456789abcdef0123456789abcdef"));
    expect(unknown).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_BAD_REQUEST" });
    expect(unknown.details).toContain("no live session");
    const s = await openSession(client, md());
    s.call.cancel();
    await s.ended;
    await eventually(() => events("session.ended").some((e) => e.released_models === 0), "the session's end");
    expect(await rpcFailure(openIn(encBig, s.id))).toMatchObject({ ctCode: "ERR_CT_BAD_REQUEST" });
    expect(await health()).not.toContain(encBig);
  });

  it("a session that ends while its OpenModel is in flight leaves nothing open, whichever finishes first", async () => {
    for (let i = 0; i < 5; i++) {
      const s = await openSession(client, md());
      const opening = openIn(encBig, s.id).then(
        () => "opened",
        (f: { ctCode?: string }) => f.ctCode,
      );
      s.call.cancel();
      expect(["opened", "ERR_CT_BAD_REQUEST"]).toContain(await opening);
      const deadline = Date.now() + 10_000; // the session's end is seen a little after the cancel
      while ((await health()).includes(encBig) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await health()).not.toContain(encBig);
    }
  });

  it("a session needs the token", async () => {
    expect(await rpcFailure(openSession(client, auth(null)))).toMatchObject({
      code: status.UNAUTHENTICATED,
      ctCode: "ERR_CT_UNAUTHENTICATED",
    });
  });
});

describe("model folders are walked within bounds", () => {
  it("OpenModel on / is refused at once with ERR_CT_USAGE (the file system is not walked)", async () => {
    const f = await withDeadline(15_000, "the refusal", () => rpcFailure(open("/")));
    expect(f).toMatchObject({ code: status.INVALID_ARGUMENT, ctCode: "ERR_CT_USAGE" });
    expect(f.details).toContain("/");
  });
});

describe("non-regular files", () => {
  it("OpenModel on FIFOs fails at once with ERR_CT_IO, and another client's load is not held up", async () => {
    const fifos = join(dir, "fifos");
    mkdirSync(fifos);
    // More FIFOs than Node has I/O threads (4 by default): a blocking open of each would take them all.
    const paths = Array.from({ length: 6 }, (_, i) => join(fifos, `f${i}.safetensors`));
    paths.forEach(mkfifo);
    const folder = join(dir, "fifo-shard");
    mkdirSync(folder);
    mkfifo(join(folder, "model.safetensors"));
    const other = newClient(socketPath);
    try {
      await withDeadline(15_000, "the FIFO opens to fail and the other client's load to finish", async () => {
        const failures = Promise.all([...paths, folder].map((source) => rpcFailure(open(source))));
        const ok = await unary(other, "OpenModel", { source: encBig }, md());
        expectSame((await runLoad(other, md(), { model_id: ok.model_id, mode: "LOAD_MODE_RESIDENT" })).tensors, expectedBig);
        await unary(other, "CloseModel", { model_id: ok.model_id }, md());
        for (const f of await failures) {
          expect(f).toMatchObject({ ctCode: "ERR_CT_IO" });
          expect(f.details).toContain("not a regular file");
        }
      });
    } finally {
      other.close();
      releaseFifos([...paths, join(folder, "model.safetensors")]);
    }
  }, 30_000);
});

describe("close", () => {
  it("ends Loads in progress, releases their regions and removes socket and token", async () => {
    const s = join(dir, "closing", "s.sock");
    const h = await startSidecar({ socketPath: s, keys: [encKey], trust, logger, shutdownTimeoutMs: 2000 });
    const c = newClient(s);
    const m = auth(tokenOf(s));
    const { model_id } = await unary(c, "OpenModel", { source: encBig }, m);
    const paths: string[] = [];
    let closing: Promise<void> | null = null;
    const f = await rpcFailure(
      runLoad(
        c,
        m,
        { model_id, mode: "LOAD_MODE_STREAMING", window_bytes: MiB },
        {
          onReady: (r) => {
            paths.push(r.path);
            closing ??= h.close(); // the client never maps: the sidecar must not wait for it
            return "stop";
          },
        },
      ),
    );
    expect(f.code).toBe(status.UNAVAILABLE);
    await closing;
    c.close();
    await expectNoRegionsLeft(paths);
    expect(existsSync(s)).toBe(false);
    expect(existsSync(`${s}.token`)).toBe(false);
    expect(paths.every((p) => REGION_PATH.test(p))).toBe(true);
  });

  it("ends client sessions (UNAVAILABLE) instead of waiting for their clients, and closes their models", async () => {
    const s = join(dir, "closing-sessions", "s.sock");
    // A drain timeout longer than the deadline below: close() must not wait for the session calls to end by themselves.
    const h = await startSidecar({ socketPath: s, keys: [encKey], trust, logger, shutdownTimeoutMs: 120_000 });
    const c = newClient(s);
    const m = auth(tokenOf(s));
    try {
      const session = await openSession(c, m);
      await unary(c, "OpenModel", { source: encBig, session_id: session.id }, m);
      await withDeadline(30_000, "the sidecar to stop", () => h.close());
      expect((await session.ended).code).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
    expect(existsSync(s)).toBe(false);
  });
});
