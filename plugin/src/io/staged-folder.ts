// Output folders appear whole or not at all. A folder is built in a hidden staging folder beside the
// target (`.NAME.<random>.partial`), then renamed into place in one step. While it is being built, the
// files written through withAtomicFile (files.ts) into it stay unnamed (O_TMPFILE) and are linked into
// the staging folder only once every file is complete, just before the rename: a process killed with
// SIGKILL leaves at most an empty hidden staging folder (plus the copied non-weight files), never a
// shard. Where unnamed files are not available, finished files are named in the staging folder as they
// complete; a catchable signal removes the staging folder (cli/signals.ts), SIGKILL may leave it.

import { AsyncLocalStorage } from "node:async_hooks";
import type { FileHandle } from "node:fs/promises";
import { mkdir, rename, rm } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { ioError, mapIoErrors } from "./io-error.js";
import type { NativeFs } from "./native-fs.js";
import { hiddenSibling, trackTemporary } from "./temporaries.js";
import { testPause } from "./test-pause.js";

/** Unnamed files held open until the folder is complete; beyond this many, files are named as they complete (fd limits). */
const MAX_HELD_FILES = 256;

class Stage {
  private readonly held: { fh: FileHandle; target: string; native: NativeFs }[] = [];
  readonly root: string;

  constructor(dir: string) {
    this.root = resolve(dir) + sep;
  }

  contains(path: string): boolean {
    return resolve(path).startsWith(this.root);
  }

  /** Takes over a complete unnamed file to be linked at `target` when the folder is complete; false when full. */
  hold(fh: FileHandle, target: string, native: NativeFs): boolean {
    if (this.held.length >= MAX_HELD_FILES) return false;
    this.held.push({ fh, target, native });
    return true;
  }

  async linkAll(): Promise<void> {
    while (this.held.length) {
      const { fh, target, native } = this.held[0]!;
      try {
        native.linkFd(fh.fd, target);
      } catch (err) {
        throw ioError(err, target, "creating");
      }
      this.held.shift();
      await fh.close();
    }
  }

  async discard(): Promise<void> {
    for (const { fh } of this.held.splice(0)) await fh.close().catch(() => {});
  }
}

const current = new AsyncLocalStorage<Stage>();

/** The staging folder that `target` is being written into, if any (then it may hold the file instead of linking it). */
export function stageHolding(target: string): Stage | undefined {
  const stage = current.getStore();
  return stage?.contains(target) ? stage : undefined;
}

/**
 * Builds the folder `target` with `build(stagingDir)` and renames it into place when `build` succeeds.
 * An existing target (an empty folder, or with --force a folder or file) is replaced whole: it is moved
 * aside, the new folder renamed in, then the old one removed. On failure nothing is left.
 * The parent of `target` must exist.
 * @throws ERR_CT_IO (with the path and a remedy) and whatever `build` throws
 */
export async function withStagedFolder<T>(
  target: string,
  build: (stagingDir: string) => Promise<T>,
  /** Runs once every file of the staging folder has its name, before the rename (e.g. writes a manifest of them). */
  finish?: (stagingDir: string) => Promise<unknown>,
): Promise<T> {
  const dir = hiddenSibling(target, "partial");
  await mapIoErrors(target, "creating", () => mkdir(dir));
  const release = trackTemporary(dir);
  const stage = new Stage(dir);
  try {
    const result = await current.run(stage, () => build(dir));
    await stage.linkAll();
    if (finish) await finish(dir);
    await testPause("folder");
    await moveIntoPlace(dir, target);
    return result;
  } catch (err) {
    await stage.discard();
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw err;
  } finally {
    release();
  }
}

const TARGET_IN_THE_WAY = new Set(["ENOTEMPTY", "EEXIST", "ENOTDIR", "EISDIR"]);

async function moveIntoPlace(dir: string, target: string): Promise<void> {
  try {
    await rename(dir, target);
    return;
  } catch (err) {
    if (!TARGET_IN_THE_WAY.has((err as NodeJS.ErrnoException).code ?? "")) throw ioError(err, target, "creating");
  }
  const old = hiddenSibling(target, "old");
  await mapIoErrors(target, "replacing", () => rename(target, old));
  try {
    await rename(dir, target);
  } catch (err) {
    await rename(old, target).catch(() => {});
    throw ioError(err, target, "replacing");
  }
  await rm(old, { recursive: true, force: true }).catch(() => {});
}
