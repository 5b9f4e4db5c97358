// Loads proto/ctensors/sidecar/v1/sidecar.proto at run time (no generated code) and types the
// messages as @grpc/proto-loader presents them: snake_case fields, uint64 as number, enums as names,
// and `msg` naming the member set in a oneof.

import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type EnumTypeDefinition, type Options } from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

/** The contract, resolved from this module's place in the repository (src/ or dist/ alike). */
export const PROTO_PATH = fileURLToPath(new URL("../../proto/ctensors/sidecar/v1/sidecar.proto", import.meta.url));

export const PROTO_LOADER_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export type LoadModeName = "LOAD_MODE_UNSPECIFIED" | "LOAD_MODE_RESIDENT" | "LOAD_MODE_STREAMING";

export interface HealthResponse {
  version: string;
  open_models: string[];
  require_encrypted: boolean;
  trusted_signers: string[];
}

export interface OpenModelRequest {
  source: string;
  refresh?: boolean;
}

export interface TensorInfoMessage {
  name: string;
  dtype: string;
  shape: number[];
  byte_size: number;
  encrypted: boolean;
  file: string;
}

export interface OpenModelResponse {
  model_id: string;
  tensors: TensorInfoMessage[];
  metadata: Record<string, string>;
  signer_kid: string;
  total_bytes: number;
  repo: string;
  revision: string;
  commit: string;
  local_path: string;
}

export interface LoadStart {
  model_id: string;
  names: string[];
  /** A name, or a number for a value this proto does not know. */
  mode: LoadModeName | number;
  window_bytes: number;
  window_count: number;
}

export interface LoadClientMessage {
  msg?: "start" | "mapped" | "consumed";
  start?: LoadStart;
  mapped?: { region_id: number };
  consumed?: { region_id: number };
}

export interface TensorPlacement {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  byte_size: number;
}

export interface RegionReady {
  region_id: number;
  path: string;
  region_bytes: number;
  tensors: TensorPlacement[];
}

export type LoadServerMessage = { ready: RegionReady } | { done: { tensors: number; bytes: number } };

export interface CloseModelRequest {
  model_id: string;
}

let cached: { pkg: GrpcObject; errorCodes: string[] } | null = null;

function load(): { pkg: GrpcObject; errorCodes: string[] } {
  if (!cached) {
    const def = loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
    const errorEnum = def["ctensors.sidecar.v1.ErrorCode"] as EnumTypeDefinition;
    const values = (errorEnum.type as { value: { name: string }[] }).value;
    cached = { pkg: loadPackageDefinition(def), errorCodes: values.map((v) => v.name) };
  }
  return cached;
}

/** The generic client constructor of the Sidecar service (for clients and tests). */
export function sidecarClientConstructor(): ServiceClientConstructor {
  const v1 = ((load().pkg.ctensors as GrpcObject).sidecar as GrpcObject).v1 as GrpcObject;
  return v1.Sidecar as ServiceClientConstructor;
}

export function sidecarServiceDefinition(): ServiceDefinition {
  return sidecarClientConstructor().service;
}

/** The names of the proto's ErrorCode enum. */
export function protoErrorCodes(): string[] {
  return [...load().errorCodes];
}
