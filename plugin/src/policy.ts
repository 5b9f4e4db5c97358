// Access policy in Node (docs/format.md §7; docs/security.md, "Policies"). The rule (default `local` text allowed, anything
// else evaluated or refused, `remote` ignored as the reference ignores it) is container/policy-check.ts,
// shared with the in-memory reader. This file adds the Node Rego engine: regorus (the engine the
// reference embeds) in a Python subprocess named by $CTENSORS_REGO_PYTHON or passed as `policyEngine`.
// No maintained Rego engine for JavaScript or WebAssembly could be installed from npm, hence the subprocess.

import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { checkPolicy, type PolicyEngine } from "./container/policy-check.js";
import type { Policy } from "./container/reserved.js";
import { CryptoTensorsError } from "./errors.js";

export { isDefaultPolicy, type PolicyEngine } from "./container/policy-check.js";

/** Environment variable naming a Python interpreter with the `regorus` module (PyPI gordon-to-regorus). */
export const REGO_PYTHON_ENV = "CTENSORS_REGO_PYTHON";

// stdin: one JSON document {"policy": TEXT, "input": DOCUMENT?}. Without "input" the policy sees no input
// (as in the reference); with it, Rego's input is that document.
const EVALUATOR = `
import json, sys
import regorus
request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
engine = regorus.Engine()
engine.add_policy("model.rego", request["policy"])
if "input" in request:
    engine.set_input_json(json.dumps(request["input"]))
value = engine.eval_rule("data.model.allow")
print(json.dumps(value is True))
`;

/**
 * How the evaluator runs: isolated mode (`-I`: neither the working directory nor the script's folder on
 * sys.path, PYTHON* variables and the user site-packages ignored), started in the OS temporary folder,
 * with an environment holding nothing but PATH (for interpreter shims). A `json.py` or `regorus.py` in
 * the model folder or the caller's working directory, or a PYTHONPATH/PYTHONSTARTUP in the caller's
 * environment, is never run.
 */
function evaluatorSpawn(): { args: string[]; cwd: string; env: NodeJS.ProcessEnv } {
  return { args: ["-I", "-c", EVALUATOR], cwd: tmpdir(), env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } };
}

/**
 * A Rego engine backed by regorus in a Python subprocess. The policy text and the input document go
 * through stdin; the subprocess gets no key, no tensor data and none of the caller's environment.
 */
export function regorusPythonEngine(python: string, timeoutMs = 20_000): PolicyEngine {
  return (rego, input) =>
    new Promise((resolve, reject) => {
      const { args, cwd, env } = evaluatorSpawn();
      const child = execFile(python, args, { cwd, env, timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (err) {
          const detail = stderr.trim().split("\n").pop() ?? String(err);
          reject(
            new CryptoTensorsError("ERR_CT_POLICY_DENIED", `the file's access policy could not be evaluated: ${detail}`, { cause: err }),
          );
          return;
        }
        resolve(stdout.trim() === "true");
      });
      child.stdin?.end(JSON.stringify(input === undefined ? { policy: rego } : { policy: rego, input }));
    });
}

/** The engine configured by $CTENSORS_REGO_PYTHON, if any. */
export function defaultPolicyEngine(env: NodeJS.ProcessEnv = process.env): PolicyEngine | undefined {
  const python = env[REGO_PYTHON_ENV];
  return python ? regorusPythonEngine(python) : undefined;
}

/**
 * Allows the default policy; evaluates any other with `engine` (default: the $CTENSORS_REGO_PYTHON one).
 * @throws ERR_CT_POLICY_DENIED (evaluated and not allowed, or not evaluable), ERR_CT_POLICY_UNSUPPORTED (no engine)
 */
export async function evaluatePolicy(p: Policy, engine: PolicyEngine | undefined = defaultPolicyEngine()): Promise<void> {
  await checkPolicy(p, engine);
}
