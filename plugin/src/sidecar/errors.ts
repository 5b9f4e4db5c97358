// Errors of the sidecar itself (the codec's errors are CryptoTensorsError). The codes are names of
// the proto's `ErrorCode` enum (proto/ctensors/sidecar/v1/sidecar.proto), sent in `ct-error-code`.

export type SidecarErrorCode = "ERR_CT_UNAUTHENTICATED" | "ERR_CT_BAD_REQUEST" | "ERR_CT_MODEL_NOT_OPEN" | "ERR_CT_INTERNAL";

export class SidecarError extends Error {
  override name = "SidecarError";
  readonly code: SidecarErrorCode;

  constructor(code: SidecarErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function badRequest(message: string): SidecarError {
  return new SidecarError("ERR_CT_BAD_REQUEST", message);
}

/** The sidecar is stopping: calls end with UNAVAILABLE and no code, like an unreachable sidecar. */
export class ShutdownError extends Error {
  override name = "ShutdownError";
  constructor() {
    super("the sidecar is shutting down");
  }
}

/** The client cancelled the call or went away: nothing is sent back. */
export class CancelledError extends Error {
  override name = "CancelledError";
  constructor() {
    super("the client cancelled the call or went away");
  }
}
