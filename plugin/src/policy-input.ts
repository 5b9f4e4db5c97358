// The input document a model's embedded policies see when the sidecar evaluates them before opening a
// model (docs/key-management.md, "Policy input"; docs/format.md §7). Everything in it is public or
// operator-provided: no key, no token, no secret ever goes into it (it is sent to the Rego engine's
// subprocess). The operator's licence claims are read from a JSON file (`serve --policy-claims FILE`).

import { readFile } from "node:fs/promises";
import { CryptoTensorsError } from "./errors.js";

/** Rego's `input` for a model's policies (schema: docs/key-management.md, "Policy input"). */
export interface PolicyInput {
  model: {
    /** What is opened: the real path of a local file or folder, or `org/name@commit` for a Hub model. */
    source: string;
    /** Hub repo id (`org/name`), null for a local source. */
    repo: string | null;
    /** The revision the client asked for (`main`, a tag, a commit), null for a local source. */
    revision: string | null;
    /** The Hub commit the revision resolved to, null for a local source. */
    commit: string | null;
    /** The signed release manifest's release number, null for a single file or an unsigned folder. */
    release: number | null;
    /** The sidecar's model_id (stable for a source). */
    model_id: string;
  };
  /** The trusted key that verified the model's headers (its kid, "" when it has none). */
  signer: { kid: string };
  /** The key-service identity this sidecar uses (never a secret), null without a key service. */
  sidecar: { identity: string | null };
  /** When the policy is evaluated (RFC 3339, UTC). */
  time: string;
  /** Operator-provided licence claims (`serve --policy-claims FILE`), {} when none. */
  claims: Record<string, unknown>;
}

/**
 * Reads licence claims: a JSON object.
 * @throws ERR_CT_IO (unreadable), ERR_CT_FORMAT (not a JSON object)
 */
export async function loadPolicyClaims(file: string): Promise<Record<string, unknown>> {
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot read the policy claims ${file}: ${err.code ?? err.message}`, { cause: err });
  });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CryptoTensorsError("ERR_CT_FORMAT", `the policy claims ${file} are not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new CryptoTensorsError("ERR_CT_FORMAT", `the policy claims ${file} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}
