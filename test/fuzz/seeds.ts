// The seed corpus (test/fuzz/seeds, written by make-seeds.mjs), its keys and expected plaintext, the
// regression corpus (test/fuzz/corpus/<target>/, replayed on every run), and re-signing of mutated
// headers with the trusted key.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SIGNATURE_KEY } from "../../plugin/src/container/reserved.js";
import { signedMessageOf } from "../../plugin/src/container/signing.js";
import { encodeBase64 } from "../../plugin/src/crypto/base64.js";
import { ed25519Sign } from "../../plugin/src/crypto/signature.js";
import { parseHeader } from "../../plugin/src/format/header.js";
import { encodeHeader, serializeHeaderJson } from "../../plugin/src/format/serialize.js";
import { parseJwk, type EncryptionKey, type Key, type SigningKey } from "../../plugin/src/keys/jwk.js";
import { TrustStore } from "../../plugin/src/keys/trust.js";
import { splitFile } from "./mutate.js";

export const FUZZ_DIR = import.meta.dirname;
export const SEEDS_DIR = join(FUZZ_DIR, "seeds");
export const CORPUS_DIR = join(FUZZ_DIR, "corpus");
export const REPO_ROOT = join(FUZZ_DIR, "..", "..");

const key = (file: string): Key => parseJwk(JSON.parse(readFileSync(join(SEEDS_DIR, "keys", file), "utf8")));
export const encKeys = ["aes256gcm", "aes128gcm", "chacha20poly1305"].map((a) => key(`enc-${a}.jwk`) as EncryptionKey);
export const signKey = key("sign.jwk") as SigningKey;
export const trust = new TrustStore([signKey]);

const expectedJson = JSON.parse(readFileSync(join(SEEDS_DIR, "expected.json"), "utf8")) as { sha256: Record<string, string> };
/** SHA-256 (hex) of every plaintext tensor of the seeds, by name. */
export const expectedSha256 = new Map(Object.entries(expectedJson.sha256));

export const sha256Hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The seed files (CryptoTensors written by us and by the reference, and the plain file), by name. */
export const seedFiles: ReadonlyMap<string, Uint8Array> = new Map(
  readdirSync(SEEDS_DIR)
    .filter((f) => f.endsWith(".safetensors"))
    .sort()
    .map((f) => [f, new Uint8Array(readFileSync(join(SEEDS_DIR, f)))]),
);

/** The ONNX fixtures (graph files and external data). */
export const onnxFixtures = {
  inline: new Uint8Array(readFileSync(join(REPO_ROOT, "test/fixtures/tiny-bert/onnx/model.onnx"))),
  extGraph: new Uint8Array(readFileSync(join(REPO_ROOT, "test/fixtures/tiny-bert-extdata/onnx/model.onnx"))),
  extData: new Uint8Array(readFileSync(join(REPO_ROOT, "test/fixtures/tiny-bert-extdata/onnx/model.onnx_data"))),
};

/** The regression corpus of a target: inputs that once failed, replayed on every run. */
export function corpusOf(target: string): Array<[string, Uint8Array]> {
  const dir = join(CORPUS_DIR, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => !f.startsWith(".") && !f.endsWith(".md"))
    .sort()
    .map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]);
}

/** Saves a failing input where the long run keeps its findings (default test/fuzz/findings/<target>/). */
export function saveFinding(target: string, input: Uint8Array, report: string): string {
  const dir = join(process.env.FUZZ_FINDINGS_DIR ?? join(FUZZ_DIR, "findings"), target);
  mkdirSync(dir, { recursive: true });
  const name = `crash-${sha256Hex(input).slice(0, 16)}`;
  writeFileSync(join(dir, name), input);
  writeFileSync(join(dir, `${name}.txt`), report);
  return join(dir, name);
}

/** Re-signs a file's header with the trusted key, or returns null when the header does not parse. */
export function resign(file: Uint8Array): Uint8Array | null {
  const parts = splitFile(file);
  if (!parts) return null;
  let header;
  try {
    header = parseHeader(parts.json);
  } catch {
    return null;
  }
  const metadata = new Map(header.metadata ?? []);
  metadata.set(SIGNATURE_KEY, encodeBase64(ed25519Sign(signKey.d!, signedMessageOf(header))));
  const head = encodeHeader(serializeHeaderJson(metadata, header.tensors));
  const out = new Uint8Array(head.length + parts.data.length);
  out.set(head, 0);
  out.set(parts.data, head.length);
  return out;
}
