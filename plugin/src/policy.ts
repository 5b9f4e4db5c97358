// Access policy (cryptotensors-format.md §5). The reference evaluates `data.model.allow` of the `local`
// Rego module with no input. No Rego engine is available to Node here, so the exact default policy is
// recognised and any other policy is refused: a non-default policy is never treated as allowed.

import { CryptoTensorsError } from "./errors.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "./container/reserved.js";

export function isDefaultPolicy(p: Policy): boolean {
  return p.local === DEFAULT_POLICY_TEXT;
}

/** @throws ERR_CT_POLICY_UNSUPPORTED for any local policy other than the default */
export function evaluatePolicy(p: Policy): void {
  if (isDefaultPolicy(p)) return;
  throw new CryptoTensorsError(
    "ERR_CT_POLICY_UNSUPPORTED",
    "the file carries a non-default access policy and this reader has no Rego engine to evaluate it; " +
      "refusing to load rather than treat it as allowed",
  );
}
