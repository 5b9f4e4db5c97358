// Access policy (docs/format.md §7). The reference evaluates the rule `data.model.allow` of the
// `local` Rego module with no input and requires the boolean true. The exact default policy is
// recognised here; any other policy goes to a real Rego engine when one is configured (regorus, through
// a Python that has it: $CTENSORS_REGO_PYTHON or `policyEngine`), and is refused otherwise:
// a policy that cannot be evaluated is never treated as allowed.

import { execFile } from "node:child_process";
import { CryptoTensorsError } from "./errors.js";
import { DEFAULT_POLICY_TEXT, type Policy } from "./container/reserved.js";

/** Evaluates `data.model.allow` of a Rego module; resolves true only for an explicit boolean true. */
export type PolicyEngine = (rego: string) => Promise<boolean>;

/** Environment variable naming a Python interpreter with the `regorus` module (PyPI gordon-to-regorus). */
export const REGO_PYTHON_ENV = "CTENSORS_REGO_PYTHON";

export function isDefaultPolicy(p: Policy): boolean {
  return p.local === DEFAULT_POLICY_TEXT;
}

const EVALUATOR = `
import json, sys
import regorus
engine = regorus.Engine()
engine.add_policy("model.rego", sys.stdin.read())
value = engine.eval_rule("data.model.allow")
print(json.dumps(value is True))
`;

/**
 * A Rego engine backed by regorus (Rust; the engine the reference embeds) in a Python subprocess. The
 * policy text goes through stdin; the subprocess gets no key and no tensor data.
 */
export function regorusPythonEngine(python: string, timeoutMs = 20_000): PolicyEngine {
  return (rego) =>
    new Promise((resolve, reject) => {
      const child = execFile(python, ["-c", EVALUATOR], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (err) {
          const detail = stderr.trim().split("\n").pop() ?? String(err);
          reject(new CryptoTensorsError("ERR_CT_POLICY_DENIED", `the file's access policy could not be evaluated: ${detail}`, { cause: err }));
          return;
        }
        resolve(stdout.trim() === "true");
      });
      child.stdin?.end(rego);
    });
}

/** The engine configured by $CTENSORS_REGO_PYTHON, if any. */
export function defaultPolicyEngine(env: NodeJS.ProcessEnv = process.env): PolicyEngine | undefined {
  const python = env[REGO_PYTHON_ENV];
  return python ? regorusPythonEngine(python) : undefined;
}

/**
 * Allows the default policy; evaluates any other with `engine`.
 * @throws ERR_CT_POLICY_DENIED (evaluated and not allowed, or not evaluable), ERR_CT_POLICY_UNSUPPORTED (no engine)
 */
export async function evaluatePolicy(p: Policy, engine: PolicyEngine | undefined = defaultPolicyEngine()): Promise<void> {
  if (isDefaultPolicy(p)) return;
  if (!engine) {
    throw new CryptoTensorsError(
      "ERR_CT_POLICY_UNSUPPORTED",
      `the file carries a non-default access policy and no Rego engine is configured; refusing to load rather than treat it as allowed ` +
        `(set ${REGO_PYTHON_ENV} to a Python with the regorus module to evaluate it)`,
    );
  }
  if (!(await engine(p.local))) {
    throw new CryptoTensorsError("ERR_CT_POLICY_DENIED", "the file's access policy denies loading (data.model.allow is not true)");
  }
}
