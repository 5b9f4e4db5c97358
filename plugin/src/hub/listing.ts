// The file listing of a commit (the Hub's paginated tree API), bounded so that a hostile or broken Hub
// cannot exhaust memory: at most MAX_LIST_PAGES pages (`Link: next` is followed no further), at most
// MAX_LIST_ENTRIES entries, and no page body beyond MAX_PAGE_BYTES. Going past a bound is ERR_CT_HUB.

import { listFiles } from "@huggingface/hub";
import { CryptoTensorsError } from "../errors.js";
import type { HubFile } from "./download.js";
import { hubError } from "./hub-error.js";
import { credentialsOf, type HubSettings } from "./settings.js";

/** Pages of one listing (the Hub sends 1,000 entries a page: a million entries). */
export const MAX_LIST_PAGES = 1000;
/** Files and folders of one commit. */
export const MAX_LIST_ENTRIES = 100_000;
/** Bytes of one page's body. */
export const MAX_PAGE_BYTES = 32 * 1024 * 1024;

/** The files of a commit, as the Hub lists them. @throws ERR_CT_HUB */
export async function listCommitFiles(repo: string, commit: string, settings: HubSettings): Promise<HubFile[]> {
  const what = `the file listing of ${repo}@${commit.slice(0, 12)}`;
  const files: HubFile[] = [];
  let entries = 0;
  try {
    for await (const entry of listFiles({
      repo,
      revision: commit,
      recursive: true,
      fetch: boundedPages(what),
      ...credentialsOf(settings),
    })) {
      if (++entries > MAX_LIST_ENTRIES) {
        throw new CryptoTensorsError(
          "ERR_CT_HUB",
          `${what} has more than ${MAX_LIST_ENTRIES} entries; refusing it (a broken or hostile Hub?)`,
        );
      }
      if (entry.type !== "file") continue;
      if (typeof entry.oid !== "string")
        throw new CryptoTensorsError("ERR_CT_HUB", `the Hub listed ${JSON.stringify(entry.path)} without an object id`);
      if (
        !Number.isSafeInteger(entry.size) ||
        entry.size < 0 ||
        (entry.lfs && (!Number.isSafeInteger(entry.lfs.size) || entry.lfs.size < 0))
      ) {
        throw new CryptoTensorsError("ERR_CT_HUB", `the Hub listed ${JSON.stringify(entry.path)} with an invalid size`);
      }
      files.push({
        path: entry.path,
        size: entry.size,
        oid: entry.oid,
        ...(entry.lfs ? { lfs: { oid: entry.lfs.oid, size: entry.lfs.size } } : {}),
      });
    }
  } catch (err) {
    throw hubError(err, `listing the files of ${repo}@${commit.slice(0, 12)}`, settings);
  }
  refuseConflicts(files, what);
  return files;
}

/** A `fetch` for one listing that refuses a page past MAX_LIST_PAGES and a body past MAX_PAGE_BYTES. */
function boundedPages(what: string): typeof fetch {
  let pages = 0;
  return async (input, init) => {
    if (++pages > MAX_LIST_PAGES) {
      throw new CryptoTensorsError(
        "ERR_CT_HUB",
        `${what} goes on for more than ${MAX_LIST_PAGES} pages; refusing it (a broken or hostile Hub?)`,
      );
    }
    const res = await fetch(input, init);
    if (!res.body) return res;
    const declared = Number(res.headers.get("content-length"));
    const tooLarge = () =>
      new CryptoTensorsError(
        "ERR_CT_HUB",
        `a page of ${what} is larger than ${MAX_PAGE_BYTES} bytes; refusing it (a broken or hostile Hub?)`,
      );
    if (Number.isFinite(declared) && declared > MAX_PAGE_BYTES) {
      await res.body.cancel();
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let n = 0;
    const reader = res.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      n += r.value.length;
      if (n > MAX_PAGE_BYTES) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(r.value);
    }
    return new Response(Buffer.concat(chunks), { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** A hostile listing could name a path twice, or `a` and `a/b`: neither fits in a snapshot folder. */
function refuseConflicts(files: HubFile[], what: string): void {
  const paths = new Set<string>();
  for (const f of files) {
    if (paths.has(f.path)) throw new CryptoTensorsError("ERR_CT_HUB", `${what} names ${JSON.stringify(f.path)} twice; refusing it`);
    paths.add(f.path);
  }
  for (const f of files) {
    const parts = f.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join("/");
      if (paths.has(folder)) {
        throw new CryptoTensorsError(
          "ERR_CT_HUB",
          `${what} names ${JSON.stringify(folder)} both as a file and as a folder (of ${JSON.stringify(f.path)}); refusing it`,
        );
      }
    }
  }
}
