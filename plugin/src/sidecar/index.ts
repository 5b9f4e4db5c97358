// Public API of the sidecar (`ctensors/sidecar`): start a sidecar (gRPC control plane on a unix socket, tensors
// through shared memory), the default socket rule, and the pieces a client or a test needs.

export { startSidecar, DEFAULT_RESIDENT_REGION_BYTES, type SidecarOptions, type SidecarHandle } from "./server.js";
export { DEFAULT_METRICS_HOST, METRICS_PATH, type MetricsEndpointOptions } from "./metrics.js";
export { defaultSocketPath, SOCKET_ENV } from "./socket-path.js";
export { tokenPathOf } from "./auth.js";
export { jsonLogger, silentLogger, type Logger, type LogFields } from "./log.js";
export { SidecarError, type SidecarErrorCode } from "./errors.js";
export { ERROR_CODE_TRAILER, SENT_ERROR_CODES, errorToStatus } from "./errors-to-status.js";
export { ALIGN_BYTES, DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_COUNT, MIN_WINDOW_BYTES, MAX_WINDOW_COUNT } from "./load-plan.js";
export { PROTO_PATH, PROTO_LOADER_OPTIONS, sidecarClientConstructor, protoErrorCodes } from "./proto.js";
export { SHM_DIR, REGION_PREFIX, REGION_NAME, LIVENESS_NAME } from "./shm/instance.js";
export { sweepStaleRegions, probeLiveness, type SweepReport, type Liveness } from "./shm/sweep.js";
export { SIDECAR_VERSION } from "./version.js";
export { checkHealth, DEFAULT_HEALTH_TIMEOUT_MS } from "./health-check.js";
