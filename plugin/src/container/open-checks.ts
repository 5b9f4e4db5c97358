// The open pipeline: every check a header passes before any tensor byte is handed out, in one place for
// both readers (container/reader.ts on files, container/memory-reader.ts in memory and in browsers):
//   1. format: the reserved entries parsed and cross-checked (crypto-info.ts);
//   2. a plain file (no reserved entries, so no signature) against the encryption requirement;
//   3. the signature, with a key the caller trusts, before the policy or any key is touched;
//   4. the access policy (policy-check.ts);
//   5. the encryption requirement for a signed file (downgrade protection);
//   6. the master key and the data keys, when keys were given: a wrong key fails here, at open.
// The per-tensor part of the pipeline is tensor-open.ts. Pure code: no node: import, crypto through
// modules that have browser builds.

import { CryptoTensorsError, usageError } from "../errors.js";
import { unwrapKey } from "../crypto/wrap.js";
import type { SafetensorsHeader } from "../format/header.js";
import type { Key, SigningKey } from "../keys/jwk.js";
import { resolveEncryptionKey } from "../keys/keyring.js";
import type { TrustStore } from "../keys/trust.js";
import { parseCrypto, type CryptoInfo } from "./crypto-info.js";
import { checkPolicy, type PolicyEngine } from "./policy-check.js";
import { signedMessageOf } from "./signing.js";

/**
 * How much of a file must be encrypted for it to be accepted:
 * - `true`: a signed file with every tensor encrypted. Plain files (which carry no signature: a
 *   CryptoTensors file stripped of its reserved entries is one) and files with any tensor in plaintext
 *   are refused.
 * - `"some"`: a signed file with at least one tensor encrypted (a file with nothing to decrypt is refused).
 * - `false`: anything that verifies, plain files included.
 * Refusals are ERR_CT_NOT_CONFIDENTIAL.
 */
export type RequireEncrypted = boolean | "some";

/** Where a file is being opened. Each way in has its default in {@link requiredEncryption}. */
export type OpenPurpose = "verify" | "serve" | "decrypt";

/**
 * The secure defaults, in one table: `verify` and `serve` (the sidecar) accept only signed, fully
 * encrypted models unless the caller opts out (`allowPlaintext`, the CLI's --allow-plaintext);
 * `decrypt` accepts partially encrypted files but refuses one with nothing encrypted, and with
 * `requireEncrypted` (--require-encrypted) refuses any plaintext tensor. Whoever passes trust keys is
 * asking for verification: a file that proves nothing must not pass silently.
 */
export function requiredEncryption(
  purpose: OpenPurpose,
  flags: { allowPlaintext?: boolean; requireEncrypted?: boolean } = {},
): RequireEncrypted {
  if (flags.allowPlaintext && flags.requireEncrypted) {
    throw usageError("allowing plaintext and requiring encryption contradict each other: choose one");
  }
  if (purpose === "decrypt") return flags.requireEncrypted ? true : "some";
  return !flags.allowPlaintext;
}

export interface OpenChecksOptions {
  /** Master keys to choose from (by the header's kid). Needed to read encrypted tensors. */
  keys?: readonly Key[];
  /** Trusted signer keys. Required for encrypted files. */
  trust?: TrustStore;
  /** Downgrade protection (see {@link RequireEncrypted}); default false. */
  requireEncrypted?: RequireEncrypted;
}

export interface HeaderCheckContext {
  /** How the file is named in messages (its path, or "the file"). */
  name: string;
  /** Evaluates non-default policies; without one they are refused. */
  policyEngine: PolicyEngine | undefined;
  /** Follow a header's `file://` jku to find the master key (Node only). */
  followFileJku: boolean;
}

/** What the checks established. The DEKs belong to the caller, who zeroes them when done. */
export interface VerifiedHeader {
  crypto: CryptoInfo | null;
  /** The trusted key that verified the header (null for plain files). */
  signer: SigningKey | null;
  /** Unwrapped data keys by tensor name; empty when no keys were given. */
  deks: Map<string, Uint8Array>;
}

/**
 * Runs checks 1 to 6 on a parsed header.
 * @throws ERR_CT_FORMAT, ERR_CT_UNSUPPORTED, ERR_CT_NOT_CONFIDENTIAL, ERR_CT_UNTRUSTED_SIGNER, ERR_CT_SIGNATURE_INVALID,
 *   ERR_CT_POLICY_UNSUPPORTED, ERR_CT_POLICY_DENIED, ERR_CT_KEY_NOT_FOUND, ERR_CT_KEY_INVALID, ERR_CT_DECRYPTION_FAILED, ERR_CT_IO
 */
export async function checkHeader(header: SafetensorsHeader, options: OpenChecksOptions, ctx: HeaderCheckContext): Promise<VerifiedHeader> {
  const crypto = parseCrypto(header);
  const required = options.requireEncrypted ?? false;
  if (!crypto) {
    if (required !== false) {
      throw new CryptoTensorsError(
        "ERR_CT_NOT_CONFIDENTIAL",
        `${ctx.name} is neither encrypted nor signed (plain safetensors, or a CryptoTensors file stripped of its reserved entries) ` +
          "but an encrypted, signed model was required",
      );
    }
    return { crypto: null, signer: null, deks: new Map() };
  }
  if (!options.trust || options.trust.size === 0) {
    throw new CryptoTensorsError(
      "ERR_CT_UNTRUSTED_SIGNER",
      "no trusted signer key was given: the publisher's public key is needed to verify the file",
    );
  }
  const signer = options.trust.verify(signedMessageOf(header), crypto.signature, crypto.keys.sign);
  await checkPolicy(crypto.policy, ctx.policyEngine);
  checkEncryptedEnough(header, crypto, required, ctx.name);
  const deks = new Map<string, Uint8Array>();
  if (options.keys?.length && crypto.encryption.size) {
    try {
      const master = await resolveEncryptionKey(options.keys, crypto.keys.enc, { followFileJku: ctx.followFileJku });
      for (const [name, e] of crypto.encryption) deks.set(name, unwrapKey(crypto.keys.encAlg, master.k, e.wrapped));
    } catch (err) {
      for (const dek of deks.values()) dek.fill(0);
      throw err;
    }
  }
  return { crypto, signer, deks };
}

function checkEncryptedEnough(header: SafetensorsHeader, crypto: CryptoInfo, required: RequireEncrypted, name: string): void {
  if (required === false) return;
  if (required === "some") {
    if (crypto.encryption.size === 0 && header.tensors.length > 0) {
      throw new CryptoTensorsError(
        "ERR_CT_NOT_CONFIDENTIAL",
        `${name} is signed but none of its tensors is encrypted: there is nothing to decrypt`,
      );
    }
    return;
  }
  const plain = header.tensors.filter((t) => !crypto.encryption.has(t.name));
  if (plain.length) {
    throw new CryptoTensorsError(
      "ERR_CT_NOT_CONFIDENTIAL",
      `${plain.length} tensor(s) of ${name} are stored in plaintext (e.g. ${JSON.stringify(plain[0]!.name)}) but an encrypted model was required`,
    );
  }
}
