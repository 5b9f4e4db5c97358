// Signed releases at the sidecar's OpenModel: each attack of issue 13 is refused with a typed status
// naming the file, and rollback to an older release is refused with state that survives a restart
// and is shared safely by two sidecar processes on one host.

import { status } from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { publicKeyOf, toJwk } from "../../src/keys/jwk.js";
import { TrustStore } from "../../src/keys/trust.js";
import { ReleaseHistory } from "../../src/release/rollback.js";
import { newEncryptionKey, newSigningKey, REPO_ROOT, tempDir, writePlainSafetensors } from "../helpers.js";
import { startSidecar, type SidecarHandle } from "../../src/sidecar/index.js";
import type { Logger } from "../../src/sidecar/log.js";
import { auth, newClient, rpcFailure, tokenOf, unary, type SidecarClient } from "./helpers.js";

const dir = tempDir("ct-rel-");
const encKey = newEncryptionKey();
const signKey = newSigningKey("publisher");
const strangerKey = newSigningKey("stranger");
const trust = new TrustStore([signKey]);
const logger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
const SHARD1 = "model-00001-of-00002.safetensors";
const SHARD2 = "model-00002-of-00002.safetensors";

const files = {
  enc: join(dir, "enc.jwk"),
  sign: join(dir, "sign.jwk"),
  pub: join(dir, "sign.pub.jwk"),
  stranger: join(dir, "stranger.jwk"),
};

async function ct(...args: string[]): Promise<void> {
  const err: string[] = [];
  const code = await main(args, { out: () => {}, err: (l) => err.push(l), quiet: true });
  if (code !== 0) throw new Error(`ctensors ${args[0]} exited ${code}: ${err.join("\n")}`);
}

function plainModel(root: string): void {
  mkdirSync(root, { recursive: true });
  writePlainSafetensors(join(root, SHARD1), [{ name: "embed", dtype: "F32", shape: [16, 8] }]);
  writePlainSafetensors(join(root, SHARD2), [{ name: "lm_head", dtype: "F32", shape: [16, 8] }]);
  writeFileSync(
    join(root, "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map: { embed: SHARD1, lm_head: SHARD2 } }),
  );
  writeFileSync(join(root, "config.json"), JSON.stringify({ rope_scaling: { factor: 1 } }));
  writeFileSync(join(root, "chat_template.jinja"), "{{ messages }}");
}

let copies = 0;
function copyOf(src: string): string {
  const d = join(dir, `copy-${++copies}`);
  cpSync(src, d, { recursive: true });
  return d;
}

const rel1 = join(dir, "release-1");
const rel2 = join(dir, "release-2");
const state = join(dir, "state", "releases.json");
let sidecar: SidecarHandle;
let client: SidecarClient;

async function start(
  socketDir: string,
  release: Parameters<typeof startSidecar>[0]["release"],
): Promise<{ h: SidecarHandle; c: SidecarClient; open: (s: string) => Promise<any> }> {
  const socketPath = join(dir, socketDir, "s.sock");
  const h = await startSidecar({ socketPath, keys: [encKey], trust, logger, release });
  const c = newClient(socketPath);
  const md = auth(tokenOf(socketPath));
  return { h, c, open: (source: string) => unary(c, "OpenModel", { source }, md) };
}

let open: (source: string) => Promise<any>;

beforeAll(async () => {
  writeFileSync(files.enc, JSON.stringify(toJwk(encKey)));
  writeFileSync(files.sign, JSON.stringify(toJwk(signKey)));
  writeFileSync(files.pub, JSON.stringify(toJwk(publicKeyOf(signKey), "reference", false)));
  writeFileSync(files.stranger, JSON.stringify(toJwk(strangerKey)));
  plainModel(join(dir, "plain-1"));
  plainModel(join(dir, "plain-2"));
  await ct("encrypt", join(dir, "plain-1"), rel1, "--key", files.enc, "--sign-key", files.sign, "--model-id", "org/m", "--release", "1");
  await ct("encrypt", join(dir, "plain-2"), rel2, "--key", files.enc, "--sign-key", files.sign, "--model-id", "org/m", "--release", "2");
  ({ h: sidecar, c: client, open } = await start("main", { history: new ReleaseHistory(state) }));
}, 60_000);

afterAll(async () => {
  client?.close();
  await sidecar?.close();
});

describe("OpenModel checks the release", () => {
  it("opens a signed release", async () => {
    const res = await open(copyOf(rel2));
    expect(res.tensors.length).toBe(2);
  });

  it("refuses mixed shards, a dropped shard + index, an altered config or chat template, an extra file, naming it", async () => {
    const mixed = copyOf(rel2);
    copyFileSync(join(rel1, SHARD2), join(mixed, SHARD2));
    const dropped = copyOf(rel2);
    rmSync(join(dropped, SHARD2));
    rmSync(join(dropped, "model.safetensors.index.json"));
    const config = copyOf(rel2);
    writeFileSync(join(config, "config.json"), JSON.stringify({ rope_scaling: { factor: 16 } }));
    const template = copyOf(rel2);
    writeFileSync(join(template, "chat_template.jinja"), "{{ 'obey the attacker' }}");
    const extra = copyOf(rel2);
    writeFileSync(join(extra, "added_tokens.json"), "{}");
    const cases: [string, string][] = [
      [mixed, SHARD2],
      [dropped, SHARD2],
      [config, "config.json"],
      [template, "chat_template.jinja"],
      [extra, "added_tokens.json"],
    ];
    for (const [source, file] of cases) {
      const f = await rpcFailure(open(source));
      expect(f).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_INTEGRITY" });
      expect(f.details).toContain(file);
    }
  });

  it("refuses a manifest signed by an untrusted key, and a folder without one", async () => {
    const resigned = copyOf(rel2);
    await ct(
      "sign-release",
      resigned,
      "--sign-key",
      files.stranger,
      "--trust",
      files.pub,
      "--model-id",
      "org/m",
      "--release",
      "9",
      "--force",
    );
    const f = await rpcFailure(open(resigned));
    expect(f).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_UNTRUSTED_SIGNER" });
    expect(f.details).toContain("model.sig");
    const bare = copyOf(rel2);
    rmSync(join(bare, "model.sig"));
    const g = await rpcFailure(open(bare));
    expect(g).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_INTEGRITY" });
    expect(g.details).toContain("model.sig");
  });
});

describe("rollback", () => {
  it("refuses an older release than the newest accepted, also after a restart; --allow-rollback accepts it", async () => {
    // release 2 was accepted above; release 1 of the same model and signer is a rollback.
    const old = copyOf(rel1);
    const f = await rpcFailure(open(old));
    expect(f).toMatchObject({ code: status.PERMISSION_DENIED, ctCode: "ERR_CT_INTEGRITY" });
    expect(f.details).toContain("rollback refused");
    const recorded = () =>
      (Object.values(JSON.parse(readFileSync(state, "utf8")).releases) as { model: string; release: number; signer: string }[]).find(
        (r) => r.model === "org/m",
      )!;
    expect(recorded().release).toBe(2);
    // A restarted sidecar reads the same state.
    const restarted = await start("restarted", { history: new ReleaseHistory(state) });
    try {
      expect(await rpcFailure(restarted.open(copyOf(rel1)))).toMatchObject({ ctCode: "ERR_CT_INTEGRITY" });
    } finally {
      restarted.c.close();
      await restarted.h.close();
    }
    const allowing = await start("allowing", { history: new ReleaseHistory(state), allowRollback: true });
    try {
      expect((await allowing.open(copyOf(rel1))).tensors.length).toBe(2);
    } finally {
      allowing.c.close();
      await allowing.h.close();
    }
    // Accepting an old release never lowers the record.
    expect(await new ReleaseHistory(state).newest("org/m", recorded().signer)).toBe(2);
  });

  it("two processes recording releases into one state file at once lose none of them", async () => {
    const shared = join(dir, "race", "releases.json");
    const script = `
      import { ReleaseHistory } from ${JSON.stringify(join(REPO_ROOT, "plugin", "dist", "release", "index.js"))};
      const h = new ReleaseHistory(process.argv[1]);
      const tag = process.argv[2];
      await Promise.all(Array.from({ length: 15 }, (_, i) => h.accept({ model: tag + "/" + i, release: i, signerFingerprint: "f", manifestDigest: "d" })));
    `;
    const run = promisify(execFile);
    await Promise.all(["a", "b"].map((tag) => run(process.execPath, ["--input-type=module", "-e", script, shared, tag])));
    const records = JSON.parse(readFileSync(shared, "utf8")).releases;
    expect(Object.keys(records).length).toBe(30);
  }, 60_000);
});
