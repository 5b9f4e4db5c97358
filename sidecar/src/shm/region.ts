// One shared-memory region: a file under /dev/shm (tmpfs: plaintext never reaches a disk) with an
// unguessable name, created exclusively with mode 0600. The sidecar writes tensors through its fd;
// the client maps the file, then the sidecar unlinks it, so the pages live only as long as mappings.

import { constants, unlinkSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

export const SHM_DIR = "/dev/shm";
export const REGION_PREFIX = "ctensors-";
/** A pwrite moves at most this many bytes (Node refuses lengths of 2 GiB and more). */
const MAX_WRITE_BYTES = 1024 * 1024 * 1024;

// Paths created and not yet unlinked, process-wide: removed even when the process exits abruptly
// (an uncaught exception). Only SIGKILL can leave one behind.
const live = new Set<string>();
let exitHookInstalled = false;

function track(path: string): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const p of live) unlinkQuietly(p);
    });
  }
  live.add(path);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

export class ShmRegion {
  private unlinked = false;
  private closed = false;

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly bytes: number,
  ) {}

  /** Creates `/dev/shm/ctensors-<32 hex>` (O_CREAT|O_EXCL|O_RDWR|O_NOFOLLOW, 0600) of `bytes` bytes. */
  static async create(bytes: number, dir = SHM_DIR): Promise<ShmRegion> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new TypeError(`region size must be a positive integer, got ${bytes}`);
    const path = join(dir, `${REGION_PREFIX}${randomBytes(16).toString("hex")}`);
    const fh = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW, 0o600);
    track(path);
    const region = new ShmRegion(fh, path, bytes);
    try {
      await fh.truncate(bytes);
    } catch (err) {
      await region.dispose();
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
    if (offset < 0 || offset + data.length > this.bytes) throw new RangeError(`write of ${data.length} bytes at ${offset} exceeds the ${this.bytes}-byte region`);
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
    live.delete(this.path);
    unlinkQuietly(this.path);
  }

  /** Unlinks (if not yet) and closes the fd. Idempotent. */
  async dispose(): Promise<void> {
    this.unlink();
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}
