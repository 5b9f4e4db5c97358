// Client sessions (the proto's Session call): what ties the models a client opens to the client's
// life, so that a client killed between OpenModel and CloseModel does not leave its models (their data
// keys in memory) open until the sidecar stops.
//
// gRPC gives a server no per-connection hook, but it does end a call whose client goes away: the
// kernel closes a dead process's socket, and grpc-js reports every call on it as cancelled (Loads
// rely on this to release their regions). So a client keeps one server-streaming Session call open
// while it lives; the OpenModel references it takes with the session's id belong to the session, and
// are dropped (ModelRegistry.releaseOwner: the readers are closed, which zeroes the data keys) as soon
// as that call ends. A unix socket has no half-open connections, so no lease or keepalive timer is
// needed: the release is immediate, and a live client never loses a model however long it holds it.

import type { ServerWritableStream } from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { badRequest, ShutdownError } from "./errors.js";
import { errorToStatus } from "./errors-to-status.js";
import { describeError, type Logger } from "./log.js";
import type { SidecarMetrics } from "./metrics.js";
import type { ModelRegistry } from "./model-registry.js";
import type { SessionRequest, SessionResponse } from "./proto.js";

type SessionCall = ServerWritableStream<SessionRequest, SessionResponse>;

export class ClientSessions {
  /** Live sessions by id, with the number logged for them (the id is a capability: never logged). */
  private readonly live = new Map<string, { call: SessionCall; seq: number }>();
  private readonly releasing = new Set<Promise<void>>();
  private started = 0;
  private stopping = false;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly log: Logger,
    metrics: SidecarMetrics,
  ) {
    metrics.countSessions(() => this.live.size);
  }

  /** Handles a Session call: sends the session's id, then holds the call open until the client ends it. */
  start(call: SessionCall): void {
    if (this.stopping) {
      call.emit("error", errorToStatus(new ShutdownError(), this.log, { rpc: "Session" }));
      return;
    }
    const id = `s-${randomBytes(16).toString("hex")}`;
    const seq = ++this.started;
    this.live.set(id, { call, seq });
    call.on("cancelled", () => this.end(id, "client gone"));
    this.log.info("session.started", { session: seq });
    call.write({ session_id: id });
    if (call.cancelled) this.end(id, "client gone"); // gone before the listener was attached
  }

  /** @throws ERR_CT_BAD_REQUEST when `id` is not a live session's */
  check(id: string): void {
    if (!this.live.has(id)) throw badRequest("session_id names no live session: it has ended (or never existed); start a new Session");
  }

  isLive(id: string): boolean {
    return this.live.has(id);
  }

  /** Ends every session call (UNAVAILABLE, as for any call at shutdown); their models are closed with all others. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    for (const [id, { call, seq }] of this.live) {
      this.live.delete(id);
      call.emit("error", errorToStatus(new ShutdownError(), this.log, { rpc: "Session" }));
      this.log.info("session.ended", { session: seq, why: "shutdown" });
    }
    await Promise.all(this.releasing);
  }

  /** The session's call ended: drop every model reference it holds. */
  private end(id: string, why: string): void {
    const session = this.live.get(id);
    if (!session) return;
    this.live.delete(id);
    const done = this.registry
      .releaseOwner(id)
      .then(
        (models) => this.log.info("session.ended", { session: session.seq, why, released_models: models }),
        (err: unknown) => this.log.error("session.release_failed", { session: session.seq, ...describeError(err) }),
      )
      .finally(() => this.releasing.delete(done));
    this.releasing.add(done);
  }
}
