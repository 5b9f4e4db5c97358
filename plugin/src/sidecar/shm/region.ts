// One shared-memory region: a file under /dev/shm (tmpfs: plaintext never reaches a disk) named
// after its sidecar instance and an unguessable id (`ctensors-<instance id>-<32 hex>`, instance.ts),
// created exclusively with mode 0600. The sidecar writes tensors through its fd; the client maps the
// file, then the sidecar unlinks it, so the pages live only as long as mappings.
//
// Why the name exists until the client has mapped it: the client opens the region by path (gRPC
// cannot pass a file descriptor, and /proc/<pid>/fd/<n> does not resolve across pid namespaces), so
// the name is the handover. A sidecar killed between creating a region and the client's `mapped`
// leaves the file behind: the next sidecar's sweep (sweep.ts) removes it.
//
// A region's pages are allocated when it is created (fallocate, with the native engine): a /dev/shm
// too small for it fails there, with ENOSPC, rather than mid-fill, and no write through a mapping of
// it can ever meet a missing page (SIGBUS).
//
// On hugetlbfs (shm-dir.ts) a region is a whole number of huge pages and takes no write(): the native
// engine writes it through a mapping (`writesByMapping`).

import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { CryptoTensorsError, reserveFileSpace } from "../../index.js";
import type { ShmUsage } from "../metrics.js";
import type { ShmInstance } from "./instance.js";
import { unlinkAtExit, unlinkNow } from "./unlink-at-exit.js";

/** A pwrite moves at most this many bytes (Node refuses lengths of 2 GiB and more). */
const MAX_WRITE_BYTES = 1024 * 1024 * 1024;

export class ShmRegion {
  private unlinked = false;
  private closed = false;

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly bytes: number,
    private readonly usage: ShmUsage | undefined,
    /** hugetlbfs: writes go through a mapping of the file (write() is refused there). */
    readonly writesByMapping: boolean,
  ) {}

  /**
   * Creates `<instance dir>/ctensors-<instance id>-<32 hex>` (O_CREAT|O_EXCL|O_RDWR|O_NOFOLLOW, 0600) of
   * `bytes` bytes (on hugetlbfs, rounded up to whole huge pages: `bytes` of the result), allocated up
   * front where the engine can (see reserveFileSpace). `usage` counts its bytes while it is open (metrics.ts).
   * @throws the errno error (ENOSPC when shared memory is full); nothing is left behind
   */
  static async create(bytes: number, instance: ShmInstance, usage?: ShmUsage): Promise<ShmRegion> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new TypeError(`region size must be a positive integer, got ${bytes}`);
    const huge = instance.fs === "hugetlbfs";
    if (huge) bytes = Math.ceil(bytes / instance.pageBytes) * instance.pageBytes;
    const path = instance.regionPath();
    const fh = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW, 0o600);
    unlinkAtExit(path);
    usage?.add(bytes);
    const region = new ShmRegion(fh, path, bytes, usage, huge);
    try {
      await fh.truncate(bytes);
      await reserveFileSpace(fh.fd, bytes);
    } catch (err) {
      await region.dispose({ handedOver: false });
      throw err;
    }
    return region;
  }

  /** The open descriptor (the native engine maps the file through it). */
  get fd(): number {
    return this.fh.fd;
  }

  get isUnlinked(): boolean {
    return this.unlinked;
  }

  /** Writes all of `data` at `offset` (positional writes, looping over short writes). */
  async write(data: Uint8Array, offset: number): Promise<void> {
    if (this.writesByMapping)
      throw new CryptoTensorsError(
        "ERR_CT_UNSUPPORTED",
        `${this.path} is on hugetlbfs, which takes no write(): only the native engine fills it`,
      );
    if (offset < 0 || offset + data.length > this.bytes)
      throw new RangeError(`write of ${data.length} bytes at ${offset} exceeds the ${this.bytes}-byte region`);
    let done = 0;
    while (done < data.length) {
      const length = Math.min(data.length - done, MAX_WRITE_BYTES);
      const { bytesWritten } = await this.fh.write(data, done, length, offset + done);
      if (bytesWritten <= 0) throw new Error(`short write to ${this.path}`);
      done += bytesWritten;
    }
  }

  /** Removes the file name (synchronously, so it happens even mid-abort). Mappings and the fd stay valid. Idempotent. */
  unlink(): void {
    if (this.unlinked) return;
    this.unlinked = true;
    unlinkNow(this.path);
  }

  /**
   * Unlinks (if not yet) and closes the fd. Idempotent. A region never handed over to a client
   * (no RegionReady named it) is truncated to 0 bytes first: its tmpfs pages are freed at once, even
   * if some other process holds it open. A region that was handed over is not: the client may map it,
   * and touching a mapping past the end of a truncated file is SIGBUS.
   */
  async dispose({ handedOver }: { handedOver: boolean }): Promise<void> {
    if (!handedOver && !this.closed) await this.fh.truncate(0).catch(() => {});
    this.unlink();
    if (this.closed) return;
    this.closed = true;
    this.usage?.add(-this.bytes);
    await this.fh.close();
  }
}
