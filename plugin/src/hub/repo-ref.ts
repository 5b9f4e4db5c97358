// Hub model references: `org/name` or `org/name@revision` (a branch, a tag or a 40-hex commit sha).
// The names follow the Hub's rules (letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96
// characters), so that a reference is never confused with a path and never escapes the cache folder.

import { usageError } from "../errors.js";
import { quote } from "../format/printable.js";

export interface RepoRef {
  /** `org/name` */
  repo: string;
  /** The revision asked for; `main` when none was given. */
  revision: string;
  /** Whether a revision was given explicitly. */
  explicitRevision: boolean;
}

const PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;
const REVISION = /^[A-Za-z0-9._/-]{1,255}$/;
export const COMMIT_SHA = /^[0-9a-f]{40}$/;

function validPart(part: string): boolean {
  return PART.test(part) && !part.includes("--") && !part.includes("..");
}

function validRevision(rev: string): boolean {
  return REVISION.test(rev) && !rev.split("/").some((seg) => seg === "" || seg === "." || seg === "..");
}

/** Whether `source` reads as a Hub reference (`org/name[@rev]`), not as a path. */
export function isRepoRef(source: string): boolean {
  return tryParseRepoRef(source) !== undefined;
}

export function tryParseRepoRef(source: string): RepoRef | undefined {
  const at = source.indexOf("@");
  const repo = at < 0 ? source : source.slice(0, at);
  const revision = at < 0 ? undefined : source.slice(at + 1);
  const parts = repo.split("/");
  if (parts.length !== 2 || !parts.every(validPart)) return undefined;
  if (revision !== undefined && !validRevision(revision)) return undefined;
  return { repo, revision: revision ?? "main", explicitRevision: revision !== undefined };
}

/** @throws ERR_CT_USAGE when `source` is not `org/name[@revision]` */
export function parseRepoRef(source: string): RepoRef {
  const ref = tryParseRepoRef(source);
  if (!ref) {
    throw usageError(
      `${quote(source)} is not a Hub model reference: expected org/name or org/name@revision ` +
        "(letters, digits, '-', '_', '.'; the revision a branch, tag or commit sha)",
    );
  }
  return ref;
}

/**
 * `ref` at `revision` (a `--revision` option, as Hub clients take it), when one is given.
 * @throws ERR_CT_USAGE when `revision` is not a revision name, or contradicts the `@revision` of `ref`
 */
export function withRevision(ref: RepoRef, revision: string | undefined): RepoRef {
  if (revision === undefined) return ref;
  if (!validRevision(revision)) throw usageError(`${quote(revision)} is not a revision: expected a branch, tag or commit sha`, "revision");
  if (ref.explicitRevision && ref.revision !== revision) {
    throw usageError(
      `${ref.repo}@${ref.revision} names revision ${quote(ref.revision)} but --revision ${quote(revision)} was given`,
      "revision",
    );
  }
  return { ...ref, revision, explicitRevision: true };
}

/** The cache folder name of a model repo (`models--org--name`), as both Hub clients spell it. */
export function repoFolderName(repo: string): string {
  return `models--${repo.split("/").join("--")}`;
}
