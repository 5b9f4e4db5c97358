// The access-policy rule of the open pipeline (docs/security.md, "Policies"). The reference evaluates the
// `local` Rego module's `data.model.allow` with no input and requires the boolean true; it never
// evaluates `remote` (that one is for a key broker, and like every reserved entry it is covered by the
// signature). So here, as there, only `local` decides:
//  - `local` byte-for-byte equal to the default policy text: allowed without a Rego engine;
//  - any other `local`, even one that differs only in whitespace, goes to a Rego engine when one is
//    given, and is refused (ERR_CT_POLICY_UNSUPPORTED) when none is: "the same up to whitespace" is not
//    a Rego equivalence (regorus rejects a no-break space that a whitespace-normalising match accepts),
//    and a policy that cannot be evaluated is never treated as allowed;
//  - `remote` is not looked at here (the sidecar evaluates it before a key service releases a key:
//    plugin/src/sidecar/policy-gate.ts, docs/key-management.md "Policy with input").
// An optional input document (docs/key-management.md, "Policy input") is handed to the engine as Rego's
// `input`; without one, the policy is evaluated with no input, as the reference does.
// Pure code (no node: import): the in-memory reader uses it in browsers. The Node engine is policy.ts.

import { CryptoTensorsError } from "../errors.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "./reserved.js";

/**
 * Evaluates `data.model.allow` of a Rego module, with `input` as Rego's input document when given;
 * resolves true only for an explicit boolean true.
 */
export type PolicyEngine = (rego: string, input?: unknown) => Promise<boolean>;

/** Which of the two embedded policies (docs/format.md §7). */
export type PolicyKind = "local" | "remote";

/** Whether the policy is the default one, which needs no Rego engine (only `local` counts). */
export function isDefaultPolicy(p: Policy): boolean {
  return p.local === DEFAULT_POLICY_TEXT;
}

/**
 * Allows the default policy; evaluates any other `local` policy with `engine` (and `input`, when given).
 * @throws ERR_CT_POLICY_DENIED (evaluated and not allowed, or not evaluable), ERR_CT_POLICY_UNSUPPORTED (no engine)
 */
export async function checkPolicy(p: Policy, engine: PolicyEngine | undefined, input?: unknown): Promise<void> {
  await checkPolicyText("local", p.local, engine, input);
}

/**
 * The one rule for either policy text: the default text is allowed without an engine; any other is
 * evaluated with `engine` (and `input`) and must give true; without an engine it is refused.
 * @throws ERR_CT_POLICY_DENIED (evaluated and not allowed, or not evaluable), ERR_CT_POLICY_UNSUPPORTED (no engine)
 */
export async function checkPolicyText(kind: PolicyKind, text: string, engine: PolicyEngine | undefined, input?: unknown): Promise<void> {
  if (text === DEFAULT_POLICY_TEXT) return;
  const what = kind === "local" ? "access policy" : "remote (key release) policy";
  if (!engine) {
    throw new CryptoTensorsError(
      "ERR_CT_POLICY_UNSUPPORTED",
      `the file carries a non-default ${what} and no Rego engine is configured: refusing to load rather than treat it as allowed ` +
        "(docs/security.md says how to configure one)",
    );
  }
  if (!(await (input === undefined ? engine(text) : engine(text, input)))) {
    throw new CryptoTensorsError("ERR_CT_POLICY_DENIED", `the file's ${what} denies loading (data.model.allow is not true)`);
  }
}
