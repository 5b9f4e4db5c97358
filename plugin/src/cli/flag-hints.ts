// The one table of CLI flag hints. Library messages name API options, never flags; an error that is
// about an option carries its name (CryptoTensorsError.option), and this table adds, by error code
// and option, what to do on the command line.

import type { CryptoTensorsError, CryptoTensorsErrorCode } from "../errors.js";

interface Hint {
  code: CryptoTensorsErrorCode;
  option: string;
  hint: string;
}

const HINTS: readonly Hint[] = [
  { code: "ERR_CT_UNTRUSTED_SIGNER", option: "trust", hint: "pass the publisher's public key with --trust or --trust-store" },
  { code: "ERR_CT_KEY_NOT_FOUND", option: "key", hint: "pass the master key with --key or --keys" },
  { code: "ERR_CT_KEY_NOT_FOUND", option: "keyToken", hint: "check the bearer token: --key-token or $CTENSORS_KEY_TOKEN" },
  { code: "ERR_CT_FORMAT", option: "chunkBytes", hint: "use a larger --chunk-size" },
  { code: "ERR_CT_USAGE", option: "chunkBytes", hint: "--chunk-size" },
  { code: "ERR_CT_USAGE", option: "tensors", hint: "check the --tensors patterns" },
  { code: "ERR_CT_USAGE", option: "force", hint: "choose another output or pass --force" },
  { code: "ERR_CT_USAGE", option: "hubUrl", hint: "--hub-url or HF_ENDPOINT" },
  { code: "ERR_CT_USAGE", option: "socket", hint: "choose a shorter --socket" },
  { code: "ERR_CT_IO", option: "socket", hint: "choose another --socket, in a directory of your own (mode 0700)" },
  { code: "ERR_CT_HUB", option: "token", hint: "pass --token or set HF_TOKEN" },
  { code: "ERR_CT_HUB", option: "hubUrl", hint: "check --hub-url or HF_ENDPOINT" },
  { code: "ERR_CT_NOT_CONFIDENTIAL", option: "allowPlaintext", hint: "--allow-plaintext publishes them unencrypted" },
];

/** The flag hint for `err`, if the table has one. */
export function flagHint(err: CryptoTensorsError): string | undefined {
  if (err.option === undefined) return undefined;
  return HINTS.find((h) => h.code === err.code && h.option === err.option)?.hint;
}
