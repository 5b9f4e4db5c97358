// Public API of the `ctensors` package. Symbols below the tier comment are for the sidecar and tools.

export { VERSION } from "./version.js";
export { printable, quote, toJson } from "./format/printable.js";
export { CryptoTensorsError, ERROR_CODES, EXIT_CODES, usageError, type CryptoTensorsErrorCode, type ErrorCategory } from "./errors.js";
export { CryptoTensorsReader, readHeader, type OpenOptions, type CryptoInfo } from "./container/reader.js";
export { requiredEncryption, type RequireEncrypted, type OpenPurpose } from "./container/open-checks.js";
export { encryptFile, type EncryptOptions, type EncryptResult } from "./container/encrypt-file.js";
export { decryptFile, type DecryptOptions } from "./container/decrypt-file.js";
export { rewrapFile, type RewrapOptions } from "./container/rewrap-file.js";
export { parseJwk, parseJwkOrSet, toJwk, publicKeyOf, type Key, type EncryptionKey, type SigningKey, type JwkStyle } from "./keys/jwk.js";
export { loadKeys, loadAllKeys, KEYS_ENV, KEY_TOKEN_ENV, type KeySpec, type KeySourceOptions } from "./keys/sources.js";
export { TrustStore } from "./keys/trust.js";
export { DEFAULT_POLICY, DEFAULT_POLICY_TEXT, type Policy } from "./container/reserved.js";
export {
  defaultPolicyEngine,
  evaluatePolicy,
  isDefaultPolicy,
  regorusPythonEngine,
  REGO_PYTHON_ENV,
  type PolicyEngine,
} from "./policy.js";
export { checkPolicyText, type PolicyKind } from "./container/policy-check.js";
export { loadPolicyClaims, type PolicyInput } from "./policy-input.js";

// --- Below: building blocks for the sidecar and tools, not for end users. ---
export { parseHeader, parseHeaderPrefix, MAX_HEADER_BYTES, type SafetensorsHeader, type TensorInfo } from "./format/header.js";
export { DTYPES, dtypeBits, type Dtype } from "./format/dtype.js";
export { resolveEncryptionKey } from "./keys/keyring.js";
export { processModel, modelSafetensors } from "./model/process-model.js";
export { checkShardIndex, listModelFiles } from "./model/folder.js";
export { readTensorsInto, type TensorPlacement } from "./container/reader.js";
export { engineName, nativeThreads, reserveFileSpace, type EngineName } from "./crypto/engine.js";
export { defaultSocketPath, SOCKET_ENV } from "./sidecar-socket.js";
