// The body of POST /api/{type}/{ns}/{name}/commit/{branch}, turned into the changes of a commit:
// ndjson lines (`header`, `file`, `lfsFile`, `deletedFile`, `deletedFolder`), as both Hub clients send
// them, or the JSON form {summary, description, parentCommit, files, lfsFiles, deletedFiles, deletedFolders}.

import { HubError } from "./hub-error.js";
import { gitBlobOid, lfsEntry, type Change } from "./model.js";
import { validLfsOid, validPath } from "./names.js";
import type { Storage } from "./storage.js";

export interface CommitLine {
  key: string;
  value: Record<string, unknown>;
}

export interface CommitInfo {
  title: string;
  message: string;
  author: string;
  parentCommit?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The operations of a commit body. @throws HubError 400 when it is neither ndjson nor the JSON form */
export function parseCommitBody(body: Buffer, contentType: string): CommitLine[] {
  let lines: unknown[];
  try {
    lines = contentType.startsWith("application/json") ? linesOfJsonForm(JSON.parse(body.toString("utf8"))) : linesOfNdjson(body);
  } catch {
    throw new HubError(400, "commit body is not valid ndjson / JSON");
  }
  for (const l of lines) {
    if (!isObject(l) || typeof l.key !== "string" || !isObject(l.value))
      throw new HubError(400, "every commit line must be {key, value: {...}}");
  }
  return lines as CommitLine[];
}

function linesOfNdjson(body: Buffer): unknown[] {
  return body
    .toString("utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as unknown);
}

function linesOfJsonForm(j: unknown): CommitLine[] {
  if (!isObject(j)) throw new Error("not an object");
  const arr = (k: string) => (Array.isArray(j[k]) ? (j[k] as Record<string, unknown>[]) : []);
  return [
    { key: "header", value: { summary: j.summary, description: j.description, parentCommit: j.parentCommit } },
    ...arr("files").map((value) => ({ key: "file", value })),
    ...arr("lfsFiles").map((value) => ({ key: "lfsFile", value })),
    ...arr("deletedFiles").map((value) => ({ key: "deletedFile", value })),
    ...arr("deletedFolders").map((value) => ({ key: "deletedFolder", value })),
  ];
}

/** Title, message and parent commit from the header line. */
export function commitInfoOf(lines: CommitLine[], author: string): CommitInfo {
  const header = lines.find((l) => l.key === "header")?.value ?? {};
  const info: CommitInfo = {
    title: typeof header.summary === "string" && header.summary ? header.summary : "Upload files with the development Hub",
    message: typeof header.description === "string" ? header.description : "",
    author,
  };
  if (typeof header.parentCommit === "string" && header.parentCommit) info.parentCommit = header.parentCommit;
  return info;
}

/**
 * The changes of the operation lines; regular file contents are stored on the way, LFS objects must
 * have been uploaded. @throws HubError 400 (bad path, path twice, unknown operation), 422 (LFS object missing)
 */
export async function changesOf(lines: CommitLine[], storage: Storage): Promise<Change[]> {
  const changes: Change[] = [];
  const seen = new Set<string>();
  for (const { key, value } of lines) {
    if (key === "header") continue;
    const path = String(value.path ?? "");
    const normalized = key === "deletedFolder" ? path.replace(/\/+$/, "") : path;
    if (!validPath(normalized)) throw new HubError(400, `invalid path ${JSON.stringify(path)}`);
    if (seen.has(normalized)) throw new HubError(400, `path ${JSON.stringify(path)} appears twice in the commit`);
    seen.add(normalized);
    if (key === "file") changes.push(await regularFile(path, value, storage));
    else if (key === "lfsFile") changes.push(await lfsFile(path, value, storage));
    else if (key === "deletedFile") changes.push({ kind: "delete", path });
    else if (key === "deletedFolder") changes.push({ kind: "deleteFolder", path: normalized });
    else throw new HubError(400, `unsupported commit operation ${JSON.stringify(key)}`);
  }
  return changes;
}

async function regularFile(path: string, value: Record<string, unknown>, storage: Storage): Promise<Change> {
  if (value.encoding !== undefined && value.encoding !== "base64")
    throw new HubError(400, `unsupported encoding ${String(value.encoding)}`);
  const content = Buffer.from(String(value.content ?? ""), "base64");
  const oid = gitBlobOid(content);
  await storage.putObject(oid, content);
  return { kind: "file", path, oid, size: content.length };
}

async function lfsFile(path: string, value: Record<string, unknown>, storage: Storage): Promise<Change> {
  const oid = String(value.oid ?? "");
  const size = Number(value.size);
  if ((value.algo ?? "sha256") !== "sha256") throw new HubError(400, "lfsFile algo must be sha256");
  const have = validLfsOid(oid) ? await storage.lfsSize(oid) : undefined;
  if (have === undefined) throw new HubError(422, `lfsFile ${JSON.stringify(path)}: LFS object ${oid} was not uploaded`);
  if (have !== size)
    throw new HubError(422, `lfsFile ${JSON.stringify(path)}: size ${size} does not match the uploaded object (${have} bytes)`);
  return { kind: "file", path, ...lfsEntry(oid, size) };
}
