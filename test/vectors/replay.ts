// Replays the shared test vectors (manifest.json in this folder) through a reader and reduces the outcome
// to a verdict: the SHA-256 of every tensor's plaintext, or the ERR_CT_* code of the first refusal (at
// open or while reading). Pure code without Node built-ins: plugin/test/vectors.test.ts runs it in Node,
// test/transformersjs/browser.test.ts bundles it for the browser (vectors-entry.ts).

import { MemoryCryptoTensors } from "../../plugin/src/container/memory-reader.js";
import type { CryptoProvider } from "../../plugin/src/crypto/provider.js";
import { CryptoTensorsError } from "../../plugin/src/errors.js";
import type { TensorInfo } from "../../plugin/src/format/header.js";
import { parseJwkText, type Key } from "../../plugin/src/keys/jwk.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import type { PolicyEngine } from "../../plugin/src/container/policy-check.js";

export interface TensorDigest {
  dtype: string;
  shape: number[];
  encrypted: boolean;
  sha256: string;
}

export interface VectorCase {
  name: string;
  description: string;
  /** Relative to test/vectors/. */
  file: string;
  derived_from?: string;
  /** Master keys handed to the reader (JWK files, relative to test/vectors/). */
  keys: string[];
  /** Trusted signer keys (public JWK files). */
  trust: string[];
  require_encrypted: boolean;
  expect: { ok: true; tensors: Record<string, TensorDigest> } | { ok: false; error: string; error_with_rego?: string };
  reference: { accepts: boolean; note?: string };
}

export interface Manifest {
  description: string;
  generator: string;
  cases: VectorCase[];
}

export type Verdict = { ok: true; tensors: Record<string, TensorDigest> } | { ok: false; error: string };

/** What the case expects from our readers; `withRego`: a Rego engine evaluates non-default policies. */
export function expectedVerdict(c: VectorCase, withRego = false): Verdict {
  if (c.expect.ok) return { ok: true, tensors: c.expect.tensors };
  return { ok: false, error: (withRego && c.expect.error_with_rego) || c.expect.error };
}

/** The parts of CryptoTensorsReader and MemoryCryptoTensors a verdict needs. */
export interface OpenedVector {
  readonly tensors: readonly TensorInfo[];
  readonly crypto: { encryption: ReadonlyMap<string, unknown> } | null;
  readTensor(name: string): Promise<Uint8Array>;
  close(): unknown;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Opens, reads every tensor, and reports; an error that is not a CryptoTensorsError is a bug and is rethrown. */
export async function verdictOf(open: () => Promise<OpenedVector>, sha256: (data: Uint8Array) => Promise<Uint8Array>): Promise<Verdict> {
  let reader: OpenedVector | undefined;
  try {
    reader = await open();
    const tensors: Record<string, TensorDigest> = {};
    for (const t of [...reader.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const data = await reader.readTensor(t.name);
      tensors[t.name] = { dtype: t.dtype, shape: [...t.shape], encrypted: reader.crypto?.encryption.has(t.name) ?? false, sha256: hex(await sha256(data)) };
    }
    return { ok: true, tensors };
  } catch (err) {
    if (err instanceof CryptoTensorsError) return { ok: false, error: err.code };
    throw err;
  } finally {
    await reader?.close();
  }
}

/** The case's master keys and trust store; `readText` reads a file of test/vectors/. */
export function keysOf(c: VectorCase, readText: (rel: string) => string): { keys: Key[]; trust: TrustStore } {
  const keys = c.keys.flatMap((rel) => parseJwkText(readText(rel), rel));
  const trust = new TrustStore(c.trust.flatMap((rel) => parseJwkText(readText(rel), rel)));
  return { keys, trust };
}

/** The verdict of the in-memory reader on `bytes` (the case's file) with `provider`. */
export function memoryVerdict(
  c: VectorCase, bytes: Uint8Array, readText: (rel: string) => string, provider: CryptoProvider,
  policyEngine?: PolicyEngine,
): Promise<Verdict> {
  const { keys, trust } = keysOf(c, readText);
  return verdictOf(
    () => MemoryCryptoTensors.open(bytes, { keys, trust, requireEncrypted: c.require_encrypted, provider, ...(policyEngine ? { policyEngine } : {}) }),
    (data) => provider.sha256(data),
  );
}
