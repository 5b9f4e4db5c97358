// Repositories of the development Hub: creation, revision resolution, commits and branches, with an
// in-memory cache over Storage and one lock per repository (commits and branch updates are serialized).

import { createHash } from "node:crypto";
import { HubError, repoNotFound, revisionNotFound } from "./hub-error.js";
import { makeCommit, type Change, type Commit, type RepoMeta, type RepoType } from "./model.js";
import { isRepoType, validCommitId, validRepoId } from "./names.js";
import type { Storage } from "./storage.js";

/** The commit a branch points to (own properties only: a branch named like an Object method is no branch). */
export function branchHead(meta: RepoMeta, branch: string): string | undefined {
  return Object.hasOwn(meta.branches, branch) ? meta.branches[branch] : undefined;
}

export function repoObjectId(type: RepoType, id: string): string {
  return createHash("sha1").update(`${type}/${id}`).digest("hex").slice(0, 24);
}

export class Repos {
  private readonly cache = new Map<string, RepoMeta>();
  private readonly commits = new Map<string, Commit>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly storage: Storage) {}

  private key(type: RepoType, id: string): string {
    return `${type}s/${id}`;
  }

  async get(type: RepoType, id: string): Promise<RepoMeta | undefined> {
    if (!isRepoType(type) || !validRepoId(id)) return undefined;
    const k = this.key(type, id);
    let meta = this.cache.get(k);
    if (!meta) {
      meta = await this.storage.readRepo(type, id);
      if (meta) this.cache.set(k, meta);
    }
    return meta;
  }

  async commit(meta: RepoMeta, sha: string): Promise<Commit | undefined> {
    const k = `${this.key(meta.type, meta.id)}@${sha}`;
    let c = this.commits.get(k);
    if (!c) {
      c = await this.storage.readCommit(meta.type, meta.id, sha);
      if (c) this.commits.set(k, c);
    }
    return c;
  }

  /** Resolves a branch name, "HEAD" (= main) or a full commit sha to a commit. */
  async resolve(meta: RepoMeta, rev: string): Promise<Commit> {
    const branch = rev === "HEAD" ? "main" : rev;
    const sha = branchHead(meta, branch) ?? (validCommitId(rev) ? rev : undefined);
    const c = sha ? await this.commit(meta, sha) : undefined;
    if (!c) throw revisionNotFound(rev);
    return c;
  }

  /** Runs fn with the repository's lock held. */
  async locked<T>(type: RepoType, id: string, fn: () => Promise<T>): Promise<T> {
    const k = this.key(type, id);
    const prev = this.locks.get(k) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(k, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(k) === tail) this.locks.delete(k);
    }
  }

  async create(type: RepoType, id: string, isPrivate: boolean, author: string): Promise<RepoMeta> {
    if (!isRepoType(type) || !validRepoId(id)) throw new HubError(400, `invalid repo id ${JSON.stringify(id)}`);
    return this.locked(type, id, async () => {
      if (await this.get(type, id)) throw new HubError(409, "You already created this model repo", "RepoExists");
      const initial = makeCommit(undefined, [], { title: "initial commit", message: "", author });
      const meta: RepoMeta = { type, id, private: isPrivate, createdAt: initial.date, branches: { main: initial.id } };
      await this.storage.writeRepo(meta);
      await this.storage.writeCommit(type, id, initial);
      this.cache.set(this.key(type, id), meta);
      return meta;
    });
  }

  async remove(type: RepoType, id: string): Promise<void> {
    await this.locked(type, id, async () => {
      if (!(await this.get(type, id))) throw repoNotFound();
      await this.storage.removeRepo(type, id);
      this.cache.delete(this.key(type, id));
      for (const k of [...this.commits.keys()]) if (k.startsWith(`${this.key(type, id)}@`)) this.commits.delete(k);
    });
  }

  /** Commits changes on a branch. parentCommit, when given, must be the branch's head (else 412). */
  async commitChanges(
    meta: RepoMeta,
    branch: string,
    changes: Change[],
    info: { title: string; message: string; author: string; parentCommit?: string },
  ): Promise<Commit> {
    return this.locked(meta.type, meta.id, async () => {
      const headSha = branchHead(meta, branch);
      if (!headSha) throw revisionNotFound(branch);
      if (info.parentCommit && info.parentCommit !== headSha) {
        throw new HubError(
          412,
          `A commit has happened since. Please refresh and try again: parentCommit ${info.parentCommit} is not the head of ${branch} (${headSha})`,
          "PreconditionFailed",
        );
      }
      const parent = await this.commit(meta, headSha);
      let c: Commit;
      try {
        c = makeCommit(parent, changes, info);
      } catch (msg) {
        if (typeof msg === "string") throw new HubError(400, msg);
        throw msg;
      }
      await this.storage.writeCommit(meta.type, meta.id, c);
      this.commits.set(`${this.key(meta.type, meta.id)}@${c.id}`, c);
      meta.branches[branch] = c.id;
      await this.storage.writeRepo(meta);
      return c;
    });
  }

  async createBranch(
    meta: RepoMeta,
    branch: string,
    opts: { startingPoint?: string; empty?: boolean; overwrite?: boolean; author: string },
  ): Promise<void> {
    await this.locked(meta.type, meta.id, async () => {
      if (branchHead(meta, branch) && !opts.overwrite)
        throw new HubError(409, `Reference already exists: refs/heads/${branch}`, "BranchExists");
      let sha: string;
      if (opts.empty) {
        const c = makeCommit(undefined, [], { title: `create branch ${branch}`, message: "", author: opts.author });
        await this.storage.writeCommit(meta.type, meta.id, c);
        sha = c.id;
      } else {
        sha = (await this.resolve(meta, opts.startingPoint ?? "main")).id;
      }
      meta.branches[branch] = sha;
      await this.storage.writeRepo(meta);
    });
  }

  async deleteBranch(meta: RepoMeta, branch: string): Promise<void> {
    await this.locked(meta.type, meta.id, async () => {
      if (branch === "main") throw new HubError(403, "The main branch cannot be deleted");
      if (!branchHead(meta, branch)) throw revisionNotFound(branch);
      delete meta.branches[branch];
      await this.storage.writeRepo(meta);
    });
  }

  /** First-parent history from `head`, newest first. */
  async history(meta: RepoMeta, head: Commit): Promise<Commit[]> {
    const out: Commit[] = [head];
    let c: Commit | undefined = head;
    while (c?.parents[0]) {
      c = await this.commit(meta, c.parents[0]);
      if (c) out.push(c);
    }
    return out;
  }
}
