// Typed errors with stable codes. A caller's mistake (a bad argument or option: something the user can
// fix by calling differently) is ERR_CT_USAGE; bad data, a bad key, a refused signature or policy are
// the other CryptoTensorsError codes. A plain TypeError/RangeError is a bug of ours and is reported as
// one. Every AEAD or key-unwrap failure is reported with one fixed message (no decryption oracle).
// Messages name API options, never CLI flags: the CLI adds its flag hints (cli/flag-hints.ts).

/** Every error code, grouped by category. The category decides the CLI exit code. */
export const ERROR_CODES = {
  ERR_CT_USAGE: "usage",
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

/** Process exit codes for each category (documented in docs/cli.md). 1 = unexpected error (a bug). */
export const EXIT_CODES: Record<ErrorCategory, number> = {
  usage: 2,
  format: 3,
  signature: 4,
  decryption: 5,
  key: 6,
  policy: 7,
  io: 8,
  hub: 9,
};

export interface CryptoTensorsErrorOptions {
  cause?: unknown;
  /**
   * The API option the error is about ("trust", "key", "chunkBytes", "tensors", ...), for front ends
   * that spell options differently (the CLI turns it into a flag hint).
   */
  option?: string | undefined;
}

// Marks instances so that `instanceof CryptoTensorsError` also holds for errors made by another copy of
// this module (two installed versions, or sources and dist loaded side by side): the class, not the
// `name` string, decides.
const BRAND = Symbol.for("ctensors.CryptoTensorsError");

export class CryptoTensorsError extends Error {
  override name = "CryptoTensorsError";
  readonly code: CryptoTensorsErrorCode;
  readonly option: string | undefined;

  constructor(code: CryptoTensorsErrorCode, message: string, options?: CryptoTensorsErrorOptions) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    this.option = options?.option;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof was called on (a subclass gets the ordinary check)
    if (this !== CryptoTensorsError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  get category(): ErrorCategory {
    return ERROR_CODES[this.code];
  }
}

/** A caller's mistake: a missing or malformed argument or option (exit 2 in the CLI). */
export function usageError(message: string, option?: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_USAGE", message, { option });
}

/** The one message for any failed authentication tag, key unwrap or AEAD open. */
export const DECRYPTION_FAILED_MESSAGE = "decryption failed: wrong key, or the ciphertext, tag or wrapped key was modified";

export function decryptionFailed(): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_DECRYPTION_FAILED", DECRYPTION_FAILED_MESSAGE);
}

export function formatError(message: string): CryptoTensorsError {
  return new CryptoTensorsError("ERR_CT_FORMAT", message);
}

/** No trusted signer key was supplied, so no signature can be accepted. */
export function noTrustedSigner(): CryptoTensorsError {
  return new CryptoTensorsError(
    "ERR_CT_UNTRUSTED_SIGNER",
    "no trusted signer key was given (the publisher's public key is needed to verify the file)",
    { option: "trust" },
  );
}
