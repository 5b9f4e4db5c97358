// The one place where an error becomes a gRPC status. The `ct-error-code` trailer carries the code
// (a name of the proto's ErrorCode enum), the status details carry the message. Anything that is not
// a CryptoTensorsError or a SidecarError is an internal error: its text and cause are logged, and the
// client gets only "internal error". Codec errors are recognised by class (`instanceof`, which holds
// across copies of the ctensors module: see CryptoTensorsError).
//
// | code                                   | gRPC status          | why                                             |
// |----------------------------------------|----------------------|-------------------------------------------------|
// | ERR_CT_USAGE                           | INVALID_ARGUMENT     | a bad argument (e.g. not a Hub model reference) |
// | ERR_CT_FORMAT, ERR_CT_UNSUPPORTED      | FAILED_PRECONDITION  | the path is fine, the file at it is not usable  |
// | ERR_CT_SIGNATURE_INVALID               | PERMISSION_DENIED    | security refusals: bad or untrusted signature,  |
// | ERR_CT_UNTRUSTED_SIGNER                | PERMISSION_DENIED    |   modified plaintext, downgrade to plaintext    |
// | ERR_CT_INTEGRITY                       | PERMISSION_DENIED    |                                                 |
// | ERR_CT_NOT_CONFIDENTIAL                | PERMISSION_DENIED    |                                                 |
// | ERR_CT_DECRYPTION_FAILED               | DATA_LOSS            | a tag or key unwrap failed: corrupted/wrong key |
// | ERR_CT_KEY_NOT_FOUND, ERR_CT_KEY_INVALID | FAILED_PRECONDITION | the sidecar lacks a usable key for this model   |
// | ERR_CT_POLICY_DENIED                   | PERMISSION_DENIED    | the file's policy refuses                       |
// | ERR_CT_POLICY_UNSUPPORTED              | FAILED_PRECONDITION  | the policy cannot be evaluated here             |
// | ERR_CT_IO                              | NOT_FOUND if the cause is ENOENT/ENOTDIR, RESOURCE_EXHAUSTED |          |
// |                                        |   if ENOSPC/EDQUOT (shared memory too small), else UNAVAILABLE |        |
// | ERR_CT_HUB                             | UNAVAILABLE          | Hub: unknown repo/revision/file, refused token, |
// |                                        |                      |   network, or offline without a cached copy     |
// | ERR_CT_UNAUTHENTICATED                 | UNAUTHENTICATED      | missing or wrong bearer token                   |
// | ERR_CT_BAD_REQUEST                     | INVALID_ARGUMENT     | a malformed request or an out-of-order message  |
// | ERR_CT_MODEL_NOT_OPEN                  | NOT_FOUND            | unknown model_id                                |
// | ERR_CT_INTERNAL (anything else)        | INTERNAL             | details "internal error"; cause only in the log |
// | (shutdown, no code)                    | UNAVAILABLE          | as if the sidecar were unreachable              |

import { Metadata, status, type StatusObject } from "@grpc/grpc-js";
import { CryptoTensorsError, type CryptoTensorsErrorCode } from "../index.js";
import { ShutdownError, SidecarError, type SidecarErrorCode } from "./errors.js";
import { describeError, type LogFields, type Logger } from "./log.js";
import { isNoSpace } from "./shm/capacity.js";

export const ERROR_CODE_TRAILER = "ct-error-code";

const CODEC_STATUS: Record<CryptoTensorsErrorCode, status> = {
  ERR_CT_USAGE: status.INVALID_ARGUMENT,
  ERR_CT_FORMAT: status.FAILED_PRECONDITION,
  ERR_CT_UNSUPPORTED: status.FAILED_PRECONDITION,
  ERR_CT_SIGNATURE_INVALID: status.PERMISSION_DENIED,
  ERR_CT_UNTRUSTED_SIGNER: status.PERMISSION_DENIED,
  ERR_CT_INTEGRITY: status.PERMISSION_DENIED,
  ERR_CT_NOT_CONFIDENTIAL: status.PERMISSION_DENIED,
  ERR_CT_DECRYPTION_FAILED: status.DATA_LOSS,
  ERR_CT_KEY_NOT_FOUND: status.FAILED_PRECONDITION,
  ERR_CT_KEY_INVALID: status.FAILED_PRECONDITION,
  ERR_CT_POLICY_DENIED: status.PERMISSION_DENIED,
  ERR_CT_POLICY_UNSUPPORTED: status.FAILED_PRECONDITION,
  ERR_CT_IO: status.UNAVAILABLE,
  ERR_CT_HUB: status.UNAVAILABLE,
};

const SIDECAR_STATUS: Record<SidecarErrorCode, status> = {
  ERR_CT_UNAUTHENTICATED: status.UNAUTHENTICATED,
  ERR_CT_BAD_REQUEST: status.INVALID_ARGUMENT,
  ERR_CT_MODEL_NOT_OPEN: status.NOT_FOUND,
  ERR_CT_INTERNAL: status.INTERNAL,
};

/** Every code this sidecar can send in the trailer (each must be a name in the proto's ErrorCode). */
export const SENT_ERROR_CODES: readonly string[] = [...Object.keys(CODEC_STATUS), ...Object.keys(SIDECAR_STATUS)];

function ioStatus(err: CryptoTensorsError): status {
  const errno = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  if (errno === "ENOENT" || errno === "ENOTDIR") return status.NOT_FOUND;
  if (isNoSpace(err)) return status.RESOURCE_EXHAUSTED;
  return CODEC_STATUS.ERR_CT_IO;
}

function withCode(code: status, details: string, ctCode: string | null): StatusObject {
  const metadata = new Metadata();
  if (ctCode) metadata.set(ERROR_CODE_TRAILER, ctCode);
  return { code, details, metadata };
}

/**
 * Maps any error to the status sent to the client, and logs it (with its cause) under `context`.
 * Expected refusals are logged at warn; unexpected errors at error.
 */
export function errorToStatus(err: unknown, log: Logger, context: LogFields = {}): StatusObject {
  if (err instanceof CryptoTensorsError) {
    log.warn("rpc.refused", { ...context, ...describeError(err) });
    return withCode(err.code === "ERR_CT_IO" ? ioStatus(err) : CODEC_STATUS[err.code], err.message, err.code);
  }
  if (err instanceof SidecarError) {
    log.warn("rpc.refused", { ...context, ...describeError(err) });
    return withCode(SIDECAR_STATUS[err.code], err.message, err.code);
  }
  if (err instanceof ShutdownError) return withCode(status.UNAVAILABLE, err.message, null);
  log.error("rpc.internal_error", { ...context, ...describeError(err, true) });
  return withCode(status.INTERNAL, "internal error", "ERR_CT_INTERNAL");
}
