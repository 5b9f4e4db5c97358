// `ctensors/kms`: master keys held by a key service (docs/key-management.md).

export { KmsError, isKmsReference, providerFor, type KmsFailure, type KmsProvider } from "./provider.js";
export { VaultHttp, checkAddress, type VaultHttpOptions } from "./vault-http.js";
export { appRoleAuth, jwtAuth, tokenAuth, type VaultAuth } from "./vault-auth.js";
export {
  VaultTransitProvider,
  parseTransitReference,
  VAULT_TRANSIT_SCHEME,
  type TransitReference,
  type VaultTransitOptions,
} from "./vault-transit.js";
export { KmsKeyRelease, KmsReleaseSession, type ReleaseLog } from "./release.js";
export { KMS_OPTIONS, hasKmsOptions, kmsProviderFromArgs, newKmsMasterKey } from "./cli-args.js";
