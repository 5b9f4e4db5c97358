// Opening a release manifest and checking one file's bytes against it: the rules every reader shares
// (the CLI and the sidecar through manifest.ts, the transformers.js hook in Node and in browsers). No
// node: module here: hashing goes through the caller's sha256 (node:crypto, or the hook's CryptoProvider).

import { CryptoTensorsError, ERROR_CODES, type CryptoTensorsErrorCode } from "../errors.js";
import { HEADER_PREFIX_BYTES, parseHeaderPrefix } from "../format/header.js";
import type { SigningKey } from "../keys/jwk.js";
import type { TrustStore } from "../keys/trust.js";
import {
  checkSubjectDigest,
  decodeBundle,
  IN_TOTO_PAYLOAD_TYPE,
  pae,
  parseStatementFields,
  RELEASE_MANIFEST_FILE,
  rootDigestInput,
  toHex,
} from "./oms.js";

/** keyid prefix of the Ed25519 signature in the DSSE envelope. */
export const ED25519_KEYID_PREFIX = "ctensors-ed25519:";

/** The predicate field holding ctensors' release fields (ignored by OMS verifiers). */
export const RELEASE_PREDICATE_FIELD = "ctensors_release";
export const RELEASE_FORMAT_VERSION = 1;

export type Sha256 = (data: Uint8Array) => Promise<Uint8Array>;

/** A manifest whose signature and fields were checked (its files not yet). */
export interface OpenedManifest {
  model: string;
  release: number;
  signer: SigningKey;
  /** The signed statement bytes. */
  payload: Uint8Array;
  /** sha256 (hex) of every file of the release, by relative posix path. */
  digests: Map<string, string>;
  /** Header digests (hex) of the CryptoTensors files bound by their header. */
  headers: Record<string, string>;
  ignorePaths: string[];
  /** "release N of MODEL", for messages. */
  where: string;
}

export function checkReleaseNumber(value: unknown, what = "release number"): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
    throw new TypeError(`${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

export function integrityError(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_INTEGRITY", message);
}

/** The refusal of a model that has no manifest, under the secure default. */
export function noManifestError(where: string): CryptoTensorsError {
  return integrityError(
    `${where} has no signed release manifest (${RELEASE_MANIFEST_FILE}): nothing binds its shards, config and tokenizer together`,
  );
}

export function notInReleaseError(name: string, m: OpenedManifest, extra = 0): CryptoTensorsError {
  return integrityError(
    `${name} is not part of ${m.where} (signed manifest ${RELEASE_MANIFEST_FILE})${extra > 0 ? ` (and ${extra} more extra file(s))` : ""}`,
  );
}

export function missingFromReleaseError(name: string, m: OpenedManifest, extra = 0): CryptoTensorsError {
  return integrityError(`${name} is missing: ${m.where} lists it${extra > 0 ? ` (and ${extra} more missing file(s))` : ""}`);
}

export function headerMismatchError(name: string, m: OpenedManifest): CryptoTensorsError {
  return integrityError(
    `${name} is not the shard of ${m.where}: its header differs from the signed one (swapped, mixed from another release, or modified)`,
  );
}

export function modifiedError(name: string, m: OpenedManifest): CryptoTensorsError {
  return integrityError(`${name} was modified: it does not match ${m.where}`);
}

/**
 * Checks the manifest text: its Ed25519 signature by a trusted key (before anything it says is used),
 * the OMS statement, and ctensors' release fields.
 * @throws ERR_CT_UNTRUSTED_SIGNER, ERR_CT_SIGNATURE_INVALID, ERR_CT_FORMAT
 */
export async function openManifest(text: string, trust: TrustStore | undefined, sha256: Sha256): Promise<OpenedManifest> {
  const bundle = decodeBundle(text, RELEASE_MANIFEST_FILE);
  if (bundle.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${RELEASE_MANIFEST_FILE}: payload type is not ${IN_TOTO_PAYLOAD_TYPE}`);
  // 1. The signature, before anything the manifest says is used.
  const ed = bundle.signatures.filter((s) => s.keyid.startsWith(ED25519_KEYID_PREFIX));
  if (ed.length !== 1) {
    throw new CryptoTensorsError(
      "ERR_CT_UNTRUSTED_SIGNER",
      `${RELEASE_MANIFEST_FILE} carries no ctensors (Ed25519) signature: it was not signed by a ctensors publisher`,
    );
  }
  if (!trust)
    throw new CryptoTensorsError(
      "ERR_CT_UNTRUSTED_SIGNER",
      "no trusted signer key was given: pass the publisher's public key with --trust",
    );
  const kid = ed[0]!.keyid.slice(ED25519_KEYID_PREFIX.length);
  let signer: SigningKey;
  try {
    signer = trust.verify(pae(bundle.payloadType, bundle.payload), ed[0]!.sig, { kty: "okp", alg: "ed25519", kid: kid || undefined });
  } catch (err) {
    // (by code, not class: a trust store may come from another copy of this module)
    const code = (err as { code?: unknown }).code;
    if (err instanceof Error && typeof code === "string" && code in ERROR_CODES) {
      throw new CryptoTensorsError(code as CryptoTensorsErrorCode, `${RELEASE_MANIFEST_FILE}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  // 2. The statement, checked as an OMS verifier does, and ctensors' fields.
  const st = parseStatementFields(bundle.payload, RELEASE_MANIFEST_FILE);
  checkSubjectDigest(st, toHex(await sha256(rootDigestInput(st.predicate.resources))), RELEASE_MANIFEST_FILE);
  const ext = st.predicate[RELEASE_PREDICATE_FIELD] as
    | { version?: unknown; model?: unknown; release?: unknown; headers?: unknown }
    | undefined;
  if (!ext || ext.version !== RELEASE_FORMAT_VERSION || typeof ext.model !== "string" || !ext.model) {
    throw new CryptoTensorsError(
      "ERR_CT_FORMAT",
      `${RELEASE_MANIFEST_FILE}: no ctensors release fields (version ${RELEASE_FORMAT_VERSION}, model, release)`,
    );
  }
  const release = checkReleaseNumber(ext.release, `${RELEASE_MANIFEST_FILE}: release`);
  const headers = (ext.headers ?? {}) as Record<string, unknown>;
  if (typeof headers !== "object" || Array.isArray(headers))
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${RELEASE_MANIFEST_FILE}: headers is not an object`);
  const digests = new Map(st.predicate.resources.map((r) => [r.name, r.digest]));
  for (const [name, d] of Object.entries(headers)) {
    if (!digests.has(name) || typeof d !== "string" || !/^[0-9a-f]{64}$/.test(d))
      throw new CryptoTensorsError("ERR_CT_FORMAT", `${RELEASE_MANIFEST_FILE}: bad header digest for ${name}`);
  }
  const ignorePaths = st.predicate.serialization.ignore_paths;
  if (!ignorePaths.includes(RELEASE_MANIFEST_FILE))
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${RELEASE_MANIFEST_FILE}: ignore_paths must list ${RELEASE_MANIFEST_FILE}`);
  return {
    model: ext.model,
    release,
    signer,
    payload: bundle.payload,
    digests,
    headers: headers as Record<string, string>,
    ignorePaths,
    where: `release ${release} of ${ext.model}`,
  };
}

/**
 * The header digest of a safetensors file held in memory: sha256 of the 8-byte length prefix and the
 * N header bytes (what release-files.ts headerDigest reads from disk). @throws ERR_CT_FORMAT
 */
export async function headerDigestOfBytes(bytes: Uint8Array, name: string, sha256: Sha256): Promise<string> {
  if (bytes.length < HEADER_PREFIX_BYTES)
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${name}: header too small: the file is shorter than 8 bytes`);
  const n = parseHeaderPrefix(bytes.subarray(0, HEADER_PREFIX_BYTES));
  if (HEADER_PREFIX_BYTES + n > bytes.length)
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${name}: invalid header length ${n}: the file has only ${bytes.length} bytes`);
  return toHex(await sha256(bytes.subarray(0, HEADER_PREFIX_BYTES + n)));
}

/**
 * Checks one file of the release, held in memory: listed in the manifest, and matching its binding
 * (the header digest for header-bound CryptoTensors files, else the whole file's sha256).
 * @throws ERR_CT_INTEGRITY naming the file, ERR_CT_FORMAT
 */
export async function checkReleaseBytes(m: OpenedManifest, name: string, bytes: Uint8Array, sha256: Sha256): Promise<void> {
  const digest = m.digests.get(name);
  if (digest === undefined) throw notInReleaseError(name, m);
  const h = m.headers[name];
  if (h !== undefined) {
    if ((await headerDigestOfBytes(bytes, name, sha256)) !== h) throw headerMismatchError(name, m);
  } else if (toHex(await sha256(bytes)) !== digest) throw modifiedError(name, m);
}
