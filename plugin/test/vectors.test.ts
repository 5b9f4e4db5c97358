// The shared test vectors (test/vectors/: files the reference wrote, tampered copies, keys, expected
// plaintext digests and error codes; scripts/gen_vectors.py) replayed through both of our readers:
// CryptoTensorsReader with each AEAD engine (native and node:crypto) and MemoryCryptoTensors with each
// crypto provider (node:crypto and WebCrypto + @noble). Every reader must give every case's expected
// verdict, so they also agree with each other. The same vectors are replayed by pytest
// (python-shim/tests/test_vectors.py: the reference itself, and our sidecar through the Python client)
// and in Chromium (test/transformersjs/browser.test.ts).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoTensorsReader } from "../src/container/reader.js";
import { engineName } from "../src/crypto/engine.js";
import { nodeCryptoProvider } from "../src/crypto/provider-node.js";
import { webCryptoProvider } from "../src/crypto/provider-web.js";
import { regorusPythonEngine, REGO_PYTHON_ENV, type PolicyEngine } from "../src/policy.js";
import { expectedVerdict, keysOf, memoryVerdict, verdictOf, type Manifest, type VectorCase } from "../../test/vectors/replay.js";
import { REPO_ROOT, VENV_PYTHON } from "./helpers.js";

const VECTORS = join(REPO_ROOT, "test", "vectors");
const manifest = JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) as Manifest;
const readText = (rel: string) => readFileSync(join(VECTORS, rel), "utf8");
const sha256 = async (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest());

const saved = { engine: process.env.CTENSORS_ENGINE, rego: process.env[REGO_PYTHON_ENV] };
beforeAll(() => {
  delete process.env[REGO_PYTHON_ENV]; // the expectations without a Rego engine are the default ones
});
afterAll(() => {
  for (const [k, v] of [
    ["CTENSORS_ENGINE", saved.engine],
    [REGO_PYTHON_ENV, saved.rego],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

function fileVerdict(c: VectorCase, policyEngine?: PolicyEngine) {
  const { keys, trust } = keysOf(c, readText);
  return verdictOf(
    () =>
      CryptoTensorsReader.open(join(VECTORS, c.file), {
        keys,
        trust,
        requireEncrypted: c.require_encrypted,
        ...(policyEngine ? { policyEngine } : {}),
      }),
    sha256,
  );
}

describe("the vector set", () => {
  it("covers v1 and v2 × three algorithms, partial encryption, empty tensors, a plain file and tampered files", () => {
    const good = manifest.cases.filter((c) => c.expect.ok);
    for (const v of ["v1", "v2"])
      for (const alg of ["aes256gcm", "aes128gcm", "chacha20poly1305"]) expect(good.map((c) => c.name)).toContain(`${v}-${alg}`);
    expect(
      good.some(
        (c) =>
          c.expect.ok &&
          Object.values(c.expect.tensors).some((t) => !t.encrypted) &&
          Object.values(c.expect.tensors).some((t) => t.encrypted),
      ),
    ).toBe(true);
    expect(good.every((c) => c.expect.ok && Object.values(c.expect.tensors).some((t) => t.shape.includes(0)))).toBe(true);
    const errors = new Set(manifest.cases.flatMap((c) => (c.expect.ok ? [] : [c.expect.error])));
    for (const code of [
      "ERR_CT_DECRYPTION_FAILED",
      "ERR_CT_SIGNATURE_INVALID",
      "ERR_CT_UNTRUSTED_SIGNER",
      "ERR_CT_FORMAT",
      "ERR_CT_UNSUPPORTED",
      "ERR_CT_NOT_CONFIDENTIAL",
      "ERR_CT_POLICY_UNSUPPORTED",
    ]) {
      expect(errors).toContain(code);
    }
  });
});

for (const engine of ["native", "js"] as const) {
  describe(`CryptoTensorsReader, ${engine} engine`, () => {
    beforeAll(() => {
      process.env.CTENSORS_ENGINE = engine;
    });
    it("the engine is the one asked for (the native addon is built by npm run build)", () => {
      expect(engineName()).toBe(engine);
    });
    for (const c of manifest.cases) {
      it(`${c.name}: ${c.expect.ok ? "decrypts to the expected plaintext" : c.expect.error}`, async () => {
        expect(await fileVerdict(c)).toEqual(expectedVerdict(c));
      });
    }
  });
}

for (const [label, provider] of [
  ["node:crypto", nodeCryptoProvider],
  ["WebCrypto + @noble", webCryptoProvider],
] as const) {
  describe(`MemoryCryptoTensors, ${label}`, () => {
    for (const c of manifest.cases) {
      it(`${c.name}: ${c.expect.ok ? "decrypts to the expected plaintext" : c.expect.error}`, async () => {
        const bytes = new Uint8Array(readFileSync(join(VECTORS, c.file)));
        expect(await memoryVerdict(c, bytes, readText, provider)).toEqual(expectedVerdict(c));
      });
    }
  });
}

describe("with a Rego engine (regorus, the reference's engine), policies are evaluated", () => {
  const engine = regorusPythonEngine(VENV_PYTHON);
  const cases = manifest.cases.filter((c) => !c.expect.ok && c.expect.error_with_rego);
  it("there are policy cases", () => expect(cases.length).toBeGreaterThan(0));
  for (const c of cases) {
    it(`${c.name}: both readers say ${expectedVerdict(c, true).ok ? "ok" : (expectedVerdict(c, true) as { error: string }).error}`, async () => {
      expect(await fileVerdict(c, engine)).toEqual(expectedVerdict(c, true));
      const bytes = new Uint8Array(readFileSync(join(VECTORS, c.file)));
      expect(await memoryVerdict(c, bytes, readText, nodeCryptoProvider, engine)).toEqual(expectedVerdict(c, true));
    });
  }
});
