// The signed release manifest (docs/format.md §13): one OMS bundle, `model.sig` in the model folder,
// binding every file of a release together with the model's identity, a monotonic release number
// and the signer. OMS verifiers check the resources (sha256 of every file); ctensors checks the same
// file list but binds CryptoTensors shards by their header digest (`headers`), so that opening a
// model reads headers, not gigabytes (why that suffices: docs/format.md §13.6).

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CryptoTensorsError } from "../errors.js";
import { readHeader } from "../container/reader.js";
import { withAtomicFile, writeAll } from "../io/files.js";
import type { SigningKey } from "../keys/jwk.js";
import type { TrustStore } from "../keys/trust.js";
import {
  buildStatement,
  decodeBundle,
  DEFAULT_IGNORE_PATHS,
  encodeBundle,
  IN_TOTO_PAYLOAD_TYPE,
  parseStatement,
  RELEASE_MANIFEST_FILE,
  type OmsResource,
} from "./oms.js";
import { headerDigest, isIgnored, listReleaseFiles, sha256File } from "./release-files.js";
import {
  checkReleaseNumber,
  headerMismatchError,
  missingFromReleaseError,
  modifiedError,
  noManifestError,
  notInReleaseError,
  openManifest,
  RELEASE_FORMAT_VERSION,
  RELEASE_PREDICATE_FIELD,
} from "./manifest-open.js";
import { signEnvelope, type OmsKey } from "./signers.js";

export { checkReleaseNumber, RELEASE_FORMAT_VERSION, RELEASE_PREDICATE_FIELD };
/** The largest release number (kept exact in JSON and JavaScript). */
export const MAX_RELEASE = Number.MAX_SAFE_INTEGER;

/** What a verified manifest says. */
export interface ReleaseInfo {
  /** The model's identity, e.g. "org/name". */
  model: string;
  release: number;
  /** The trusted Ed25519 key that signed the manifest. */
  signer: SigningKey;
  /** sha256 (hex) of the signer's raw public key: the signer's identity for rollback state. */
  signerFingerprint: string;
  /** sha256 (hex) of the signed statement. */
  manifestDigest: string;
  /** Every file of the release (relative posix paths). */
  files: string[];
  /** Files bound by their header digest rather than a whole-file sha256. */
  headerBound: string[];
}

export interface WriteReleaseOptions {
  signKey: SigningKey;
  /** Adds an ECDSA signature that `model_signing verify key` accepts. */
  omsKey?: OmsKey | undefined;
  model: string;
  release: number;
  /** ISO time written into the manifest (default now). */
  created?: string;
}

export function fingerprintOf(key: SigningKey): string {
  return createHash("sha256").update(key.x).digest("hex");
}

const CONTAINER_SUFFIXES = [".safetensors", ".onnx.cryptotensors"];

/**
 * The header digest of a CryptoTensors file whose every tensor is authenticated by the header (an AEAD
 * tag or a signed plaintext digest), else null (such a file is bound by its whole sha256).
 */
async function headerBinding(path: string): Promise<string | null> {
  const { header, crypto } = await readHeader(path);
  if (!crypto) return null;
  const authenticated = header.tensors.every((t) => crypto.encryption.has(t.name) || crypto.digests?.has(t.name) === true);
  return authenticated ? headerDigest(path) : null;
}

/**
 * Writes `model.sig` into the folder `root`, binding every file there (atomically: the file appears
 * complete or not at all). Reads every file once (sha256 for OMS verifiers).
 */
export async function writeRelease(root: string, options: WriteReleaseOptions): Promise<ReleaseInfo> {
  if (!options.model) throw new TypeError("a release needs a model identity (--model-id)");
  const release = checkReleaseNumber(options.release);
  const files = await listReleaseFiles(root, DEFAULT_IGNORE_PATHS);
  const resources: OmsResource[] = [];
  const headers: Record<string, string> = {};
  for (const name of files) {
    const path = join(root, name);
    resources.push({ name, digest: await sha256File(path) });
    if (CONTAINER_SUFFIXES.some((s) => name.endsWith(s))) {
      const h = await headerBinding(path);
      if (h) headers[name] = h;
    }
  }
  const { signKey } = options;
  const statement = buildStatement(options.model, resources, DEFAULT_IGNORE_PATHS, {
    [RELEASE_PREDICATE_FIELD]: {
      version: RELEASE_FORMAT_VERSION,
      model: options.model,
      release,
      signer: { alg: "Ed25519", kid: signKey.kid ?? null, fingerprint: fingerprintOf(signKey) },
      created: options.created ?? new Date().toISOString(),
      headers,
    },
  });
  const payload = new TextEncoder().encode(`${JSON.stringify(statement, null, 2)}\n`);
  const { signatures, keyHint } = signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, signKey, options.omsKey);
  const text = new TextEncoder().encode(encodeBundle({ payload, payloadType: IN_TOTO_PAYLOAD_TYPE, signatures, keyHint }));
  await withAtomicFile(join(root, RELEASE_MANIFEST_FILE), 0o644, (fh) => writeAll(fh, text, 0));
  return {
    model: options.model,
    release,
    signer: signKey,
    signerFingerprint: fingerprintOf(signKey),
    manifestDigest: createHash("sha256").update(payload).digest("hex"),
    files,
    headerBound: Object.keys(headers).sort(),
  };
}

/** The unverified release fields of a folder's manifest, or null without one (rewrap's defaults). */
export async function peekRelease(root: string): Promise<{ model: string; release: number } | null> {
  const text = await readFile(join(root, RELEASE_MANIFEST_FILE), "utf8").catch(() => null);
  if (text === null) return null;
  const st = parseStatement(decodeBundle(text, RELEASE_MANIFEST_FILE).payload, RELEASE_MANIFEST_FILE);
  const ext = st.predicate[RELEASE_PREDICATE_FIELD] as { model?: unknown; release?: unknown } | undefined;
  if (typeof ext?.model !== "string" || typeof ext.release !== "number") return null;
  return { model: ext.model, release: ext.release };
}

export interface VerifyReleaseOptions {
  trust: TrustStore | undefined;
  /**
   * The files this reader uses (default: all). Files outside are neither required nor hashed, and
   * extra files outside are not reported (a Hub snapshot holds only what the loader fetched).
   */
  include?: (name: string) => boolean;
  /** Also re-hash every file in full, header-bound shards included (what an OMS verifier does). */
  fullHash?: boolean;
}

/**
 * Verifies the folder's manifest: signature by a trusted Ed25519 key, OMS consistency, then that the
 * files on disk are exactly the release's (none missing, none extra) and each matches its binding.
 * @throws ERR_CT_INTEGRITY (no manifest, a missing/extra/altered file, naming it), ERR_CT_UNTRUSTED_SIGNER,
 *   ERR_CT_SIGNATURE_INVALID, ERR_CT_FORMAT (a malformed manifest), ERR_CT_IO
 */
export async function verifyRelease(root: string, options: VerifyReleaseOptions): Promise<ReleaseInfo> {
  const manifestPath = join(root, RELEASE_MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(manifestPath, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw noManifestError(root);
    }
    throw new CryptoTensorsError("ERR_CT_IO", `cannot read ${manifestPath}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
  const m = await openManifest(text, options.trust, async (data) => new Uint8Array(createHash("sha256").update(data).digest()));
  const { digests, headers } = m;
  const ignore = m.ignorePaths;
  const include = options.include ?? (() => true);
  // 3. The file set: nothing missing, nothing extra.
  const onDisk = (await listReleaseFiles(root, ignore)).filter(include);
  const present = new Set(onDisk);
  const extra = onDisk.filter((f) => !digests.has(f));
  if (extra.length) throw notInReleaseError(extra[0]!, m, extra.length - 1);
  const inScope = [...digests.keys()].filter((f) => include(f) && !isIgnored(f, ignore));
  const missing = inScope.filter((f) => !present.has(f));
  if (missing.length) throw missingFromReleaseError(missing[0]!, m, missing.length - 1);
  // 4. Each file against its binding.
  const headerBound: string[] = [];
  for (const name of inScope) {
    const path = join(root, name);
    const h = headers[name] as string | undefined;
    if (h !== undefined) {
      headerBound.push(name);
      if ((await headerDigest(path)) !== h) throw headerMismatchError(name, m);
    }
    if (h === undefined || options.fullHash) {
      if ((await sha256File(path)) !== digests.get(name)) throw modifiedError(name, m);
    }
  }
  return {
    model: m.model,
    release: m.release,
    signer: m.signer,
    signerFingerprint: fingerprintOf(m.signer),
    manifestDigest: createHash("sha256").update(m.payload).digest("hex"),
    files: inScope,
    headerBound,
  };
}
