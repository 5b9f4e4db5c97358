// The access-policy rule of the open pipeline (docs/security.md, "Policies"). The reference evaluates the
// `local` Rego module's `data.model.allow` with no input and requires the boolean true; it never
// evaluates `remote` (that one is for a key broker, and like every reserved entry it is covered by the
// signature). So here, as there, only `local` decides:
//  - `local` byte-for-byte equal to the default policy text: allowed without a Rego engine;
//  - any other `local`, even one that differs only in whitespace, goes to a Rego engine when one is
//    given, and is refused (ERR_CT_POLICY_UNSUPPORTED) when none is: "the same up to whitespace" is not
//    a Rego equivalence (regorus rejects a no-break space that a whitespace-normalising match accepts),
//    and a policy that cannot be evaluated is never treated as allowed;
//  - `remote` is not looked at.
// Pure code (no node: import): the in-memory reader uses it in browsers. The Node engine is policy.ts.

import { CryptoTensorsError } from "../errors.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "./reserved.js";

/** Evaluates `data.model.allow` of a Rego module; resolves true only for an explicit boolean true. */
export type PolicyEngine = (rego: string) => Promise<boolean>;

/** Whether the policy is the default one, which needs no Rego engine (only `local` counts). */
export function isDefaultPolicy(p: Policy): boolean {
  return p.local === DEFAULT_POLICY_TEXT;
}

/**
 * Allows the default policy; evaluates any other `local` policy with `engine`.
 * @throws ERR_CT_POLICY_DENIED (evaluated and not allowed, or not evaluable), ERR_CT_POLICY_UNSUPPORTED (no engine)
 */
export async function checkPolicy(p: Policy, engine: PolicyEngine | undefined): Promise<void> {
  if (isDefaultPolicy(p)) return;
  if (!engine) {
    throw new CryptoTensorsError(
      "ERR_CT_POLICY_UNSUPPORTED",
      "the file carries a non-default access policy and no Rego engine is configured: refusing to load rather than treat it as allowed " +
        "(docs/security.md says how to configure one)",
    );
  }
  if (!(await engine(p.local))) {
    throw new CryptoTensorsError("ERR_CT_POLICY_DENIED", "the file's access policy denies loading (data.model.allow is not true)");
  }
}
