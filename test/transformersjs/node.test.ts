// transformers.js in Node loading CryptoTensors-encrypted ONNX models through `ctensors/transformers`:
// outputs identical to the plaintext model, tampering and untrusted signers refused with typed errors,
// no plaintext weights written anywhere, one decryption per model, keys from files and HTTPS URLs;
// plus the CLI on ONNX folders (encrypt/decrypt round trip byte for byte, inspect, verify).
// "Hub" here is always a TEST STAND-IN (helpers.ts hubStandIn: static files under /{model}/resolve/{rev}/),
// not the real Hub nor the project's local Hub server.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../plugin/test/helpers.js";
import { lenField, parseMessage, serializeMessage } from "../../plugin/src/onnx/wire.js";
import { joinOnnx, layoutOnnx, parseManifest, splitOnnx, type OnnxManifest } from "../../plugin/src/onnx/model.js";
import type { SigningKey } from "../../plugin/src/keys/jwk.js";
import { loadAllKeys } from "../../plugin/src/keys/sources.js";
import { writeRelease } from "../../plugin/src/release/manifest.js";
import {
  copyDir,
  ct,
  ctOk,
  filesContaining,
  FIXTURES,
  hubStandIn,
  REPO_ROOT,
  runPipeline,
  weightNeedles,
  type RunResult,
} from "./helpers.js";

const MODELS = ["tiny-bert", "tiny-bert-extdata"] as const;
const work = tempDir("ctensors-tjs-");
const keys = join(work, "keys");
const otherKeys = join(work, "other-keys");
const encRoot = join(work, "enc"); // encRoot/<model>: the encrypted folders
const hook = () => ({ key: join(keys, "enc.jwk"), trust: join(keys, "sign.pub.jwk") });
const baseline: Record<string, RunResult> = {};

function expectSameOutput(r: RunResult, model: string): void {
  expect(r.error).toBeUndefined();
  expect(r.dims).toEqual(baseline[model]!.dims);
  expect(r.data).toEqual(baseline[model]!.data); // exact: same weights, same graph, same runtime
}

function expectRefused(r: RunResult, code: string): void {
  expect(r.data, "the model must not run").toBeUndefined();
  expect(r.error?.code, r.error?.message).toBe(code);
}

beforeAll(async () => {
  await ctOk(["keygen", "--out", keys]);
  await ctOk(["keygen", "--out", otherKeys]);
  mkdirSync(encRoot);
  for (const m of MODELS) {
    await ctOk(["encrypt", join(FIXTURES, m), join(encRoot, m), "--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")]);
    baseline[m] = await runPipeline({ localModelPath: FIXTURES + "/", model: m });
    expect(baseline[m]!.error, baseline[m]!.error?.message).toBeUndefined();
  }
});

describe("the fixtures", () => {
  it("are small, committed transformers.js folders whose baseline runs", () => {
    let total = 0;
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else total += readFileSync(join(d, e.name)).length;
      }
    };
    walk(FIXTURES);
    expect(total).toBeLessThan(2 * 1024 * 1024);
    for (const m of MODELS) {
      expect(baseline[m]!.dims).toEqual([3, 32]);
      expect(baseline[m]!.data!.some((v) => v !== 0)).toBe(true);
    }
    expect(baseline["tiny-bert-extdata"]!.data).toEqual(baseline["tiny-bert"]!.data); // one model, two layouts
  });

  it("the encrypted folders hold no plaintext weights and no external-data file", () => {
    for (const m of MODELS) {
      expect(filesContaining(join(FIXTURES, m), weightNeedles(join(FIXTURES, m))).length).toBeGreaterThan(0); // the scanner works
      expect(filesContaining(join(encRoot, m), weightNeedles(join(FIXTURES, m)))).toEqual([]);
      expect(readdirSync(join(encRoot, m, "onnx")).sort()).toEqual(["model.onnx", "model.onnx.cryptotensors"]);
    }
  });
});

describe("ONNX wire format", () => {
  it("parse → serialize is the identity, split → join gives back the original files", async () => {
    for (const m of MODELS) {
      const dir = join(FIXTURES, m, "onnx");
      const model = new Uint8Array(readFileSync(join(dir, "model.onnx")));
      expect(Buffer.from(serializeMessage(parseMessage(model))).equals(Buffer.from(model))).toBe(true);
      const split = splitOnnx(model, (loc) => new Uint8Array(readFileSync(join(dir, loc))));
      expect(split.graph.length).toBeLessThan(model.length + 1);
      const byName = new Map(split.weights.map((w) => [w.name, w.data]));
      const manifest: OnnxManifest = { version: 1, graph: "model.onnx", graphSha256: "", inline: split.inline, external: split.external };
      const joined = await joinOnnx(split.graph, manifest, async (n) => byName.get(n)!);
      expect(Buffer.from(joined.model).equals(Buffer.from(model))).toBe(true);
      for (const [loc, data] of joined.external) expect(Buffer.from(data).equals(readFileSync(join(dir, loc)))).toBe(true);
      expect(joined.external.size).toBe(m === "tiny-bert-extdata" ? 1 : 0);
    }
  });
});

describe("ONNX layout for decrypting in place", () => {
  it("lays the original files out with each weight's place: weights written there give the original bytes", () => {
    for (const m of MODELS) {
      const dir = join(FIXTURES, m, "onnx");
      const model = new Uint8Array(readFileSync(join(dir, "model.onnx")));
      const split = splitOnnx(model, (loc) => new Uint8Array(readFileSync(join(dir, loc))));
      const byName = new Map(split.weights.map((w) => [w.name, w.data]));
      const manifest: OnnxManifest = { version: 1, graph: "model.onnx", graphSha256: "", inline: split.inline, external: split.external };
      const { files, placements } = layoutOnnx(split.graph, manifest, (n) => byName.get(n)?.length);
      expect([...files.keys()].sort()).toEqual(["model.onnx", ...split.external.map((e) => e.file)].sort());
      expect(placements.map((p) => p.name).sort()).toEqual([...byName.keys()].sort());
      for (const p of placements) {
        const bytes = files.get(p.file)!.subarray(p.offset, p.offset + p.length);
        expect(bytes.every((b) => b === 0)).toBe(true); // room left for the weight, nothing else there
        bytes.set(byName.get(p.name)!);
      }
      expect(Buffer.from(files.get("model.onnx")!).equals(Buffer.from(model))).toBe(true);
      for (const e of split.external) expect(Buffer.from(files.get(e.file)!).equals(readFileSync(join(dir, e.file)))).toBe(true);
    }
  });

  it("a weight missing from the container or of another size than its external-data range: ERR_CT_FORMAT", () => {
    for (const m of MODELS) {
      const dir = join(FIXTURES, m, "onnx");
      const split = splitOnnx(new Uint8Array(readFileSync(join(dir, "model.onnx"))), (loc) => new Uint8Array(readFileSync(join(dir, loc))));
      const sizes = new Map(split.weights.map((w) => [w.name, w.data.length]));
      const manifest: OnnxManifest = { version: 1, graph: "model.onnx", graphSha256: "", inline: split.inline, external: split.external };
      const first = split.weights[0]!.name;
      expect(() => layoutOnnx(split.graph, manifest, (n) => (n === first ? undefined : sizes.get(n)))).toThrow(
        expect.objectContaining({ code: "ERR_CT_FORMAT" }),
      );
      if (m === "tiny-bert-extdata") {
        expect(() => layoutOnnx(split.graph, manifest, (n) => sizes.get(n)! + (n === first ? 4 : 0))).toThrow(
          expect.objectContaining({ code: "ERR_CT_FORMAT" }),
        );
      }
    }
  });
});

describe("ONNX layout: hostile inputs", () => {
  const enc = new TextEncoder();
  const entry = (k: string, v: string) => lenField(13, serializeMessage([lenField(1, enc.encode(k)), lenField(2, enc.encode(v))])).raw;
  const varint = (no: number, v: number) => Uint8Array.from([no * 8, v]);
  function modelWithExternal(location: string): Uint8Array {
    const tensor = serializeMessage(
      parseMessage(
        new Uint8Array([
          ...varint(1, 4),
          ...varint(2, 1),
          ...lenField(8, enc.encode("w")).raw,
          ...entry("location", location),
          ...entry("offset", "0"),
          ...entry("length", "16"),
          ...varint(14, 1),
        ]),
      ),
    );
    return serializeMessage([lenField(7, serializeMessage([lenField(5, tensor)]))]);
  }

  it("external-data locations that leave the model folder are refused (encrypt and decrypt)", () => {
    for (const loc of ["../secret", "/etc/passwd", "a/../../b", "a\\b", ""]) {
      let read = false;
      expect(
        () =>
          splitOnnx(modelWithExternal(loc), () => {
            read = true;
            return new Uint8Array(16);
          }),
        loc,
      ).toThrow(/not a plain relative path/);
      expect(read).toBe(false);
      expect(() =>
        parseManifest(
          JSON.stringify({ version: 1, graph: "model.onnx", graph_sha256: "", inline: [], external: [{ file: loc, bytes: 1 }] }),
        ),
      ).toThrow(/plain relative path/);
    }
    expect(splitOnnx(modelWithExternal("model.onnx_data"), () => new Uint8Array(16)).weights).toHaveLength(1);
  });

  it("non-zero bytes outside every initializer of an external-data file are refused (could not be rebuilt)", () => {
    const data = new Uint8Array(20);
    data[18] = 7;
    expect(() => splitOnnx(modelWithExternal("model.onnx_data"), () => data)).toThrow(/not zero padding/);
  });

  it("truncated or malformed protobuf is ERR_CT_FORMAT", () => {
    const model = readFileSync(join(FIXTURES, "tiny-bert", "onnx", "model.onnx"));
    for (const bad of [model.subarray(0, model.length - 7), Buffer.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x07])]) {
      expect(() => splitOnnx(new Uint8Array(bad), () => new Uint8Array())).toThrow(expect.objectContaining({ code: "ERR_CT_FORMAT" }));
    }
  });
});

describe("Node: transformers.js pipeline through installCryptoTensors", () => {
  for (const m of MODELS) {
    it(`${m}: from a local folder (env.localModelPath), keys from JWK files, output identical to the plaintext model`, async () => {
      const r = await runPipeline({ localModelPath: encRoot + "/", model: m, hook: hook(), expectFsCacheOff: true });
      expectSameOutput(r, m);
      expect(r.loaded).toHaveLength(1);
      expect(r.loaded![0]!.tensors).toBe(18);
    });

    it(`${m}: from a Hub-like HTTP server (test stand-in), output identical`, async () => {
      const hub = await hubStandIn({ "acme/secret-bert": join(encRoot, m) });
      try {
        const r = await runPipeline({ remoteHost: hub.url, model: "acme/secret-bert", hook: hook() });
        expectSameOutput(r, m);
        expect(hub.requests).toContain("/acme/secret-bert/resolve/main/onnx/model.onnx.cryptotensors");
        expect(hub.requests).not.toContain("/acme/secret-bert/resolve/main/onnx/model.onnx_data"); // served from memory
      } finally {
        await hub.close();
      }
    });
  }

  it("AutoModel.from_pretrained + AutoTokenizer: last_hidden_state identical to the plaintext model's", async () => {
    const plain = await runPipeline({ localModelPath: FIXTURES + "/", model: "tiny-bert", api: "auto" });
    expect(plain.error).toBeUndefined();
    expect(plain.dims![2]).toBe(32);
    const enc = await runPipeline({ localModelPath: encRoot + "/", model: "tiny-bert-extdata", api: "auto", hook: hook() });
    expect(enc.error, enc.error?.message).toBeUndefined();
    expect(enc.dims).toEqual(plain.dims);
    expect(enc.data).toEqual(plain.data);
  });

  it("without the hook the encrypted model does not load, and the error says why (the graph's marker operator)", async () => {
    const r = await runPipeline({ localModelPath: encRoot + "/", model: "tiny-bert" });
    expect(r.data).toBeUndefined();
    expect(r.error?.message).toMatch(/this model is encrypted: install the ctensors hook \(ctensors\/transformers\) to load it/);
    expect(r.error?.message).not.toMatch(/raw_data size/);
    // External data: transformers.js asks for onnx/model.onnx_data, which an encrypted folder does not
    // have, before onnxruntime sees the graph (config.json's use_external_data_format decides that).
    const ext = await runPipeline({ localModelPath: encRoot + "/", model: "tiny-bert-extdata" });
    expect(ext.data).toBeUndefined();
    expect(ext.error?.message).toMatch(/model\.onnx_data/);
  });

  it("hands the decrypted files to transformers.js and keeps none once the session exists; a new pipeline decrypts again", async () => {
    const hub = await hubStandIn({ "acme/secret-bert": join(encRoot, "tiny-bert-extdata") });
    try {
      const r = await runPipeline({ remoteHost: hub.url, model: "acme/secret-bert", hook: hook(), repeat: 3 });
      expectSameOutput(r, "tiny-bert-extdata");
      expect(r.held).toEqual([0, 0, 0]); // nothing decrypted is kept by the hook (no forget() needed)
      expect(r.loaded).toHaveLength(3);
      // one request per file and load: transformers.js' two lookups of each ONNX file share one fetch
      expect(hub.requests.filter((p) => p.endsWith("model.onnx.cryptotensors"))).toHaveLength(3);
      expect(hub.requests.filter((p) => p.endsWith("/onnx/model.onnx"))).toHaveLength(3);
      expect(hub.requests.filter((p) => p.endsWith("/onnx/model.onnx_data"))).toHaveLength(0);
    } finally {
      await hub.close();
    }
  });

  it("local folders decrypt from the file into transformers.js' buffers with either engine (native, CTENSORS_ENGINE=js)", async () => {
    for (const m of MODELS) {
      for (const engine of ["native", "js"]) {
        const r = await runPipeline({ localModelPath: encRoot + "/", model: m, hook: hook() }, { CTENSORS_ENGINE: engine });
        expectSameOutput(r, m);
        expect(r.held).toEqual([0]);
      }
    }
  });

  it("local folder, inline weights: the hook holds nothing once the session exists", async () => {
    const r = await runPipeline({ localModelPath: encRoot + "/", model: "tiny-bert", hook: hook() });
    expectSameOutput(r, "tiny-bert");
    expect(r.held).toEqual([0]);
  });

  describe("refusals (typed errors, the model never runs)", () => {
    const bad = tempDir("ctensors-tjs-bad-");

    function tampered(name: string, edit: (dir: string) => void): string {
      const dir = copyDir(join(encRoot, "tiny-bert"), join(bad, name));
      edit(join(dir, "onnx"));
      return name;
    }
    const flip = (file: string, pos: (len: number) => number) => {
      const b = readFileSync(file);
      b[pos(b.length)]! ^= 0x01;
      writeFileSync(file, b);
    };

    it("a modified ciphertext byte: ERR_CT_DECRYPTION_FAILED", async () => {
      const m = tampered("ct", (d) => flip(join(d, "model.onnx.cryptotensors"), (n) => n - 100));
      expectRefused(await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() }), "ERR_CT_DECRYPTION_FAILED");
    });

    it("a modified graph (the ops, not the weights): ERR_CT_INTEGRITY", async () => {
      const m = tampered("graph", (d) => flip(join(d, "model.onnx"), (n) => n - 10));
      expectRefused(await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() }), "ERR_CT_INTEGRITY");
    });

    it("a modified signed header (the manifest's graph digest): ERR_CT_SIGNATURE_INVALID", async () => {
      const m = tampered("header", (d) => {
        const f = join(d, "model.onnx.cryptotensors");
        const b = readFileSync(f);
        const text = b.toString("latin1");
        const at = text.indexOf("graph_sha256") + 20; // inside the base64 digest
        b[at] = b[at] === 0x41 ? 0x42 : 0x41; // another base64 letter: still valid JSON and base64
        writeFileSync(f, b);
      });
      expectRefused(await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() }), "ERR_CT_SIGNATURE_INVALID");
    });

    it("a model signed by a key that is not trusted: ERR_CT_UNTRUSTED_SIGNER", async () => {
      const r = await runPipeline({
        localModelPath: encRoot + "/",
        model: "tiny-bert",
        hook: { key: join(keys, "enc.jwk"), trust: join(otherKeys, "sign.pub.jwk") },
      });
      expectRefused(r, "ERR_CT_UNTRUSTED_SIGNER");
    });

    it("the wrong master key: ERR_CT_KEY_NOT_FOUND", async () => {
      const r = await runPipeline({
        localModelPath: encRoot + "/",
        model: "tiny-bert",
        hook: { key: join(otherKeys, "enc.jwk"), trust: join(keys, "sign.pub.jwk") },
      });
      expectRefused(r, "ERR_CT_KEY_NOT_FOUND");
    });

    it("a plaintext model swapped in: ERR_CT_NOT_CONFIDENTIAL (unless requireEncrypted: false)", async () => {
      expectRefused(await runPipeline({ localModelPath: FIXTURES + "/", model: "tiny-bert", hook: hook() }), "ERR_CT_NOT_CONFIDENTIAL");
      const allowed = await runPipeline({
        localModelPath: FIXTURES + "/",
        model: "tiny-bert",
        hook: { ...hook(), requireEncrypted: false },
      });
      expectSameOutput(allowed, "tiny-bert");
      expect(allowed.loaded).toEqual([]);
    });

    it("the container removed (graph only): ERR_CT_NOT_CONFIDENTIAL", async () => {
      const m = tampered("nocontainer", (d) => execFileSync("rm", [join(d, "model.onnx.cryptotensors")]));
      expectRefused(await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() }), "ERR_CT_NOT_CONFIDENTIAL");
    });

    // The signed release manifest (model.sig, written by encrypt) binds the graph and container to the release.
    it("graph and container of another release (each valid and signed on its own): ERR_CT_INTEGRITY naming the file", async () => {
      const other = join(bad, "other-release");
      await ctOk(["encrypt", join(FIXTURES, "tiny-bert"), other, "--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")]);
      const m = tampered("mixed", (d) => {
        for (const f of ["model.onnx", "model.onnx.cryptotensors"]) writeFileSync(join(d, f), readFileSync(join(other, "onnx", f)));
      });
      // the swapped pair alone loads: only the release notices
      expectSameOutput(await runPipeline({ localModelPath: bad + "/", model: "other-release", hook: hook() }), "tiny-bert");
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_INTEGRITY");
      expect(r.error!.message).toMatch(/onnx\/model\.onnx(\.cryptotensors)? .*release/);
    });

    it("the same swap from a Hub-like server (test stand-in): refused the same way", async () => {
      const hub = await hubStandIn({ "acme/mixed": join(bad, "mixed") });
      try {
        expectRefused(await runPipeline({ remoteHost: hub.url, model: "acme/mixed", hook: hook() }), "ERR_CT_INTEGRITY");
        expect(hub.requests).toContain("/acme/mixed/resolve/main/model.sig");
      } finally {
        await hub.close();
      }
    });

    // A container with plaintext tensors that have no signed digest (`--tensors` + `--no-plaintext-digests`)
    // is bound by its whole sha256 in model.sig, not by its header: the hook hashes it as it streams in
    // (fetched) or reads it (local), and hands nothing to transformers.js before the hash matched.
    it("a partly encrypted container bound by its whole sha256: loads (requireEncrypted: false); one plaintext byte changed: ERR_CT_INTEGRITY", async () => {
      const partial = join(bad, "partial-src");
      await ctOk([
        "encrypt",
        join(FIXTURES, "tiny-bert"),
        partial,
        "--key",
        join(keys, "enc.jwk"),
        "--sign-key",
        join(keys, "sign.jwk"),
        "--tensors",
        "onnx::*",
        "--no-plaintext-digests",
      ]);
      const lax = { ...hook(), requireEncrypted: false };
      const container = (dir: string) => join(dir, "onnx", "model.onnx.cryptotensors");
      // the release binds the container by its whole sha256 (no header digest for it)
      const statement = JSON.parse(
        Buffer.from(JSON.parse(readFileSync(join(partial, "model.sig"), "utf8")).dsseEnvelope.payload, "base64").toString(),
      );
      expect(JSON.stringify(statement)).toContain(
        createHash("sha256")
          .update(readFileSync(container(partial)))
          .digest("hex"),
      );
      // a plaintext tensor's first data byte (model.embeddings.LayerNorm.bias is not encrypted)
      const bytes = readFileSync(container(partial));
      const n = Number(bytes.readBigUInt64LE(0));
      const entry = JSON.parse(bytes.subarray(8, 8 + n).toString())["model.embeddings.LayerNorm.bias"];
      const changed = copyDir(partial, join(bad, "partial-changed"));
      flip(container(changed), () => 8 + n + entry.data_offsets[0]);
      const hub = await hubStandIn({ "acme/partial": partial, "acme/partial-changed": changed });
      try {
        expectSameOutput(await runPipeline({ localModelPath: bad + "/", model: "partial-src", hook: lax }), "tiny-bert");
        expectSameOutput(await runPipeline({ remoteHost: hub.url, model: "acme/partial", hook: lax }), "tiny-bert");
        for (const r of [
          await runPipeline({ localModelPath: bad + "/", model: "partial-changed", hook: lax }),
          await runPipeline({ remoteHost: hub.url, model: "acme/partial-changed", hook: lax }),
        ]) {
          expectRefused(r, "ERR_CT_INTEGRITY");
          expect(r.error!.message).toMatch(/onnx\/model\.onnx\.cryptotensors/);
        }
      } finally {
        await hub.close();
      }
    });

    it("model.sig removed: ERR_CT_INTEGRITY unless allowUnsignedRelease: true", async () => {
      const m = tampered("unsigned", (d) => execFileSync("rm", [join(d, "..", "model.sig")]));
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_INTEGRITY");
      expect(r.error!.message).toMatch(/no signed release manifest \(model\.sig\)/);
      expectSameOutput(
        await runPipeline({ localModelPath: bad + "/", model: m, hook: { ...hook(), allowUnsignedRelease: true } }),
        "tiny-bert",
      );
    });

    // Every other file transformers.js reads (config, tokenizer…) is checked against the release before it sees it.
    const editText = (file: string, from: string | RegExp, to: string) => {
      const text = readFileSync(file, "utf8");
      const edited = text.replace(from, to);
      expect(edited, `${file} was not edited`).not.toBe(text);
      writeFileSync(file, edited);
    };
    const resign = (m: string) => writeRelease(join(bad, m), { signKey: ownSignKey!, model: "tiny-bert", release: 2 });
    let ownSignKey: SigningKey | undefined;
    beforeAll(async () => {
      [ownSignKey] = (await loadAllKeys([join(keys, "sign.jwk")])).filter((k): k is SigningKey => k.kind === "sign");
    });

    it("an altered config.json (still valid JSON, a model that would run): ERR_CT_INTEGRITY naming config.json", async () => {
      const m = tampered("config", (d) => editText(join(d, "..", "config.json"), '"layer_norm_eps": 1e-12', '"layer_norm_eps": 1e-3'));
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_INTEGRITY");
      expect(r.error!.message).toMatch(/^config\.json was modified: it does not match release \d+ of /);
      // the same folder without its manifest check (allowUnsignedRelease does not skip a manifest that is there)
      expectRefused(
        await runPipeline({ localModelPath: bad + "/", model: m, hook: { ...hook(), allowUnsignedRelease: true } }),
        "ERR_CT_INTEGRITY",
      );
    });

    it("an altered tokenizer.json: ERR_CT_INTEGRITY naming tokenizer.json (local folder and Hub-like server)", async () => {
      const m = tampered("tokenizer", (d) => editText(join(d, "..", "tokenizer.json"), /"cat": (\d+)/, '"cat": 5'));
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_INTEGRITY");
      expect(r.error!.message).toMatch(/^tokenizer\.json was modified/);
      const hub = await hubStandIn({ "acme/tok": join(bad, m) });
      try {
        const rr = await runPipeline({ remoteHost: hub.url, model: "acme/tok", hook: hook() });
        expectRefused(rr, "ERR_CT_INTEGRITY");
        expect(rr.error!.message).toMatch(/^tokenizer\.json was modified/);
      } finally {
        await hub.close();
      }
    });

    it("a file the release does not list (tokenizer_config.json added after signing): ERR_CT_INTEGRITY naming it", async () => {
      const m = tampered("extra", () => {});
      const tc = join(bad, m, "tokenizer_config.json");
      const saved = readFileSync(tc);
      execFileSync("rm", [tc]);
      await resign(m);
      writeFileSync(tc, saved);
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_INTEGRITY");
      expect(r.error!.message).toMatch(/^tokenizer_config\.json is not part of release 2 of tiny-bert/);
    });

    it("a file the release lists removed (tokenizer.json): ERR_CT_INTEGRITY naming it", async () => {
      const m = tampered("missing", (d) => execFileSync("rm", [join(d, "..", "tokenizer.json")]));
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_INTEGRITY");
      expect(r.error!.message).toMatch(/^tokenizer\.json is missing: release \d+ of /);
    });

    it("a model.sig signed by a key that is not trusted (the shards are): ERR_CT_UNTRUSTED_SIGNER", async () => {
      const m = tampered("untrusted-release", () => {});
      const [signKey] = (await loadAllKeys([join(otherKeys, "sign.jwk")])).filter((k): k is SigningKey => k.kind === "sign");
      await writeRelease(join(bad, m), { signKey: signKey!, model: "tiny-bert", release: 1 });
      const r = await runPipeline({ localModelPath: bad + "/", model: m, hook: hook() });
      expectRefused(r, "ERR_CT_UNTRUSTED_SIGNER");
      expect(r.error!.message).toMatch(/model\.sig/);
    });
  });

  it("writes no plaintext weights to disk: transformers.js caches, temp dirs, home, model folders", async () => {
    const started = Date.now() - 1000;
    const scratch = tempDir("ctensors-tjs-disk-");
    const dirs = {
      cacheDir: join(scratch, "tjs-cache"),
      TMPDIR: join(scratch, "tmp"),
      HOME: join(scratch, "home"),
      XDG_CACHE_HOME: join(scratch, "xdg"),
    };
    Object.values(dirs).forEach((d) => mkdirSync(d, { recursive: true }));
    const defaultCache = join(REPO_ROOT, "node_modules", "@huggingface", "transformers", ".cache");
    const env = { TMPDIR: dirs.TMPDIR, HOME: dirs.HOME, XDG_CACHE_HOME: dirs.XDG_CACHE_HOME };
    const hub = await hubStandIn({
      "acme/secret-bert": join(encRoot, "tiny-bert-extdata"),
      "acme/plain-bert": join(FIXTURES, "tiny-bert"),
    });
    try {
      // Control: without the hook, transformers.js' default file cache writes a downloaded model to cacheDir.
      const control = join(scratch, "control-cache");
      expectSameOutput(
        await runPipeline({ remoteHost: hub.url, model: "acme/plain-bert", fsCache: true, cacheDir: control }, env),
        "tiny-bert",
      );
      expect(filesContaining(control, weightNeedles(join(FIXTURES, "tiny-bert"))).length).toBeGreaterThan(0);
      // FS cache left at its default (on) and pointed at a known directory: the hook must turn it off.
      const cfg = { hook: hook(), fsCache: true, cacheDir: dirs.cacheDir, expectFsCacheOff: true };
      expectSameOutput(await runPipeline({ ...cfg, remoteHost: hub.url, model: "acme/secret-bert" }, env), "tiny-bert-extdata");
      expectSameOutput(await runPipeline({ ...cfg, localModelPath: encRoot + "/", model: "tiny-bert" }, env), "tiny-bert");
    } finally {
      await hub.close();
    }
    const needles = [...weightNeedles(join(FIXTURES, "tiny-bert"))];
    expect(needles.length).toBeGreaterThan(5);
    for (const d of [dirs.cacheDir, dirs.TMPDIR, dirs.HOME, dirs.XDG_CACHE_HOME, encRoot, defaultCache])
      expect(filesContaining(d, needles), d).toEqual([]);
    expect(filesContaining("/dev/shm", needles, started), "/dev/shm").toEqual([]); // files made during this test
    // Control: the same scan does see the weights where they are in plaintext.
    expect(filesContaining(join(FIXTURES, "tiny-bert"), needles)).not.toEqual([]);
  });

  describe("keys from an HTTPS JWK-set URL (real HTTPS server, self-signed CA, bearer token)", () => {
    const dir = tempDir("ctensors-tjs-https-");
    let server: ReturnType<typeof createHttpsServer>;
    let origin = "";
    const served: string[] = [];
    beforeAll(async () => {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem"),
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1,DNS:localhost",
          "-addext",
          "basicConstraints=critical,CA:TRUE",
        ],
        { stdio: "pipe" },
      );
      const jwks = JSON.stringify({
        keys: [JSON.parse(readFileSync(join(keys, "enc.jwk"), "utf8")), JSON.parse(readFileSync(join(keys, "sign.pub.jwk"), "utf8"))],
      });
      server = createHttpsServer({ key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) }, (req, res) => {
        served.push(`${req.url} ${req.headers.authorization ?? ""}`);
        if (req.headers.authorization !== "Bearer app-token") return void res.writeHead(401).end();
        res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(jwks);
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it("key and trust from the URL: same output; a wrong token is ERR_CT_KEY_NOT_FOUND", async () => {
      const env = { NODE_EXTRA_CA_CERTS: join(dir, "cert.pem") };
      const url = `${origin}/jwks.json`;
      const ok = await runPipeline(
        { localModelPath: encRoot + "/", model: "tiny-bert", hook: { key: url, trust: url, keyToken: "app-token" } },
        env,
      );
      expectSameOutput(ok, "tiny-bert");
      expect(served).toContain("/jwks.json Bearer app-token");
      const denied = await runPipeline(
        { localModelPath: encRoot + "/", model: "tiny-bert", hook: { key: url, trust: url, keyToken: "wrong" } },
        env,
      );
      expectRefused(denied, "ERR_CT_KEY_NOT_FOUND");
    });
  });
});

describe("CLI on ONNX folders", () => {
  const out = tempDir("ctensors-tjs-cli-");

  it("decrypt gives back the original folder byte for byte (inline and external data)", async () => {
    for (const m of MODELS) {
      const dec = join(out, `dec-${m}`);
      await ctOk([
        "decrypt",
        join(encRoot, m),
        dec,
        "--key",
        join(keys, "enc.jwk"),
        "--trust",
        join(keys, "sign.pub.jwk"),
        "--require-encrypted",
      ]);
      const list = (d: string): string[] =>
        readdirSync(d, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name).slice(d.length))
          .sort();
      expect(list(dec)).toEqual(list(join(FIXTURES, m)));
      for (const f of list(dec)) expect(readFileSync(join(dec, f)).equals(readFileSync(join(FIXTURES, m, f))), f).toBe(true);
    }
  });

  it("the reference implementation (PyPI cryptotensors) reads the container: the ONNX initializers, bit for bit", async () => {
    const dir = join(FIXTURES, "tiny-bert-extdata", "onnx");
    const { weights } = splitOnnx(
      new Uint8Array(readFileSync(join(dir, "model.onnx"))),
      (loc) => new Uint8Array(readFileSync(join(dir, loc))),
    );
    const out = execFileSync(
      join(REPO_ROOT, ".venv", "bin", "python"),
      [
        join(REPO_ROOT, "test", "interop", "ref_tool.py"),
        "read",
        "--in",
        join(encRoot, "tiny-bert-extdata", "onnx", "model.onnx.cryptotensors"),
        "--enc-key",
        join(keys, "enc.jwk"),
        "--sign-key",
        join(keys, "sign.pub.jwk"),
      ],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    );
    const ref = JSON.parse(out) as { ok: boolean; tensors: Record<string, { dtype: string; shape: number[]; sha256: string }> };
    expect(ref.ok).toBe(true);
    expect(Object.keys(ref.tensors).sort()).toEqual(weights.map((w) => w.name).sort());
    for (const w of weights) {
      expect(ref.tensors[w.name]!.sha256).toBe(createHash("sha256").update(w.data).digest("hex"));
      expect(ref.tensors[w.name]!.shape).toEqual(w.shape);
    }
  });

  it("inspect lists the ONNX weights as encrypted tensors", async () => {
    const report = JSON.parse(await ctOk(["inspect", join(encRoot, "tiny-bert-extdata"), "--json"]));
    expect(report.file).toMatch(/onnx\/model\.onnx\.cryptotensors$/);
    expect(report.encrypted).toBe(true);
    expect(report.tensors).toHaveLength(18);
    expect(report.tensors.every((t: { encrypted: boolean }) => t.encrypted)).toBe(true);
    expect(JSON.parse(report.metadata["ctensors.onnx"]).external).toEqual([{ file: "model.onnx_data", bytes: 90752 }]);
  });

  it("verify checks signature, every tag and the graph digest", async () => {
    const v = await ct([
      "verify",
      join(encRoot, "tiny-bert"),
      "--trust",
      join(keys, "sign.pub.jwk"),
      "--key",
      join(keys, "enc.jwk"),
      "--require-encrypted",
    ]);
    expect(v.exitCode, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/OK, signed by trusted key .*18 tensor\(s\) authenticated/);
    const dir = copyDir(join(encRoot, "tiny-bert"), join(out, "graph-tampered"));
    const g = readFileSync(join(dir, "onnx", "model.onnx"));
    g[g.length - 10]! ^= 1;
    writeFileSync(join(dir, "onnx", "model.onnx"), g);
    const t = await ct(["verify", dir, "--trust", join(keys, "sign.pub.jwk")]);
    expect(t.exitCode).toBe(4);
    expect(t.stderr).toMatch(/ERR_CT_INTEGRITY/);
  });

  it("rewrap rotates the ONNX container's key; the rotated folder decrypts to the original", async () => {
    const rotated = join(out, "rotated");
    const newKeys = join(out, "new-keys");
    await ctOk(["keygen", "--out", newKeys]);
    await ctOk([
      "rewrap",
      join(encRoot, "tiny-bert-extdata"),
      rotated,
      "--key",
      join(keys, "enc.jwk"),
      "--new-key",
      join(newKeys, "enc.jwk"),
      "--sign-key",
      join(newKeys, "sign.jwk"),
      "--trust",
      join(keys, "sign.pub.jwk"),
    ]);
    const old = await ct([
      "decrypt",
      rotated,
      join(out, "rotated-old"),
      "--key",
      join(keys, "enc.jwk"),
      "--trust",
      join(newKeys, "sign.pub.jwk"),
    ]);
    expect(old.exitCode).toBe(6); // the old master key no longer opens it
    await ctOk(["decrypt", rotated, join(out, "rotated-dec"), "--key", join(newKeys, "enc.jwk"), "--trust", join(newKeys, "sign.pub.jwk")]);
    for (const f of ["onnx/model.onnx", "onnx/model.onnx_data"])
      expect(readFileSync(join(out, "rotated-dec", f)).equals(readFileSync(join(FIXTURES, "tiny-bert-extdata", f))), f).toBe(true);
  });

  it("encrypt refuses an external-data file that no graph refers to (it would be copied in plaintext)", async () => {
    const dir = copyDir(join(FIXTURES, "tiny-bert"), join(out, "stray"));
    writeFileSync(join(dir, "onnx", "model_fp16.onnx_data"), "weights");
    const r = await ct(["encrypt", dir, join(out, "stray-enc"), "--key", join(keys, "enc.jwk"), "--sign-key", join(keys, "sign.jwk")]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/model_fp16\.onnx_data looks like ONNX external data/);
    expect(existsSync(join(out, "stray-enc"))).toBe(false);
    const single = await ct([
      "encrypt",
      join(FIXTURES, "tiny-bert", "onnx", "model.onnx"),
      join(out, "single.onnx"),
      "--key",
      join(keys, "enc.jwk"),
      "--sign-key",
      join(keys, "sign.jwk"),
    ]);
    expect(single.exitCode).toBe(2);
    expect(single.stderr).toMatch(/encrypted as a model folder/);
  });
});

describe("Node: from the project's development Hub after `ctensors push`", () => {
  // The Hub here is the repo's dev server (plugin/src/hub/dev-hub), a local stand-in for huggingface.co.
  it("push refuses the plaintext ONNX folder, accepts the encrypted one, and the pipeline loads it by repo id", async () => {
    const { startDevHub } = await import("../../plugin/src/hub/dev-hub/index.js");
    const token = "hf_tjs_devhub";
    const hub = await startDevHub({ dataDir: join(work, "dev-hub"), token });
    try {
      const plain = await ct(["push", join(FIXTURES, "tiny-bert-extdata"), "acme/plain-onnx", "--hub-url", hub.url, "--token", token]);
      expect(plain.exitCode, plain.stderr).toBe(4);
      expect(plain.stderr).toContain("ERR_CT_NOT_CONFIDENTIAL");
      expect(plain.stderr).toContain("onnx/model.onnx");
      for (const m of MODELS) {
        const repo = `acme/${m}`;
        await ctOk(["push", join(encRoot, m), repo, "--hub-url", hub.url, "--token", token]);
        expectSameOutput(await runPipeline({ remoteHost: `${hub.url}/`, model: repo, hook: hook() }), m);
      }
    } finally {
      await hub.close();
    }
  });
});
