// The release module on its own: a modified manifest payload, unsafe resource names, a corrupt or
// concurrent rollback state, and the OMS fields ctensors writes.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TrustStore } from "../src/keys/trust.js";
import { verifyRelease, writeRelease, type ReleaseInfo } from "../src/release/manifest.js";
import { isSafeRelativePath, pae, rootDigest } from "../src/release/oms.js";
import { ReleaseHistory } from "../src/release/rollback.js";
import { newSigningKey, tempDir } from "./helpers.js";

const dir = tempDir("ctensors-release-units-");
const signKey = newSigningKey("pub");
const trust = new TrustStore([signKey]);

function folder(name: string): string {
  const root = join(dir, name);
  mkdirSync(join(root, "sub"), { recursive: true });
  writeFileSync(join(root, "config.json"), "{}");
  writeFileSync(join(root, "sub", "tokenizer.json"), '{"v":1}');
  return root;
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error("expected a rejection");
}

describe("manifest", () => {
  it("round-trips, and a payload changed after signing fails the signature", async () => {
    const root = folder("roundtrip");
    const written = await writeRelease(root, { signKey, model: "org/x", release: 3 });
    const read = await verifyRelease(root, { trust });
    expect(read).toMatchObject({
      model: "org/x",
      release: 3,
      files: ["config.json", "sub/tokenizer.json"],
      manifestDigest: written.manifestDigest,
    });
    const bundle = JSON.parse(readFileSync(join(root, "model.sig"), "utf8"));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
    statement.predicate.ctensors_release.release = 4;
    bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
    writeFileSync(join(root, "model.sig"), JSON.stringify(bundle));
    expect(await rejection(verifyRelease(root, { trust }))).toMatchObject({ code: "ERR_CT_SIGNATURE_INVALID" });
  });

  it("the subject digest is OMS's: sha256 over the raw resource digests in order", () => {
    const a = "00".repeat(32);
    const b = "ff".repeat(32);
    expect(
      rootDigest([
        { name: "a", digest: a },
        { name: "b", digest: b },
      ]),
    ).toBe(
      createHash("sha256")
        .update(Buffer.from(a + b, "hex"))
        .digest("hex"),
    );
    expect(Buffer.from(pae("t", new Uint8Array([120]))).toString()).toBe("DSSEv1 1 t 1 x");
  });

  it("resource names must stay inside the model", () => {
    for (const bad of ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", ""]) expect(isSafeRelativePath(bad), bad).toBe(false);
    for (const good of ["config.json", "onnx/model.onnx", ".hidden"]) expect(isSafeRelativePath(good), good).toBe(true);
  });
});

describe("rollback state", () => {
  const info = (release: number, model = "org/m"): ReleaseInfo => ({
    model,
    release,
    signer: signKey,
    signerFingerprint: "fp",
    manifestDigest: `d${release}`,
    files: [],
    headerBound: [],
  });

  it("keeps the newest release, refuses older ones, and never lowers the record", async () => {
    const h = new ReleaseHistory(join(dir, "state-1", "releases.json"));
    await h.accept(info(5));
    await h.accept(info(5));
    expect(await rejection(h.accept(info(4)))).toMatchObject({ code: "ERR_CT_INTEGRITY" });
    await h.accept(info(4), { allowRollback: true });
    expect(await h.newest("org/m", "fp")).toBe(5);
    await h.accept(info(1, "org/other"));
    expect(await h.newest("org/other", "fp")).toBe(1);
  });

  it("a corrupt state file is an error, never an empty history", async () => {
    const path = join(dir, "state-2", "releases.json");
    mkdirSync(join(dir, "state-2"));
    writeFileSync(path, "{not json");
    expect(await rejection(new ReleaseHistory(path).accept(info(1)))).toMatchObject({ code: "ERR_CT_FORMAT" });
    expect(readFileSync(path, "utf8")).toBe("{not json");
  });

  it("concurrent accepts in one process lose no record", async () => {
    const path = join(dir, "state-3", "releases.json");
    await Promise.all(Array.from({ length: 12 }, (_, i) => new ReleaseHistory(path).accept(info(i, `org/m${i}`))));
    expect(Object.keys(JSON.parse(readFileSync(path, "utf8")).releases)).toHaveLength(12);
  });
});
