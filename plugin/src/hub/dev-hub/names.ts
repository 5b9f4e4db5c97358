// Every name that comes from a request and can end up in a file path or a lookup key is checked here,
// and only here: repo types, namespaces and names, branch names, commit ids, LFS object ids and file
// paths. The routes check what they receive with these functions, and Storage checks again before it
// builds a path (so a route that forgets cannot leave the data folder).

import { HubError } from "./hub-error.js";
import type { RepoType } from "./model.js";

/** URL segments of the repo types (`/api/models/...`, `/datasets/...`). */
const TYPE_SEGMENTS: Readonly<Record<string, RepoType>> = { models: "model", datasets: "dataset", spaces: "space" };

export function isRepoType(value: unknown): value is RepoType {
  return value === "model" || value === "dataset" || value === "space";
}

/** The repo type of a URL segment (`models`), or undefined. */
export function repoTypeOfSegment(segment: string | undefined): RepoType | undefined {
  return segment !== undefined && Object.hasOwn(TYPE_SEGMENTS, segment) ? TYPE_SEGMENTS[segment] : undefined;
}

/** The repo type of a request body field (absent = model). @throws HubError 400 */
export function repoTypeOfField(value: unknown): RepoType {
  const type = value ?? "model";
  if (!isRepoType(type)) throw new HubError(400, "type must be model, dataset or space");
  return type;
}

/** A namespace or repo name: letters, digits, `_`, `.`, `-`; no "..", no path separator, no `.git` suffix. */
export function validRepoPart(part: unknown): part is string {
  return typeof part === "string" && /^[A-Za-z0-9_][\w.-]{0,95}$/.test(part) && !part.includes("..") && !part.endsWith(".git");
}

/** `namespace/name`. */
export function validRepoId(id: unknown): id is string {
  if (typeof id !== "string") return false;
  const parts = id.split("/");
  return parts.length === 2 && parts.every(validRepoPart);
}

/** The repo id of a request body's `organization` (default `user`) and `name`. @throws HubError 400 */
export function repoIdOfFields(organization: unknown, name: unknown, user: string): string {
  const org = organization ?? user;
  if (!validRepoPart(name) || !validRepoPart(org)) throw new HubError(400, "invalid repo name or organization");
  return `${org}/${name}`;
}

export const COMMIT_ID = /^[0-9a-f]{40}$/;
const LFS_OID = /^[0-9a-f]{64}$/;

export function validCommitId(value: string): boolean {
  return COMMIT_ID.test(value);
}

/** An LFS object id (sha256, lower-case hex). */
export function validLfsOid(value: unknown): value is string {
  return typeof value === "string" && LFS_OID.test(value);
}

/** A branch that may be created: not a commit id, not HEAD, no ".." and no empty segment. */
export function validBranchName(name: unknown): name is string {
  return (
    typeof name === "string" &&
    /^[\w.\-/]{1,200}$/.test(name) &&
    !validCommitId(name) &&
    name !== "HEAD" &&
    name !== "__proto__" &&
    !name.includes("..") &&
    name.split("/").every((s) => s !== "" && s !== ".")
  );
}

/** A repo-relative file path: no empty, "." or ".." segment, no backslash or NUL, at most 1000 characters. */
export function validPath(path: unknown): path is string {
  if (typeof path !== "string" || !path || path.length > 1000 || path.includes("\\") || path.includes("\0")) return false;
  return path.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}
