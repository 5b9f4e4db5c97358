// Loads the package's copy of proto/ctensors/sidecar/v1/sidecar.proto (plugin/proto/, made by
// scripts/copy-proto.mjs at build and pack time) at run time and types the messages as @grpc/proto-loader
// presents them (snake_case fields, uint64 as number, enums as names, `msg` naming the member set in a
// oneof). The types come from src/generated/, which sidecar/scripts/gen-proto-types.mjs generates from
// the .proto (a test regenerates it and requires identical bytes); only the few narrowings below are
// written by hand.

import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type EnumTypeDefinition, type Options } from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { CloseModelRequest__Output } from "./generated/ctensors/sidecar/v1/CloseModelRequest.js";
import type { HealthResponse__Output } from "./generated/ctensors/sidecar/v1/HealthResponse.js";
import type { LoadClientMessage__Output } from "./generated/ctensors/sidecar/v1/LoadClientMessage.js";
import type { LoadDone__Output } from "./generated/ctensors/sidecar/v1/LoadDone.js";
import type { LoadMode__Output } from "./generated/ctensors/sidecar/v1/LoadMode.js";
import type { LoadServerMessage as GeneratedLoadServerMessage } from "./generated/ctensors/sidecar/v1/LoadServerMessage.js";
import type { LoadStart__Output } from "./generated/ctensors/sidecar/v1/LoadStart.js";
import type { OpenModelRequest__Output } from "./generated/ctensors/sidecar/v1/OpenModelRequest.js";
import type { OpenModelResponse__Output } from "./generated/ctensors/sidecar/v1/OpenModelResponse.js";
import type { RegionReady__Output } from "./generated/ctensors/sidecar/v1/RegionReady.js";
import type { SessionRequest__Output } from "./generated/ctensors/sidecar/v1/SessionRequest.js";
import type { SessionResponse__Output } from "./generated/ctensors/sidecar/v1/SessionResponse.js";
import type { TensorInfo__Output } from "./generated/ctensors/sidecar/v1/TensorInfo.js";
import type { TensorPlacement__Output } from "./generated/ctensors/sidecar/v1/TensorPlacement.js";

/** The contract, in the package's proto/ folder: resolved from this module's place in the package (src/sidecar or dist/sidecar alike). */
export const PROTO_PATH = fileURLToPath(new URL("../../proto/ctensors/sidecar/v1/sidecar.proto", import.meta.url));

export const PROTO_LOADER_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/** A name of the proto's LoadMode enum. */
export type LoadModeName = LoadMode__Output;
export type HealthResponse = HealthResponse__Output;
export type OpenModelRequest = OpenModelRequest__Output;
export type TensorInfoMessage = TensorInfo__Output;
export type OpenModelResponse = OpenModelResponse__Output;
export type TensorPlacement = TensorPlacement__Output;
export type RegionReady = RegionReady__Output;
export type LoadDone = LoadDone__Output;
export type CloseModelRequest = CloseModelRequest__Output;
export type SessionRequest = SessionRequest__Output;
export type SessionResponse = SessionResponse__Output;

export type LoadStart = Omit<LoadStart__Output, "mode"> & {
  /** A name, or a number for a value this proto does not know (proto-loader passes those through). */
  mode: LoadModeName | number;
};

export type LoadClientMessage = Omit<LoadClientMessage__Output, "start"> & { start?: LoadStart | null };

/** What the server sends: exactly one member of the oneof. */
export type LoadServerMessage = { ready: RegionReady } | { done: LoadDone };

/** @internal Compile-time checks that the narrowings still fit the generated message types. */
export type ProtoNarrowingChecks = [
  Fits<LoadServerMessage, GeneratedLoadServerMessage>,
  Fits<LoadStart__Output, LoadStart>,
  Fits<LoadClientMessage__Output, LoadClientMessage>,
];
type Fits<T extends U, U> = [T, U];

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
