// One sidecar's presence in /dev/shm: a random instance id that names every region it creates
// (`ctensors-<id>-<32 hex>`, see region.ts), and a liveness socket `ctensors-<id>.live` it listens on
// for as long as it runs. The kernel closes a listening socket when its process dies, however it dies
// (SIGKILL included): connecting then fails with ECONNREFUSED. That is how a later sidecar tells the
// regions of a dead instance from those of a live one (sweep.ts).
//
// Why a listening unix socket and not a lock file: Node has no flock() or fcntl() lock, and the
// packages that add them are native addons (a compiler at install time); lock files judged by pid or
// mtime are wrong after pid reuse, across pid namespaces (containers sharing /dev/shm), or for a
// stopped process. A listening socket is a kernel-held resource like a flock, released exactly when
// its owner is gone, works across pid and network namespaces that share the file system, needs
// nothing but `node:net`, and is the same test the sidecar already applies to its gRPC socket.

import { randomBytes } from "node:crypto";
import { chmodSync, renameSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { CryptoTensorsError } from "../../index.js";
import { TMPFS_KIND, type ShmDirInfo, type ShmFs } from "./shm-dir.js";
import { unlinkAtExit, unlinkNow, unlinkQuietly } from "./unlink-at-exit.js";

export const SHM_DIR = "/dev/shm";
export const REGION_PREFIX = "ctensors-";
/** `ctensors-<instance id>-<region id>`: the only names the sidecar creates regions under. */
export const REGION_NAME = /^ctensors-([0-9a-f]{16})-[0-9a-f]{32}$/;
/** `ctensors-<instance id>.live`: the instance's liveness socket. */
export const LIVENESS_NAME = /^ctensors-([0-9a-f]{16})\.live$/;

export function livenessName(instanceId: string): string {
  return `${REGION_PREFIX}${instanceId}.live`;
}

export class ShmInstance {
  private closed = false;

  private constructor(
    /** 16 hex digits. */
    readonly id: string,
    readonly dir: string,
    /** `<dir>/ctensors-<id>.live`. */
    readonly livenessPath: string,
    private readonly server: Server,
    /** The directory's file system (shm-dir.ts): hugetlbfs regions are whole huge pages, written through a mapping. */
    readonly fs: ShmFs,
    /** Its page size: regions are created in whole pages of it. */
    readonly pageBytes: number,
  ) {}

  /**
   * Listens on `<dir>/ctensors-<id>.live` (mode 0600). The socket is bound and listening under a
   * name the sweep ignores, then renamed into place: a sweep never sees it bound but not yet listening.
   * `kind` is what probeShmDir (shm-dir.ts) found `dir` to be: the sidecar checks the directory
   * before it starts an instance there.
   * @throws ERR_CT_IO
   */
  static async start(dir = SHM_DIR, kind: Pick<ShmDirInfo, "fs" | "pageBytes"> = TMPFS_KIND): Promise<ShmInstance> {
    const { fs, pageBytes } = kind;
    const id = randomBytes(8).toString("hex");
    const livenessPath = join(dir, livenessName(id));
    const binding = join(dir, `${REGION_PREFIX}${id}.binding`);
    const server = createServer((socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(binding, () => {
          server.off("error", reject);
          resolve();
        });
      });
      chmodSync(binding, 0o600);
      unlinkAtExit(livenessPath);
      renameSync(binding, livenessPath);
    } catch (err) {
      server.close();
      unlinkQuietly(binding);
      unlinkNow(livenessPath);
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new CryptoTensorsError("ERR_CT_IO", `cannot create the sidecar's liveness socket in ${dir}: ${code}`, { cause: err });
    }
    server.unref(); // the gRPC server keeps the process alive, not this
    return new ShmInstance(id, dir, livenessPath, server, fs, pageBytes);
  }

  /** A fresh region path of this instance: `<dir>/ctensors-<id>-<32 random hex>`. */
  regionPath(): string {
    return join(this.dir, `${REGION_PREFIX}${this.id}-${randomBytes(16).toString("hex")}`);
  }

  /** Stops answering and removes the liveness socket. Call once every region of the instance is gone. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    unlinkNow(this.livenessPath);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
