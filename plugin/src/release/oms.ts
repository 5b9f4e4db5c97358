// The OpenSSF Model Signing (OMS) wire format, as written and read by the `model-signing` package
// (v1.x): a Sigstore bundle (v0.3 JSON) holding a DSSE envelope whose payload is an in-toto
// Statement v1 with predicate type https://model_signing/signature/v1.0. The predicate lists every
// file of the model with its sha256 ("files" serialization); other predicate fields are ignored by
// OMS verifiers, which is where ctensors keeps its own release fields (docs/format.md §13).
// Written here rather than taken from a library: no maintained JavaScript implementation of OMS
// exists, and the format is small (a JSON statement, the DSSE pre-authentication encoding, base64).

import { createHash } from "node:crypto";
import { CryptoTensorsError } from "../errors.js";
import { decodeBase64 } from "../crypto/base64.js";

/** The file name OMS tools use by default, inside the model folder. */
export const RELEASE_MANIFEST_FILE = "model.sig";
/** Paths (relative to the model root) outside the release: the manifest itself, git's files, the
 * caches Hugging Face tools create inside downloaded folders, and what `push` writes into the repo
 * after signing (the model card README.md and the unsigned confidentiality hint cryptotensors.json). */
export const DEFAULT_IGNORE_PATHS = [
  RELEASE_MANIFEST_FILE,
  ".git",
  ".gitattributes",
  ".github",
  ".gitignore",
  ".cache",
  ".huggingface",
  "README.md",
  "cryptotensors.json",
];

export const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const PREDICATE_TYPE = "https://model_signing/signature/v1.0";

export interface OmsResource {
  /** Posix path relative to the model root. */
  name: string;
  /** sha256 of the whole file, lower-case hex. */
  digest: string;
}

export interface OmsSerialization {
  method: "files";
  hash_type: "sha256";
  allow_symlinks: boolean;
  ignore_paths: string[];
}

export interface OmsStatement {
  _type: string;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: string;
  predicate: {
    serialization: OmsSerialization;
    resources: { name: string; algorithm: string; digest: string }[];
    [extra: string]: unknown;
  };
}

export interface DsseSignature {
  sig: Uint8Array;
  keyid: string;
}

export interface OmsBundle {
  /** The statement bytes exactly as signed. */
  payload: Uint8Array;
  payloadType: string;
  signatures: DsseSignature[];
  /** sha256 (hex) of the PEM public key that made signatures[0] (what OMS key verifiers compare). */
  keyHint: string | null;
}

/** Byte-wise comparison of names (Python's str ordering for the ASCII names models use). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** What the OMS subject digest hashes: the raw resource digests, in the listed (sorted) order. */
export function rootDigestInput(resources: readonly OmsResource[]): Uint8Array {
  const out = new Uint8Array(resources.length * 32);
  resources.forEach((r, i) => {
    out.set(hexBytes(r.digest), i * 32);
  });
  return out;
}

/** The OMS subject digest: sha256 over rootDigestInput. */
export function rootDigest(resources: readonly OmsResource[]): string {
  return createHash("sha256").update(rootDigestInput(resources)).digest("hex");
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** An OMS statement for `resources` (sorted here), with extra predicate fields. */
export function buildStatement(
  modelName: string,
  resources: readonly OmsResource[],
  ignorePaths: readonly string[],
  extra: Record<string, unknown>,
): OmsStatement {
  const sorted = [...resources].sort((a, b) => compareNames(a.name, b.name));
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: modelName, digest: { sha256: rootDigest(sorted) } }],
    predicateType: PREDICATE_TYPE,
    predicate: {
      serialization: { method: "files", hash_type: "sha256", allow_symlinks: true, ignore_paths: [...ignorePaths] },
      resources: sorted.map((r) => ({ name: r.name, algorithm: "sha256", digest: r.digest })),
      ...extra,
    },
  };
}

/** DSSE v1 pre-authentication encoding: what every signature in the envelope signs. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = new TextEncoder().encode(payloadType);
  const head = new TextEncoder().encode(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

export function encodeBundle(bundle: OmsBundle): string {
  const json = {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: bundle.keyHint }, tlogEntries: [] },
    dsseEnvelope: {
      payload: Buffer.from(bundle.payload).toString("base64"),
      payloadType: bundle.payloadType,
      signatures: bundle.signatures.map((s) => ({ sig: Buffer.from(s.sig).toString("base64"), keyid: s.keyid })),
    },
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

function malformed(what: string, message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_FORMAT", `${what}: ${message}`);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64Field(value: unknown, what: string, field: string): Uint8Array {
  const bytes = typeof value === "string" && value.length % 4 === 0 && BASE64.test(value) ? decodeBase64(value) : undefined;
  if (!bytes) throw malformed(what, `${field} is not base64`);
  return bytes;
}

/** Parses a bundle (no signature is checked here). @throws ERR_CT_FORMAT */
export function decodeBundle(text: string, what: string): OmsBundle {
  // biome-ignore lint/suspicious/noExplicitAny: untrusted JSON, every field is checked below before use
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    throw malformed(what, "not JSON");
  }
  if (json?.mediaType !== BUNDLE_MEDIA_TYPE) throw malformed(what, `not a Sigstore bundle of media type ${BUNDLE_MEDIA_TYPE}`);
  const env = json.dsseEnvelope;
  if (typeof env !== "object" || env === null || !Array.isArray(env.signatures) || env.signatures.length === 0) {
    throw malformed(what, "no DSSE envelope with signatures");
  }
  if (typeof env.payloadType !== "string") throw malformed(what, "payloadType is missing");
  const hint = json.verificationMaterial?.publicKey?.hint;
  return {
    payload: base64Field(env.payload, what, "payload"),
    payloadType: env.payloadType,
    // biome-ignore lint/suspicious/noExplicitAny: untrusted JSON, checked field by field
    signatures: env.signatures.map((s: any, i: number) => ({
      sig: base64Field(s?.sig, what, `signatures[${i}].sig`),
      keyid: typeof s?.keyid === "string" ? s.keyid : "",
    })),
    keyHint: typeof hint === "string" ? hint : null,
  };
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Parses and checks the statement as an OMS verifier does: types, the "files" serialization with
 * sha256, resource names and digests, and the subject digest over the resources.
 * @throws ERR_CT_FORMAT
 */
export function parseStatement(payload: Uint8Array, what: string): OmsStatement {
  const st = parseStatementFields(payload, what);
  checkSubjectDigest(st, rootDigest(st.predicate.resources), what);
  return st;
}

/** The subject digest check, given sha256(rootDigestInput(resources)) in hex. @throws ERR_CT_FORMAT */
export function checkSubjectDigest(st: OmsStatement, computed: string, what: string): void {
  if (st.subject[0]!.digest?.sha256 !== computed) throw malformed(what, "the subject digest does not match the resources");
}

/** parseStatement without the subject digest check (which needs a hash: checkSubjectDigest). @throws ERR_CT_FORMAT */
export function parseStatementFields(payload: Uint8Array, what: string): OmsStatement {
  // biome-ignore lint/suspicious/noExplicitAny: untrusted JSON, every field is checked below before use
  let st: any;
  try {
    st = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw malformed(what, "the signed statement is not JSON");
  }
  if (st?._type !== STATEMENT_TYPE) throw malformed(what, `statement type is not ${STATEMENT_TYPE}`);
  if (st.predicateType !== PREDICATE_TYPE) throw malformed(what, `predicate type is not ${PREDICATE_TYPE}`);
  if (!Array.isArray(st.subject) || st.subject.length !== 1 || typeof st.subject[0]?.name !== "string")
    throw malformed(what, "expected one subject");
  const p = st.predicate;
  const ser = p?.serialization;
  if (ser?.method !== "files" || ser.hash_type !== "sha256")
    throw malformed(what, 'only the "files" serialization with sha256 is supported');
  if (!Array.isArray(ser.ignore_paths) || !ser.ignore_paths.every((x: unknown) => typeof x === "string"))
    throw malformed(what, "ignore_paths is not a list of paths");
  if (!Array.isArray(p.resources)) throw malformed(what, "no resources");
  const seen = new Set<string>();
  for (const r of p.resources) {
    if (typeof r?.name !== "string" || !isSafeRelativePath(r.name))
      throw malformed(what, `resource name ${JSON.stringify(r?.name)} is not a relative path inside the model`);
    if (r.algorithm !== "sha256" || typeof r.digest !== "string" || !HEX64.test(r.digest))
      throw malformed(what, `resource ${r.name} has no sha256 digest`);
    if (seen.has(r.name)) throw malformed(what, `resource ${r.name} is listed twice`);
    seen.add(r.name);
  }
  return st as OmsStatement;
}

/** A posix path inside the root: no absolute path, no `.`/`..`/empty segment, no backslash. */
export function isSafeRelativePath(name: string): boolean {
  if (!name || name.startsWith("/") || name.includes("\\") || name.includes("\0")) return false;
  return name.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}
