// The Sidecar gRPC service (proto/ctensors/sidecar/v1/sidecar.proto): handlers only. Authentication
// happens before any handler (auth.ts); every failure becomes a status in errors-to-status.ts.
//
// Reference counting: each OpenModel takes a reference, each CloseModel drops one, and a Load holds
// one while it runs. A reference taken in a client session (client-sessions.ts) is also dropped when
// that session's call ends, so a client that dies without CloseModel releases its models at once, as
// it releases its Loads and their shared memory. A reference taken without a session (clients older
// than the Session call) lives until CloseModel or the sidecar stops.

import type {
  sendUnaryData,
  Server,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { TrustStore } from "../index.js";
import { ClientSessions } from "./client-sessions.js";
import { badRequest, ShutdownError } from "./errors.js";
import { errorToStatus } from "./errors-to-status.js";
import { LoadSession, type LoadSettings } from "./load-session.js";
import type { Logger } from "./log.js";
import type { SidecarMetrics } from "./metrics.js";
import { NO_SESSION, type ModelRegistry } from "./model-registry.js";
import type { ShmInstance } from "./shm/instance.js";
import {
  sidecarServiceDefinition,
  type CloseModelRequest,
  type HealthResponse,
  type LoadClientMessage,
  type LoadServerMessage,
  type OpenModelRequest,
  type OpenModelResponse,
  type SessionRequest,
  type SessionResponse,
} from "./proto.js";

export interface SidecarServiceDeps {
  registry: ModelRegistry;
  log: Logger;
  version: string;
  requireEncrypted: boolean;
  trust: TrustStore | undefined;
  load: LoadSettings;
  /** Names and owns this sidecar's shared-memory regions. */
  shm: ShmInstance;
  /** This sidecar's Prometheus metrics (metrics.ts). */
  metrics: SidecarMetrics;
}

export class SidecarService {
  private readonly sessions = new Map<LoadSession, Promise<void>>();
  private readonly clients: ClientSessions;
  private stopping = false;

  constructor(private readonly deps: SidecarServiceDeps) {
    this.clients = new ClientSessions(deps.registry, deps.log, deps.metrics);
  }

  addToServer(server: Server): void {
    const impl: UntypedServiceImplementation = {
      Health: this.unary("Health", async () => this.health()),
      OpenModel: this.unary("OpenModel", (req: OpenModelRequest) => this.openModel(req)),
      CloseModel: this.unary("CloseModel", async (req: CloseModelRequest) => {
        await this.deps.registry.close(req.model_id, req.session_id || NO_SESSION);
        return {};
      }),
      Load: (call: ServerDuplexStream<LoadClientMessage, LoadServerMessage>) => this.load(call),
      Session: (call: ServerWritableStream<SessionRequest, SessionResponse>) => this.clients.start(call),
    };
    server.addService(sidecarServiceDefinition(), impl);
  }

  /** Ends every Load in progress and every client session (UNAVAILABLE) and waits until the Loads' regions are released. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    for (const session of this.sessions.keys()) session.abort(new ShutdownError());
    await Promise.all([...this.sessions.values(), this.clients.shutdown()]);
  }

  private health(): HealthResponse {
    return {
      version: this.deps.version,
      open_models: this.deps.registry.sources(),
      require_encrypted: this.deps.requireEncrypted,
      trusted_signers: trustedSignerKids(this.deps.trust),
    };
  }

  private async openModel(req: OpenModelRequest): Promise<OpenModelResponse> {
    const owner = req.session_id || NO_SESSION;
    if (owner !== NO_SESSION) this.clients.check(owner);
    const model = await this.deps.registry.open(req.source, { refresh: req.refresh === true, owner });
    if (owner !== NO_SESSION && !this.clients.isLive(owner)) {
      await this.deps.registry.close(model.id, owner); // the session ended while the model opened: nobody holds this reference
      throw badRequest("the session ended while the model was being opened");
    }
    return {
      model_id: model.id,
      tensors: model.tensors.map((t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        byte_size: t.byteSize,
        encrypted: t.encrypted,
        file: t.file,
      })),
      metadata: model.metadata,
      signer_kid: model.signerKid,
      total_bytes: model.totalBytes,
      repo: model.hub?.repo ?? "",
      revision: model.hub?.revision ?? "",
      commit: model.hub?.commit ?? "",
      local_path: model.source,
    };
  }

  private load(call: ServerDuplexStream<LoadClientMessage, LoadServerMessage>): void {
    const session = new LoadSession(call, this.deps.registry, this.deps.load, this.deps.log, this.deps.shm, this.deps.metrics);
    if (this.stopping) session.abort(new ShutdownError());
    const done = session.run().finally(() => this.sessions.delete(session));
    this.sessions.set(session, done);
  }

  private unary<Req, Res>(rpc: string, fn: (req: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      if (this.stopping) {
        callback(errorToStatus(new ShutdownError(), this.deps.log, { rpc }));
        return;
      }
      fn(call.request).then(
        (res) => callback(null, res),
        (err: unknown) => {
          this.deps.metrics.failed(err);
          callback(errorToStatus(err, this.deps.log, { rpc }));
        },
      );
    };
  }
}

/** kids of the trusted signer keys (keys without a kid are not listed). */
export function trustedSignerKids(trust: TrustStore | undefined): string[] {
  return (trust?.keys ?? []).flatMap((k) => (k.kid === undefined ? [] : [k.kid]));
}
