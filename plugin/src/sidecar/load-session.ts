// One Load stream (proto `Sidecar.Load`). The client sends `start`; the sidecar decrypts tensors one
// at a time into shared-memory regions and announces each filled region (RegionReady); the client
// maps it and says `mapped`, and the sidecar unlinks the file at once. RESIDENT: regions of at most
// `residentRegionBytes`, each filled once. STREAMING: at most `window_count` regions, each refilled
// after the client's `consumed`. `done` is sent once every region has been mapped.
//
// STREAMING, retained regions: a client that still uses tensors of a region's batch says `retained`
// instead of `consumed` (announced by `accepts_retained` in every streaming RegionReady). The region
// leaves the window: its fd is closed at once (its file is already unlinked, so its pages now live only
// in the client's mapping, the client's memory) and it is never written again; the window gets a new
// region when it needs one, after measuring again what shared memory is free (the retained regions
// take their share of it until the client drops their tensors).
//
// Shared memory is measured before anything is created (statfs of the region directory): a RESIDENT
// load that does not fit is refused up front, and a STREAMING window shrinks (smaller regions, then
// fewer) to what is free, never below the largest tensor. Regions are allocated when created
// (region.ts), and any ENOSPC on the way becomes the same sizing error (shm/capacity.ts).
//
// Plaintext held by this process: native engine, 256 KiB per engine thread, wiped after each region;
// JS engine, one scratch buffer the size of the largest requested tensor, zeroed after every tensor. Whatever ends the stream (done, error, bad message, cancel, client
// gone, shutdown), every region file is unlinked and every fd closed.

import type { ServerDuplexStream } from "@grpc/grpc-js";
import { CancelledError, badRequest } from "./errors.js";
import { errorToStatus } from "./errors-to-status.js";
import {
  ALIGN_BYTES,
  alignUp,
  blocksNeeded,
  fitStreamingWindow,
  packBatches,
  RESIDENT_PIPELINE_BYTES,
  streamingWindowBytes,
  streamingWindowCount,
  type Batch,
  type Window,
} from "./load-plan.js";
import type { Logger } from "./log.js";
import type { SidecarMetrics } from "./metrics.js";
import type { ManifestEntry, ModelRegistry, OpenModel } from "./model-registry.js";
import type { LoadClientMessage, LoadServerMessage, LoadStart } from "./proto.js";
import type { ShmInstance } from "./shm/instance.js";
import { isNoSpace, shmSpace, shmTooSmall, type ShmShortage, type ShmSpace } from "./shm/capacity.js";
import { ShmRegion } from "./shm/region.js";
import { CryptoTensorsError, engineName, readTensorsInto } from "../index.js";

export interface LoadSettings {
  /** RESIDENT: the most bytes packed into one region (a larger tensor gets a region of its own). */
  residentRegionBytes: number;
  /** STREAMING defaults when the client sends 0. */
  defaultWindowBytes: number;
  defaultWindowCount: number;
}

type Mode = "resident" | "streaming";

const HALF_CLOSE_GRACE_MS = 50;

interface RegionState {
  id: number;
  shm: ShmRegion;
  /** A RegionReady carrying its path was sent. */
  announced: boolean;
  /** The client said `mapped` (the file is unlinked). */
  mapped: boolean;
  /** STREAMING: holds a batch the client has not consumed yet. */
  busy: boolean;
  /** STREAMING: the client kept it (`retained`): out of the window, its fd closed, never written again. */
  retained: boolean;
  /** The closing of a retained region's fd, awaited before the load ends. */
  disposing?: Promise<void>;
}

export class LoadSession {
  private start: LoadStart | null = null;
  private mode: Mode | null = null;
  private failure: Error | null = null;
  private finished = false;
  private clientEnded = false;
  private waiters: (() => void)[] = [];
  private readonly regions = new Map<number, RegionState>();
  private scratch: Uint8Array | null = null;
  private largestTensorBytes = 0;
  /** What this load needs of shared memory, for the error if the space runs out anyway. */
  private need: ShmShortage | null = null;

  constructor(
    private readonly call: ServerDuplexStream<LoadClientMessage, LoadServerMessage>,
    private readonly registry: ModelRegistry,
    private readonly settings: LoadSettings,
    private readonly log: Logger,
    private readonly shm: ShmInstance,
    private readonly metrics: SidecarMetrics,
  ) {
    call.on("data", (msg: LoadClientMessage) => this.onMessage(msg));
    call.on("end", () => {
      this.clientEnded = true;
      this.notify();
    });
    call.on("cancelled", () => this.abort(new CancelledError()));
  }

  /** Ends the load with `reason` (unless it already ended): regions are unlinked now, fds closed by run(). */
  abort(reason: Error): void {
    if (this.failure || this.finished) return;
    this.failure = reason;
    for (const r of this.regions.values()) r.shm.unlink();
    this.notify();
  }

  /** Serves the stream to its end. Never throws: failures become the call's status. */
  async run(): Promise<void> {
    let model: OpenModel | null = null;
    const t0 = performance.now();
    let context: Record<string, unknown> = { rpc: "Load" };
    try {
      await this.until(() => this.start !== null, "`start`");
      const start = this.start!;
      model = this.registry.acquire(start.model_id);
      const entries = this.select(model, start.names);
      const bytes = entries.reduce((s, e) => s + e.byteSize, 0);
      this.largestTensorBytes = entries.reduce((m, e) => Math.max(m, e.byteSize), 0);
      context = { rpc: "Load", model_id: model.id, mode: this.mode };
      const space = await this.space();
      if (this.mode === "resident") {
        const batches = this.planResident(entries, space);
        this.log.info("load.started", {
          ...context,
          tensors: entries.length,
          bytes,
          regions: batches.length,
          shm_needed: this.need!.needed,
          shm_free: space.free,
        });
        await this.resident(batches);
      } else {
        const window = this.planStreaming(entries, start, space);
        this.log.info("load.started", {
          ...context,
          tensors: entries.length,
          bytes,
          window_bytes: window.bytes,
          window_count: window.count,
          shm_needed: this.need!.needed,
          shm_free: space.free,
        });
        await this.streaming(entries, window);
      }
      await this.until(() => [...this.regions.values()].every((r) => r.mapped), "`mapped`");
      await this.send({ done: { tensors: entries.length, bytes } });
      this.finished = true;
      this.call.end();
      const ms = performance.now() - t0;
      this.metrics.loadFinished(this.mode!, ms / 1000);
      this.log.info("load.finished", {
        ...context,
        tensors: entries.length,
        bytes,
        regions: this.regions.size,
        ...(this.retained().length > 0 && { retained_regions: this.retained().length }),
        ms: Math.round(ms),
        gb_per_s: +(bytes / 1e6 / Math.max(ms, 1)).toFixed(3),
      });
    } catch (err) {
      this.abort(err as Error);
      const reason = this.failure ?? (err as Error);
      this.metrics.loadEnded(this.mode ?? "unknown", this.call.cancelled ? new CancelledError() : reason);
      if (reason instanceof CancelledError || this.call.cancelled) {
        this.log.info("load.cancelled", context);
      } else {
        this.call.emit("error", errorToStatus(reason, this.log, context));
      }
    } finally {
      this.scratch?.fill(0);
      this.scratch = null;
      await Promise.all([...this.regions.values()].map((r) => r.disposing ?? r.shm.dispose({ handedOver: r.announced }).catch(() => {})));
      if (model) await this.registry.releaseLoad(model);
    }
  }

  // --- client messages ---

  private onMessage(msg: LoadClientMessage): void {
    if (this.failure || this.finished) return;
    try {
      this.handle(msg);
    } catch (err) {
      this.abort(err as Error);
    }
  }

  private handle(msg: LoadClientMessage): void {
    if (msg.msg !== "start" && this.start === null) throw badRequest("the first message of a Load stream must be `start`");
    switch (msg.msg) {
      case "start": {
        if (this.start !== null) throw badRequest("`start` may be sent only once, as the first message");
        const start = msg.start!;
        if (start.mode === "LOAD_MODE_RESIDENT") this.mode = "resident";
        else if (start.mode === "LOAD_MODE_STREAMING") this.mode = "streaming";
        else throw badRequest(`mode must be LOAD_MODE_RESIDENT or LOAD_MODE_STREAMING, got ${JSON.stringify(start.mode)}`);
        this.start = start;
        break;
      }
      case "mapped": {
        const region = this.announced(msg.mapped!.region_id, "mapped");
        if (region.mapped) throw badRequest(`region ${region.id} was already mapped`);
        region.mapped = true;
        region.shm.unlink();
        break;
      }
      case "consumed": {
        const region = this.unconsumed(msg.consumed!.region_id, "consumed");
        region.busy = false;
        break;
      }
      case "retained": {
        const region = this.unconsumed(msg.retained!.region_id, "retained");
        region.busy = false;
        region.retained = true;
        // Closing the fd is the whole handover: the client's mapping keeps the pages; nothing here writes them again.
        region.disposing = region.shm.dispose({ handedOver: true }).catch(() => {});
        break;
      }
      default:
        throw badRequest("empty LoadClientMessage: set start, mapped, consumed or retained");
    }
    this.notify();
  }

  /** STREAMING: the mapped region holding a batch that `consumed` or `retained` names. */
  private unconsumed(id: number, what: string): RegionState {
    if (this.mode !== "streaming") throw badRequest(`\`${what}\` is only for streaming loads`);
    const region = this.announced(id, what);
    if (region.retained) throw badRequest(`region ${region.id} was retained: it is the client's now`);
    if (!region.mapped) throw badRequest(`region ${region.id} was ${what} before it was mapped`);
    if (!region.busy) throw badRequest(`region ${region.id} holds no batch to be ${what}`);
    return region;
  }

  private announced(id: number, what: string): RegionState {
    const region = this.regions.get(id);
    if (!region?.announced) throw badRequest(`\`${what}\` names region ${id}, which was not announced`);
    return region;
  }

  // --- waiting ---

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits until `ready()` holds; fails if the load is aborted, or (when a client message is awaited) the client closed its side. */
  private async until(ready: () => boolean, what: string, fromClient = true): Promise<void> {
    for (;;) {
      this.check();
      if (ready()) return;
      if (fromClient && this.clientEnded) {
        // A cancelling client often half-closes first: give its cancel a moment to arrive, so that a
        // cancel is reported as one and not as a protocol error.
        await new Promise((resolve) => setTimeout(resolve, HALF_CLOSE_GRACE_MS));
        this.check();
        if (ready()) return;
        throw badRequest(`the client closed its side of the stream while the sidecar waited for ${what}`);
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private async send(msg: LoadServerMessage): Promise<void> {
    this.check();
    if (this.call.write(msg)) return;
    let drained = false;
    const onDrain = () => {
      drained = true;
      this.notify();
    };
    this.call.once("drain", onDrain);
    try {
      await this.until(() => drained, "the client to read", false);
    } finally {
      this.call.off("drain", onDrain);
    }
  }

  // --- producing ---

  private select(model: OpenModel, names: readonly string[]): ManifestEntry[] {
    if (names.length === 0) return [...model.tensors];
    const seen = new Set<string>();
    return names.map((name) => {
      if (seen.has(name)) throw badRequest(`tensor ${JSON.stringify(name)} is requested twice`);
      seen.add(name);
      const entry = model.byName.get(name);
      if (!entry) throw badRequest(`model ${model.id} has no tensor named ${JSON.stringify(name)}`);
      return entry;
    });
  }

  // --- planning against free shared memory ---

  private async space(): Promise<ShmSpace> {
    return shmSpace(this.shm.dir).catch((err: NodeJS.ErrnoException) => {
      throw new CryptoTensorsError("ERR_CT_IO", `cannot measure the free space of ${this.shm.dir}: ${err.code ?? err.message}`, {
        cause: err,
      });
    });
  }

  /** RESIDENT: the batches, once it is clear that all of them fit at once. */
  private planResident(entries: ManifestEntry[], space: ShmSpace): Batch<ManifestEntry>[] {
    const batches = packBatches(entries, (e) => e.byteSize, Math.min(this.settings.residentRegionBytes, RESIDENT_PIPELINE_BYTES));
    const needed = blocksNeeded(batches.map(regionBytesOf), space.blockBytes);
    const streamingNeeds = blocksNeeded([alignUp(Math.max(this.largestTensorBytes, ALIGN_BYTES))], space.blockBytes);
    this.need = this.shortage({ mode: "resident", needed, free: space.free, streamingNeeds });
    if (needed > space.free) throw shmTooSmall(this.need);
    return batches;
  }

  /** STREAMING: the window asked for (or the defaults), shrunk to what is free. */
  private planStreaming(entries: ManifestEntry[], start: LoadStart, space: ShmSpace): Window {
    const sizes = entries.map((e) => e.byteSize);
    const want = {
      bytes: streamingWindowBytes(start.window_bytes, sizes, this.settings.defaultWindowBytes),
      count: streamingWindowCount(start.window_count, this.settings.defaultWindowCount),
    };
    const window = fitStreamingWindow(want, this.largestTensorBytes, space.free, space.blockBytes);
    const largest = blocksNeeded([alignUp(Math.max(this.largestTensorBytes, ALIGN_BYTES))], space.blockBytes);
    if (!window)
      throw shmTooSmall(
        this.shortage({
          mode: "streaming",
          needed: largest,
          free: space.free,
          what: "its largest tensor, at the least",
        }),
      );
    const needed = blocksNeeded(Array(window.count).fill(window.bytes), space.blockBytes);
    this.need = this.shortage({
      mode: "streaming",
      needed,
      free: space.free,
      what: `its window of ${window.count} x ${window.bytes} bytes`,
    });
    return window;
  }

  /** A shortage of this load's region directory (shm/capacity.ts), for the sizing error. */
  private shortage(s: Omit<ShmShortage, "dir" | "fs">): ShmShortage {
    return { dir: this.shm.dir, fs: this.shm.fs, ...s };
  }

  /** STREAMING: the regions the client retained (its memory now, out of the window). */
  private retained(): RegionState[] {
    return [...this.regions.values()].filter((r) => r.retained);
  }

  /** A full /dev/shm met anyway (another process took the space meanwhile) is the sizing error too. */
  private noSpace(err: unknown): unknown {
    return isNoSpace(err) && this.need ? shmTooSmall({ ...this.need, cause: err }) : err;
  }

  private async newRegion(bytes: number): Promise<RegionState> {
    const shm = await ShmRegion.create(bytes, this.shm, this.metrics.shm).catch((err: unknown) => {
      throw this.noSpace(err);
    });
    const region: RegionState = { id: this.regions.size + 1, shm, announced: false, mapped: false, busy: false, retained: false };
    this.regions.set(region.id, region); // disposed by run() whatever happens next
    this.check();
    return region;
  }

  /**
   * RESIDENT: the regions one after the other, each created (its pages allocated: region.ts) while
   * the one before it is being filled, so the allocation of region k+1 overlaps the decryption into
   * region k, and the client maps region k while region k+1 fills.
   */
  private async resident(batches: Batch<ManifestEntry>[]): Promise<void> {
    let next: Promise<RegionState> | null = null;
    try {
      for (const [i, batch] of batches.entries()) {
        const region = await (next ?? this.newRegion(regionBytesOf(batch)));
        next = i + 1 < batches.length ? this.newRegion(regionBytesOf(batches[i + 1]!)) : null;
        next?.catch(() => {}); // handled: awaited in the next round or in finally
        await this.fill(region, batch);
        region.announced = true; // before sending: the client may answer before write() returns
        await this.send({
          ready: {
            region_id: region.id,
            path: region.shm.path,
            region_bytes: region.shm.bytes,
            tensors: placements(batch),
            accepts_retained: false,
            window_count: 0,
          },
        });
      }
    } finally {
      // A region still being created is registered (and so disposed by run()) once its creation settles.
      await next?.catch(() => {});
    }
  }

  private async streaming(entries: ManifestEntry[], { bytes: windowBytes, count }: Window): Promise<void> {
    for (const batch of packBatches(entries, (e) => e.byteSize, windowBytes)) {
      const region = await this.freeRegion(windowBytes, count);
      await this.fill(region, batch);
      const path = region.announced ? "" : region.shm.path; // the client maps each region once
      region.announced = true;
      region.busy = true;
      await this.send({
        ready: {
          region_id: region.id,
          path,
          region_bytes: region.shm.bytes, // the window's size, rounded up to whole huge pages on hugetlbfs
          tensors: placements(batch),
          accepts_retained: true,
          window_count: count,
        },
      });
    }
  }

  /** A window region to fill: a consumed one, else a new one while the window (retained regions left out) has room, else the next consumed. */
  private async freeRegion(windowBytes: number, count: number): Promise<RegionState> {
    const window = () => [...this.regions.values()].filter((r) => !r.retained);
    const free = () => window().find((r) => !r.busy);
    const region = free();
    if (region) return region;
    if (window().length < count) {
      if (this.retained().length > 0) await this.checkSpaceAfterRetained(windowBytes);
      return this.newRegion(windowBytes);
    }
    await this.until(() => free() !== undefined || window().length < count, "`consumed` or `retained`");
    return this.freeRegion(windowBytes, count);
  }

  /**
   * Before replacing a retained region: the planned window counted on space that the client's retained
   * regions now hold, so measure again and refuse with the sizing error rather than meet ENOSPC halfway.
   */
  private async checkSpaceAfterRetained(windowBytes: number): Promise<void> {
    const space = await this.space();
    const needed = blocksNeeded([windowBytes], space.blockBytes);
    if (needed <= space.free) return;
    const kept = this.retained();
    const keptBytes = kept.reduce((sum, r) => sum + r.shm.bytes, 0);
    this.need = this.shortage({
      mode: "streaming",
      needed,
      free: space.free,
      what: `a new region of its window: the client keeps ${kept.length} region(s) (${keptBytes} bytes) whose tensors it still uses`,
    });
    throw shmTooSmall(this.need);
  }

  /**
   * Fills the region with the batch's tensors. Native engine: one job decrypts every chunk of every
   * tensor of the batch on the thread pool, from the model files into the region file in 256 KiB
   * pieces (pread, AEAD, pwrite; no tensor-sized buffer). JS engine: each tensor is decrypted into
   * the scratch buffer, written into the region, and the scratch zeroed.
   */
  private async fill(region: RegionState, batch: Batch<ManifestEntry>): Promise<void> {
    try {
      await this.fillWith(region, batch);
      this.metrics.bytesServed(this.mode!, tensorBytesOf(batch));
    } catch (err) {
      throw this.noSpace(err);
    }
  }

  private async fillWith(region: RegionState, batch: Batch<ManifestEntry>): Promise<void> {
    if (engineName() === "native") {
      const items = batch.placements
        .filter((p) => p.byteSize > 0)
        .map((p) => ({ reader: p.item.reader, name: p.item.name, offset: p.offset }));
      await readTensorsInto(items, { kind: "file", fd: region.shm.fd, bytes: region.shm.bytes, map: region.shm.writesByMapping });
      this.check();
      return;
    }
    for (const p of batch.placements) {
      if (p.byteSize === 0) continue;
      this.scratch ??= new Uint8Array(this.largestTensorBytes);
      const plain = this.scratch.subarray(0, p.byteSize);
      try {
        await p.item.reader.readTensorInto(p.item.name, plain);
        this.check();
        await region.shm.write(plain, p.offset);
      } finally {
        plain.fill(0);
      }
      this.check();
    }
  }
}

/** A RESIDENT region's size: its batch, aligned (at least one alignment unit). */
function regionBytesOf(batch: Batch<unknown>): number {
  return Math.max(alignUp(batch.end), ALIGN_BYTES);
}

/** The tensor bytes of a batch (without the alignment padding between them). */
function tensorBytesOf(batch: Batch<ManifestEntry>): number {
  return batch.placements.reduce((sum, p) => sum + p.byteSize, 0);
}

function placements(batch: Batch<ManifestEntry>) {
  return batch.placements.map((p) => ({
    name: p.item.name,
    dtype: p.item.dtype,
    shape: p.item.shape,
    offset: p.offset,
    byte_size: p.byteSize,
  }));
}
