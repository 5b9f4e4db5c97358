// On-disk storage of the development Hub. Layout under dataDir:
//   lfs/<sha256>                                 LFS objects, content-addressed by sha256
//   objects/<git blob oid>                       regular (non-LFS) file contents, by git blob sha1
//   repos/<models|datasets|spaces>/<org>/<name>/repo.json            repo metadata + branches
//   repos/<models|datasets|spaces>/<org>/<name>/commits/<sha1>.json  one immutable commit each
//   tmp/                                         partial uploads (renamed into place when verified)
// Every JSON file is written to a temporary file and renamed into place (atomic on POSIX). Every path is
// built from names checked again here (names.ts), so no request can reach outside dataDir.

import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { HubError } from "./hub-error.js";
import type { Commit, RepoMeta, RepoType } from "./model.js";
import { isRepoType, validCommitId, validLfsOid, validRepoId } from "./names.js";

export class Storage {
  constructor(readonly dataDir: string) {}

  async init(): Promise<void> {
    // partial uploads of an earlier run are dropped (one server per dataDir)
    await rm(join(this.dataDir, "tmp"), { recursive: true, force: true });
    for (const d of ["lfs", "objects", "repos", "tmp"]) await mkdir(join(this.dataDir, d), { recursive: true });
  }

  repoDir(type: RepoType, id: string): string {
    if (!isRepoType(type) || !validRepoId(id))
      throw new HubError(400, `invalid repo type or id ${JSON.stringify(`${String(type)}/${id}`)}`);
    return join(this.dataDir, "repos", `${type}s`, ...id.split("/"));
  }

  lfsPath(sha256: string): string {
    if (!validLfsOid(sha256)) throw new HubError(400, `invalid LFS object id ${JSON.stringify(sha256)}`);
    return join(this.dataDir, "lfs", sha256);
  }

  objectPath(oid: string): string {
    if (!validCommitId(oid)) throw new HubError(400, `invalid object id ${JSON.stringify(oid)}`);
    return join(this.dataDir, "objects", oid);
  }

  tmpPath(): string {
    return join(this.dataDir, "tmp", `${Date.now()}-${randomBytes(8).toString("hex")}`);
  }

  async writeJsonAtomic(path: string, value: unknown): Promise<void> {
    const tmp = this.tmpPath();
    await writeFile(tmp, `${JSON.stringify(value, null, 1)}\n`);
    await rename(tmp, path);
  }

  async readRepo(type: RepoType, id: string): Promise<RepoMeta | undefined> {
    try {
      return JSON.parse(await readFile(join(this.repoDir(type, id), "repo.json"), "utf8")) as RepoMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  async writeRepo(meta: RepoMeta): Promise<void> {
    const dir = this.repoDir(meta.type, meta.id);
    await mkdir(join(dir, "commits"), { recursive: true });
    await this.writeJsonAtomic(join(dir, "repo.json"), meta);
  }

  async removeRepo(type: RepoType, id: string): Promise<void> {
    await rm(this.repoDir(type, id), { recursive: true, force: true });
  }

  async readCommit(type: RepoType, id: string, sha: string): Promise<Commit | undefined> {
    if (!validCommitId(sha)) return undefined;
    try {
      return JSON.parse(await readFile(join(this.repoDir(type, id), "commits", `${sha}.json`), "utf8")) as Commit;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  async writeCommit(type: RepoType, id: string, commit: Commit): Promise<void> {
    const dir = join(this.repoDir(type, id), "commits");
    await mkdir(dir, { recursive: true });
    await this.writeJsonAtomic(join(dir, `${commit.id}.json`), commit);
  }

  /** Stores a regular file's content by its git blob oid (idempotent). */
  async putObject(oid: string, content: Uint8Array): Promise<void> {
    const path = this.objectPath(oid);
    if (await exists(path)) return;
    const tmp = this.tmpPath();
    await writeFile(tmp, content);
    await rename(tmp, path);
  }

  async lfsSize(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.lfsPath(sha256))).size;
    } catch {
      return undefined;
    }
  }

  /**
   * Streams `body` to a temporary file while hashing it; moves it to lfs/<sha256> only if the sha256 and
   * the size match. Returns an error message on mismatch (nothing is stored then).
   */
  async putLfs(sha256: string, size: number, body: Readable): Promise<string | undefined> {
    const tmp = this.tmpPath();
    const hash = createHash("sha256");
    let received = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > size) return cb(new TooLarge());
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, counter, createWriteStream(tmp));
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof TooLarge) return `received more than the announced ${size} bytes`;
      throw err;
    }
    const digest = hash.digest("hex");
    if (received !== size || digest !== sha256) {
      await rm(tmp, { force: true });
      return `content does not match: expected sha256 ${sha256} and ${size} bytes, received sha256 ${digest} and ${received} bytes`;
    }
    await rename(tmp, this.lfsPath(sha256));
    return undefined;
  }

  openRead(path: string, start?: number, end?: number): Readable {
    return createReadStream(path, start === undefined ? {} : { start, end });
  }
}

class TooLarge extends Error {}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
