// The git-ish data model of the development Hub: immutable commits (each holds the full flat tree of its
// files), branches pointing at commits, file entries with git blob oids and LFS pointers.
// A commit id is the sha1 of the canonical JSON of {parents, title, message, date, author, changes}; the
// tree is derived from the parent's tree plus the changes, so it is covered by the id.

import { createHash } from "node:crypto";

export type RepoType = "model" | "dataset" | "space";

export interface LfsInfo {
  /** sha256 of the content (hex). */
  oid: string;
  size: number;
  pointerSize: number;
}

export interface FileEntry {
  /** git blob sha1: of the content for regular files, of the LFS pointer for LFS files. */
  oid: string;
  size: number;
  lfs?: LfsInfo;
  /** id of the last commit that added or changed this file. */
  lastCommit: string;
}

export interface Commit {
  id: string;
  parents: string[];
  title: string;
  message: string;
  /** ISO 8601. */
  date: string;
  author: string;
  tree: Record<string, FileEntry>;
}

export interface RepoMeta {
  type: RepoType;
  /** "org/name". */
  id: string;
  private: boolean;
  createdAt: string;
  branches: Record<string, string>;
}

export type Change =
  | { kind: "file"; path: string; oid: string; size: number; lfs?: LfsInfo }
  | { kind: "delete"; path: string }
  | { kind: "deleteFolder"; path: string };

export function gitBlobOid(content: Uint8Array): string {
  return createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex");
}

export function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

export function lfsEntry(sha256: string, size: number): { oid: string; size: number; lfs: LfsInfo } {
  const pointer = Buffer.from(lfsPointer(sha256, size));
  return { oid: gitBlobOid(pointer), size, lfs: { oid: sha256, size, pointerSize: pointer.length } };
}

/** The file at `path` in a commit (own entries only: a path named like an Object method is no file). */
export function fileAt(commit: Commit, path: string): FileEntry | undefined {
  return Object.hasOwn(commit.tree, path) ? commit.tree[path] : undefined;
}

/**
 * Builds a new commit from a parent (or none) and changes. Throws a message string (caller answers 400)
 * when a change conflicts (file vs folder).
 */
export function makeCommit(
  parent: Commit | undefined,
  changes: Change[],
  info: { title: string; message: string; author: string; date?: Date },
): Commit {
  const parents = parent ? [parent.id] : [];
  const date = (info.date ?? new Date()).toISOString();
  const canonical = JSON.stringify({
    parents,
    title: info.title,
    message: info.message,
    date,
    author: info.author,
    changes: changes.map((c) => (c.kind === "file" ? { kind: c.kind, path: c.path, oid: c.oid, size: c.size, lfs: c.lfs ?? null } : c)),
  });
  const id = createHash("sha1").update(canonical).digest("hex");
  // No prototype: a file may be called "__proto__".
  const tree: Record<string, FileEntry> = Object.assign(Object.create(null) as Record<string, FileEntry>, parent?.tree ?? {});
  for (const c of changes) {
    if (c.kind === "delete") {
      delete tree[c.path];
    } else if (c.kind === "deleteFolder") {
      const prefix = c.path.endsWith("/") ? c.path : `${c.path}/`;
      for (const p of Object.keys(tree)) if (p.startsWith(prefix)) delete tree[p];
    } else {
      const entry: FileEntry = { oid: c.oid, size: c.size, lastCommit: id };
      if (c.lfs) entry.lfs = c.lfs;
      const prev = tree[c.path];
      // An unchanged file keeps its last commit.
      tree[c.path] = prev && prev.oid === entry.oid ? prev : entry;
    }
  }
  const paths = Object.keys(tree);
  const set = new Set(paths);
  for (const p of paths) {
    const segs = p.split("/");
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join("/");
      if (set.has(dir)) throw `path conflict: ${JSON.stringify(dir)} is a file and a folder`;
    }
  }
  return { id, parents, title: info.title, message: info.message, date, author: info.author, tree };
}

export interface TreeItem {
  type: "file" | "directory";
  path: string;
  oid: string;
  size: number;
  lfs?: LfsInfo;
  lastCommit?: { id: string; title: string; date: string };
}

/**
 * The entries under `dir` ("" = root): immediate children, or every file and folder below when recursive.
 * Sorted by path, folders listed like the Hub (type "directory", size 0, oid = sha1 of the folder listing).
 * Returns undefined when `dir` is neither the root nor a folder.
 */
export function listTree(
  commit: Commit,
  dir: string,
  recursive: boolean,
): Array<{ type: "file" | "directory"; path: string; entry?: FileEntry; oid: string }> | undefined {
  const prefix = dir ? `${dir}/` : "";
  const files = Object.keys(commit.tree).filter((p) => p.startsWith(prefix));
  if (dir && files.length === 0) return undefined;
  const out = new Map<string, { type: "file" | "directory"; path: string; entry?: FileEntry; oid: string }>();
  const dirs = new Map<string, string[]>();
  for (const p of files) {
    const rest = p.slice(prefix.length).split("/");
    // folders between dir and the file
    for (let i = 1; i < rest.length; i++) {
      const d = prefix + rest.slice(0, i).join("/");
      if (!dirs.has(d)) dirs.set(d, []);
      dirs.get(d)!.push(`${p}:${commit.tree[p]!.oid}`);
    }
    if (recursive || rest.length === 1) out.set(p, { type: "file", path: p, entry: commit.tree[p]!, oid: commit.tree[p]!.oid });
  }
  for (const [d, members] of dirs) {
    const depth = d.slice(prefix.length).split("/").length;
    if (!recursive && depth > 1) continue;
    out.set(d, { type: "directory", path: d, oid: createHash("sha1").update(members.sort().join("\n")).digest("hex") });
  }
  return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
