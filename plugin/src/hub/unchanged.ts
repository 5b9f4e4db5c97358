// Whether a push would change anything: `hf upload` makes no commit when every file is already on
// the branch as it is locally, and neither does `ctensors push`. A file is the same when the Hub's
// listing of the branch has it with the same content: the sha256 of an LFS file (the Hub's `lfs.oid`),
// the git blob id of any other (`oid`, sha1 over "blob <size>\0" + content). Sizes are compared first,
// so a changed folder is usually told apart without reading a file.

import { createHash } from "node:crypto";
import { listCommits, listFiles, type CommitOperation } from "@huggingface/hub";
import { hubError, hubStatus } from "./hub-error.js";
import { credentialsOf, type HubSettings } from "./settings.js";

interface RemoteEntry {
  size: number;
  oid?: string;
  lfs?: { oid: string; size: number };
}

/**
 * The branch's head commit when `operations` would change nothing on `repo@revision` (only additions
 * whose content the branch already has, no deletions); undefined when a commit is needed.
 * @throws ERR_CT_HUB
 */
export async function headIfUnchanged(
  repo: string,
  revision: string,
  operations: CommitOperation[],
  settings: HubSettings,
): Promise<string | undefined> {
  if (operations.some((op) => op.operation !== "addOrUpdate")) return undefined;
  const creds = credentialsOf(settings);
  const remote = new Map<string, RemoteEntry>();
  try {
    for await (const e of listFiles({ repo, revision, recursive: true, ...creds })) if (e.type === "file") remote.set(e.path, e);
  } catch (err) {
    if (hubStatus(err) === 404) return undefined;
    throw hubError(err, `listing ${repo}@${revision}`, settings);
  }
  const adds = operations as Extract<CommitOperation, { operation: "addOrUpdate" }>[];
  const blobs = adds.map((op) => ({ path: op.path, content: op.content as Blob, remote: remote.get(op.path) }));
  if (blobs.some((b) => !b.remote || (b.remote.lfs?.size ?? b.remote.size) !== b.content.size)) return undefined;
  for (const b of blobs) if (!(await sameContent(b.content, b.remote!))) return undefined;
  try {
    for await (const c of listCommits({ repo, revision, batchSize: 1, ...creds })) return c.oid;
  } catch (err) {
    throw hubError(err, `reading the head commit of ${repo}@${revision}`, settings);
  }
  return undefined;
}

async function sameContent(content: Blob, remote: RemoteEntry): Promise<boolean> {
  const hash = remote.lfs ? createHash("sha256") : createHash("sha1").update(`blob ${content.size}\0`);
  const reader = content.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
  }
  return hash.digest("hex") === (remote.lfs ? remote.lfs.oid : remote.oid);
}
