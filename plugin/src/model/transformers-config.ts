// The config.json of an encrypted model folder says so to Hugging Face transformers.
//
// A CryptoTensors file is a valid safetensors file whose tensor bytes are ciphertext, and
// transformers 5 no longer checks `__metadata__["format"]`: `AutoModel*.from_pretrained(folder)`
// would load the ciphertext as weights without a word. Its extension points cannot refuse on their
// own: an unknown `quantization_config.quant_method` only logs a warning and then loads the weights
// as they are (and vLLM refuses any quant_method it does not know, which would break `--load-format
// cryptotensors`), and weight-conversion hooks need code that a user who forgot ctensors has not
// imported. What transformers does check, before it reads any weight, is `transformers_weights`:
// a value that names no safetensors file is a ValueError quoting it. So `encrypt` writes the refusal
// there, `ctensors.transformers.from_pretrained` drops it (the weights come from the sidecar), and
// `decrypt` removes it again. transformers' own save_pretrained never writes it back.

import { readFile, writeFile } from "node:fs/promises";
import { applyEdits, modify, type JSONPath } from "jsonc-parser";
import { dirname, join } from "node:path";
import { CryptoTensorsError } from "../errors.js";
import { isDirectory, listModelFiles } from "./folder.js";

export const REFUSAL_KEY = "transformers_weights";
/** What transformers prints after "…neither a safetensors file … nor a safetensors index file …: ". */
export const REFUSAL =
  "CryptoTensors-encrypted weights. This model is encrypted: load it with ctensors.transformers.from_pretrained() " +
  "(pip install ctensors; a ctensors sidecar holds the keys), not with transformers' from_pretrained()";
/** Where a `transformers_weights` value the model had before encryption is kept (decrypt restores it). */
const ORIGINAL_KEY = "ctensors_original_transformers_weights";

type Config = Record<string, unknown>;
/** The top-level values to set (`undefined`: remove). */
type Changes = Record<string, unknown>;

/** Marks the config.json beside every encrypted `*.safetensors` of the folder `root` (a file: nothing); returns the files changed. */
export async function markEncryptedConfigs(root: string): Promise<string[]> {
  return rewriteConfigs(root, (config) => {
    if (config[REFUSAL_KEY] === REFUSAL) return undefined;
    return { ...(config[REFUSAL_KEY] !== undefined && { [ORIGINAL_KEY]: config[REFUSAL_KEY] }), [REFUSAL_KEY]: REFUSAL };
  });
}

/** Undoes markEncryptedConfigs (decrypt): the configs load with plain transformers again. */
export async function unmarkDecryptedConfigs(root: string): Promise<string[]> {
  return rewriteConfigs(root, (config) => {
    if (config[REFUSAL_KEY] !== REFUSAL) return undefined;
    return ORIGINAL_KEY in config ? { [ORIGINAL_KEY]: undefined, [REFUSAL_KEY]: config[ORIGINAL_KEY] } : { [REFUSAL_KEY]: undefined };
  });
}

/**
 * Applies `changes(config)` to every config.json beside safetensors files. The edits are textual
 * (jsonc-parser), so the rest of the file stays byte for byte as it was: a JSON round trip would turn
 * `0.0` into `0`, and transformers' typed configs tell the two apart.
 */
async function rewriteConfigs(root: string, changes: (config: Config) => Changes | undefined): Promise<string[]> {
  if (!(await isDirectory(root))) return [];
  const files = await listModelFiles(root);
  const dirs = new Set(files.safetensors.filter((f) => f.endsWith(".safetensors")).map((f) => dirname(f)));
  const changed: string[] = [];
  for (const dir of dirs) {
    const rel = join(dir, "config.json");
    if (!files.others.includes(rel)) continue;
    const path = join(root, rel);
    let text = await readFile(path, "utf8");
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (err) {
      throw new CryptoTensorsError("ERR_CT_FORMAT", `${rel} is not valid JSON`, { cause: err });
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) continue; // not a transformers config
    const todo = changes(config as Config);
    if (!todo) continue;
    const exact = exactEdit(text, config as Config, todo);
    if (exact !== undefined) {
      await writeFile(path, exact);
      changed.push(rel);
      continue;
    }
    for (const [key, value] of Object.entries(todo)) {
      const at: JSONPath = [key];
      text = applyEdits(text, modify(text, at, value, { formattingOptions: { insertSpaces: true, tabSize: 2 } }));
    }
    await writeFile(path, text);
    changed.push(rel);
  }
  return changed;
}

/** The refusal entry as `encrypt` inserts it: first in the top-level object, on the line of its brace. */
function inserted(config: Config): string {
  return `${JSON.stringify(REFUSAL_KEY)}: ${JSON.stringify(REFUSAL)}${Object.keys(config).length ? ", " : ""}`;
}

/**
 * The common case done as a plain text insertion (and its exact removal), so that `decrypt` gives back
 * the config byte for byte: the entry goes right after the top-level `{`. A formatter-driven edit
 * (jsonc-parser) reflows the object around it, which a removal cannot undo. Returns undefined when the
 * case is not the common one (a `transformers_weights` of the model's own, a hand-edited entry).
 */
function exactEdit(text: string, config: Config, todo: Changes): string | undefined {
  const brace = text.indexOf("{");
  if (brace < 0 || text.slice(0, brace).trim() !== "") return undefined;
  const keys = Object.keys(todo);
  if (keys.length !== 1 || keys[0] !== REFUSAL_KEY) return undefined;
  if (todo[REFUSAL_KEY] === REFUSAL && !(REFUSAL_KEY in config)) {
    return text.slice(0, brace + 1) + inserted(config) + text.slice(brace + 1);
  }
  if (todo[REFUSAL_KEY] === undefined) {
    const rest: Config = { ...config };
    delete rest[REFUSAL_KEY];
    const entry = inserted(rest);
    if (text.startsWith(entry, brace + 1)) return text.slice(0, brace + 1) + text.slice(brace + 1 + entry.length);
  }
  return undefined;
}
