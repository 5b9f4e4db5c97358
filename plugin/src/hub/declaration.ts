// The repo-level declaration that a model is confidential: `cryptotensors.json` at the repo root,
// written by `ctensors push`. A repo that declares itself confidential is served only if every
// tensor of every shard is encrypted (ERR_CT_NOT_CONFIDENTIAL otherwise), whatever the sidecar's own
// --require-encrypted says, and `ctensors push` refuses to add plaintext weights to it.
// The file is plaintext and unsigned: it can make a load stricter, never looser. Operators who must
// not load plaintext at all run the sidecar with --require-encrypted.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CryptoTensorsError } from "../errors.js";

export const DECLARATION_FILE = "cryptotensors.json";

export interface Declaration {
  format: "cryptotensors";
  confidential: boolean;
  /** kids the shards claim as signer (informative; trust comes from the reader's trust store). */
  signers: string[];
  /** kids of the master keys the shards were encrypted for (informative). */
  encryptionKeys: string[];
  tool: string;
}

export function serializeDeclaration(d: Declaration): string {
  return `${JSON.stringify({ format: d.format, confidential: d.confidential, signers: d.signers, encryption_keys: d.encryptionKeys, tool: d.tool }, null, 2)}\n`;
}

/** Parses a declaration; a malformed one counts as confidential (the strict reading). */
export function parseDeclaration(text: string): Declaration {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new Error("not an object");
  } catch {
    return { format: "cryptotensors", confidential: true, signers: [], encryptionKeys: [], tool: "" };
  }
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  return {
    format: "cryptotensors",
    confidential: raw.confidential !== false,
    signers: strings(raw.signers),
    encryptionKeys: strings(raw.encryption_keys),
    tool: typeof raw.tool === "string" ? raw.tool : "",
  };
}

/** The declaration in a local folder (a snapshot), or undefined when there is none. */
export async function readDeclaration(dir: string): Promise<Declaration | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, DECLARATION_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CryptoTensorsError("ERR_CT_IO", `cannot read ${DECLARATION_FILE} in ${dir}: ${(err as NodeJS.ErrnoException).code}`, {
      cause: err,
    });
  }
  return parseDeclaration(text);
}
