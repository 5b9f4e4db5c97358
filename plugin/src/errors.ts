// Typed errors with stable codes. Bad arguments throw TypeError; bad data, a bad key, a refused
// signature or policy throw CryptoTensorsError. Every AEAD or key-unwrap failure is reported with one
// fixed message (no decryption oracle).

/** Every error code, grouped by category. The category decides the CLI exit code. */
export const ERROR_CODES = {
  ERR_CT_FORMAT: "format",
  ERR_CT_UNSUPPORTED: "format",
  ERR_CT_SIGNATURE_INVALID: "signature",
  ERR_CT_UNTRUSTED_SIGNER: "signature",
  ERR_CT_INTEGRITY: "signature",
  ERR_CT_NOT_CONFIDENTIAL: "signature",
  ERR_CT_DECRYPTION_FAILED: "decryption",
  ERR_CT_KEY_NOT_FOUND: "key",
  ERR_CT_KEY_INVALID: "key",
  ERR_CT_POLICY_DENIED: "policy",
  ERR_CT_POLICY_UNSUPPORTED: "policy",
  ERR_CT_IO: "io",
  ERR_CT_HUB: "hub",
} as const;

export type CryptoTensorsErrorCode = keyof typeof ERROR_CODES;
export type ErrorCategory = (typeof ERROR_CODES)[CryptoTensorsErrorCode];

/** Process exit codes for each category (documented in docs/cli.md). 1 = unexpected, 2 = usage. */
export const EXIT_CODES: Record<ErrorCategory, number> = {
  format: 3,
  signature: 4,
  decryption: 5,
  key: 6,
  policy: 7,
  io: 8,
  hub: 9,
};

export class CryptoTensorsError extends Error {
  override name = "CryptoTensorsError";
  readonly code: CryptoTensorsErrorCode;

  constructor(code: CryptoTensorsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get category(): ErrorCategory {
    return ERROR_CODES[this.code];
  }
}

/** The one message for any failed authentication tag, key unwrap or AEAD open. */
export const DECRYPTION_FAILED_MESSAGE =
  "decryption failed: wrong key, or the ciphertext, tag or wrapped key was modified";

export function decryptionFailed(): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_DECRYPTION_FAILED", DECRYPTION_FAILED_MESSAGE);
}

export function formatError(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_FORMAT", message);
}
