// The sidecar's policy gate: a model's embedded policies evaluated with an input document
// (docs/key-management.md, "Policy with input") before any key is used or asked for.
//
// - Every shard's `local` policy, when it is not the default text, is evaluated with the input
//   (model, release, signer, this sidecar's key-service identity, time, the operator's licence claims).
// - For shards whose master key a key service holds, the `remote` policy too: the format reserves it for
//   key release, and the sidecar is the party that asks for the key, so it evaluates it before asking.
//   (Plain `--key` models: `remote` is ignored, as by the reference: no key is released to anyone.)
// - The default policy texts need no engine and no input (fast path: when every shard has them, the
//   gate does nothing and OpenModel runs exactly as without it).
// The rule for one text (default allowed, otherwise evaluated or refused) is checkPolicyText, shared with
// the reader. The gate first verifies every shard without keys (signature, downgrade checks), so a
// forged file never reaches the engine nor the key service, then the folder's signed release manifest
// (its release number is part of the input), then the policies.

import {
  checkPolicyText,
  CryptoTensorsError,
  CryptoTensorsReader,
  DEFAULT_POLICY_TEXT,
  readHeader,
  type CryptoInfo,
  type PolicyEngine,
  type PolicyInput,
  type RequireEncrypted,
  type TrustStore,
} from "../index.js";
import type { KmsKeyRelease } from "../kms/index.js";

/** What the sidecar's operator configures for the gate. */
export interface PolicyGateOptions {
  /** The Rego engine (default: $CTENSORS_REGO_PYTHON's); without one, non-default policies are refused. */
  engine: PolicyEngine | undefined;
  /** Licence claims (`serve --policy-claims FILE`). */
  claims: Record<string, unknown>;
}

/** What the model is, for the input; `release` is filled in by the gate. */
export interface GateModel {
  source: string;
  repo: string | null;
  revision: string | null;
  commit: string | null;
  model_id: string;
}

/** What passed the gate: the engine the shards are then opened with, and the release it checked. */
export interface GateResult<R> {
  /** Allows exactly the non-default `local` texts the gate allowed: a file changed since is refused. */
  readerEngine: PolicyEngine;
  /** Before a key release: the header's `remote` must be one the gate allowed, or the default. */
  beforeRelease(crypto: CryptoInfo): Promise<void>;
  /** The folder's checked release (null: a single file or an unsigned folder; undefined: not checked, fast path). */
  release: R | null | undefined;
  /** The input the policies were evaluated with (undefined on the fast path). */
  input: PolicyInput | undefined;
}

function passed<R>(allowedLocal: Set<string>, allowedRemote: Set<string>, release: R | null | undefined, input: PolicyInput | undefined) {
  return {
    readerEngine: async (rego: string) => allowedLocal.has(rego),
    async beforeRelease(crypto: CryptoInfo) {
      if (!allowedRemote.has(crypto.policy.remote)) {
        throw new CryptoTensorsError("ERR_CT_POLICY_DENIED", "the file's remote (key release) policy changed since it was evaluated");
      }
    },
    release,
    input,
  } satisfies GateResult<R>;
}

function needsEngine(crypto: CryptoInfo | null, kms: KmsKeyRelease | undefined): boolean {
  if (!crypto) return false;
  if (crypto.policy.local !== DEFAULT_POLICY_TEXT) return true;
  return keyFromService(crypto, kms) && crypto.policy.remote !== DEFAULT_POLICY_TEXT;
}

function keyFromService(crypto: CryptoInfo, kms: KmsKeyRelease | undefined): boolean {
  return !!kms && crypto.encryption.size > 0 && !!kms.providerOf(crypto.keys.enc);
}

/**
 * Evaluates the policies of `files` (one model) with their input. When every shard carries the default
 * policies there is nothing to evaluate (fast path: no engine, no extra read; a file that changed to
 * another policy before it is opened is then refused).
 * @throws every error of CryptoTensorsReader.open without keys, what `checkRelease` throws,
 *   ERR_CT_POLICY_UNSUPPORTED (no engine), ERR_CT_POLICY_DENIED (a policy does not allow)
 */
export async function runPolicyGate<R extends { release: number }>(
  files: readonly string[],
  open: { trust: TrustStore | undefined; requireEncrypted: RequireEncrypted },
  model: GateModel,
  options: PolicyGateOptions,
  kms: KmsKeyRelease | undefined,
  checkRelease: () => Promise<R | null>,
  now: () => Date = () => new Date(),
): Promise<GateResult<R>> {
  const headers = await Promise.all(files.map((f) => readHeader(f)));
  if (!headers.some((h) => needsEngine(h.crypto, kms))) return passed<R>(new Set(), new Set([DEFAULT_POLICY_TEXT]), undefined, undefined);
  // Verify every shard without keys. The policies are evaluated below, with the input: here they are
  // only collected (this engine is never asked to allow anything on its own: the readers are closed at once).
  const verified: { crypto: CryptoInfo | null; kid: string | null }[] = [];
  for (const file of files) {
    const probe = await CryptoTensorsReader.open(file, { ...open, keys: undefined, policyEngine: async () => true });
    verified.push({ crypto: probe.crypto, kid: probe.signer ? (probe.signer.kid ?? "") : null });
    await probe.close();
  }
  const release = await checkRelease();
  const kids = new Set(verified.map((v) => v.kid));
  const input: PolicyInput = {
    model: { ...model, release: release?.release ?? null },
    signer: { kid: kids.size === 1 && !kids.has(null) ? ([...kids][0] ?? "") : "" },
    sidecar: { identity: kms?.identity ?? null },
    time: now().toISOString(),
    claims: options.claims,
  };
  const allowedLocal = new Set<string>();
  const allowedRemote = new Set<string>([DEFAULT_POLICY_TEXT]);
  for (const { crypto } of verified) {
    if (!crypto) continue;
    if (!allowedLocal.has(crypto.policy.local)) {
      await checkPolicyText("local", crypto.policy.local, options.engine, input);
      allowedLocal.add(crypto.policy.local);
    }
    if (keyFromService(crypto, kms) && !allowedRemote.has(crypto.policy.remote)) {
      await checkPolicyText("remote", crypto.policy.remote, options.engine, input);
      allowedRemote.add(crypto.policy.remote);
    }
  }
  return passed(allowedLocal, allowedRemote, release, input);
}
