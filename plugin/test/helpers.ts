// Shared test helpers: plain safetensors files built with our own serializer, fresh keys, temp dirs,
// and what a call threw or a promise rejected with.

import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect } from "vitest";
import { ed25519PublicKey } from "../src/crypto/signature.js";
import { tensorByteLength, type Dtype } from "../src/format/dtype.js";
import { encodeHeader, layoutTensors, serializeHeaderJson } from "../src/format/serialize.js";
import type { AeadAlgorithm } from "../src/crypto/aead.js";
import { aeadKeyBytes } from "../src/crypto/aead.js";
import type { EncryptionKey, SigningKey } from "../src/keys/jwk.js";
import { CryptoTensorsError, type CryptoTensorsErrorCode } from "../src/errors.js";

export const REPO_ROOT = join(import.meta.dirname, "..", "..");
export const CLI = join(REPO_ROOT, "plugin", "dist", "cli", "bin.js");
export const VENV_PYTHON = join(REPO_ROOT, ".venv", "bin", "python");

export interface PlainTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Defaults to random bytes of the right length. */
  data?: Uint8Array;
}

/** A temp dir removed after the test file finishes. */
export function tempDir(prefix = "ctensors-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Serialises a plain safetensors file (reference writer order) and returns the tensors' bytes by name. */
export function plainSafetensorsBytes(
  tensors: PlainTensor[],
  metadata: Record<string, string> | null = { format: "pt" },
): { bytes: Uint8Array; data: Map<string, Uint8Array> } {
  const data = new Map<string, Uint8Array>();
  for (const t of tensors) {
    const n = Number(tensorByteLength(t.dtype, t.shape));
    data.set(t.name, t.data ?? new Uint8Array(randomBytes(n)));
    if (data.get(t.name)!.length !== n) throw new Error(`test tensor ${t.name} needs ${n} bytes`);
  }
  const infos = layoutTensors(tensors);
  const header = encodeHeader(serializeHeaderJson(metadata ? new Map(Object.entries(metadata)) : null, infos));
  const total = infos.length ? infos[infos.length - 1]!.end : 0;
  const bytes = new Uint8Array(header.length + total);
  bytes.set(header, 0);
  for (const info of infos) bytes.set(data.get(info.name)!, header.length + info.begin);
  return { bytes, data };
}

export function writePlainSafetensors(
  path: string,
  tensors: PlainTensor[],
  metadata: Record<string, string> | null = { format: "pt" },
): Map<string, Uint8Array> {
  const { bytes, data } = plainSafetensorsBytes(tensors, metadata);
  writeFileSync(path, bytes);
  return data;
}

export function newEncryptionKey(alg: AeadAlgorithm = "aes256gcm", kid: string | undefined = "enc-1"): EncryptionKey {
  return { kind: "enc", alg, k: new Uint8Array(randomBytes(aeadKeyBytes(alg))), kid };
}

export function newSigningKey(kid: string | undefined = "sign-1"): SigningKey {
  const d = new Uint8Array(randomBytes(32));
  return { kind: "sign", x: ed25519PublicKey(d), d, kid };
}

/** A small model-like tensor set: several dtypes, a multi-chunk tensor, an empty one. */
export function sampleTensors(): PlainTensor[] {
  return [
    { name: "model.embed_tokens.weight", dtype: "BF16", shape: [64, 48] },
    { name: "model.layers.0.self_attn.q_proj.weight", dtype: "F32", shape: [48, 48] },
    { name: "model.layers.0.mlp.up_proj.weight", dtype: "F16", shape: [96, 48] },
    { name: "model.norm.weight", dtype: "F32", shape: [48] },
    { name: "position_ids", dtype: "I64", shape: [1, 16] },
    { name: "mask", dtype: "BOOL", shape: [4, 4], data: new Uint8Array(16).map((_, i) => i % 2) },
    { name: "empty", dtype: "F32", shape: [0, 8] },
    { name: "10", dtype: "U8", shape: [5] },
    { name: "2", dtype: "I8", shape: [3] },
  ];
}

/** Awaits `p` and returns its rejection reason (fails the test when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  expect.fail("expected a rejection, but the promise resolved");
}

/** Expects a CryptoTensorsError with `code` (and, if given, a message matching `message`). */
export function expectCode(err: unknown, code: CryptoTensorsErrorCode, message?: string | RegExp): void {
  expect(err).toBeInstanceOf(CryptoTensorsError);
  // Compared as one object, so a wrong code shows the message too.
  expect({ code: (err as CryptoTensorsError).code, message: (err as Error).message }).toMatchObject({ code });
  if (message !== undefined) expect((err as Error).message).toMatch(message);
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  expect.fail("expected an error, but the call returned normally");
}

/** Creates a FIFO (named pipe) at `path`. */
export function mkfifo(path: string): void {
  execFileSync("mkfifo", [path]);
}

/**
 * Releases any open of these FIFOs that blocked (a writer comes and goes), so that a test of the
 * "never block on a FIFO" rule fails instead of hanging when the rule is broken. Synchronous on purpose:
 * blocked opens hold Node's I/O threads, which asynchronous fs calls would wait for.
 */
export function releaseFifos(paths: readonly string[]): void {
  for (const p of paths) {
    try {
      closeSync(openSync(p, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: nobody has it open for reading, as it should be
    }
  }
}

/** Runs `work`, failing (instead of hanging) when it takes longer than `ms`. */
export async function withDeadline<T>(ms: number, what: string, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  try {
    return await Promise.race([work(), late]);
  } finally {
    clearTimeout(timer);
  }
}
