// `ctensors push`: uploads a model folder to a Hub repo in one commit. Before anything leaves the
// machine, every weight file is classified: encrypted CryptoTensors shards go; plaintext weights
// (plain or partly encrypted safetensors, .bin/.pt/.gguf/... files) are refused unless the caller
// allows them, and never into a repo that declares itself confidential. The commit also writes the
// repo's confidentiality declaration (cryptotensors.json) and the model card section, and removes
// remote weight files the folder no longer has (a stale shard would otherwise be served).

import { openAsBlob } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { commitIter, createBranch, createRepo, downloadFile, listFiles, repoExists, type CommitOperation } from "@huggingface/hub";
import { readHeader } from "../container/reader.js";
import { checkGraph } from "../onnx/encrypt.js";
import { ONNX_CONTAINER_SUFFIX, ONNX_MANIFEST_KEY } from "../onnx/model.js";
import { CryptoTensorsError, usageError } from "../errors.js";
import { releaseFileCheck } from "../release/push-check.js";
import { DECLARATION_FILE, parseDeclaration, serializeDeclaration, type Declaration } from "./declaration.js";
import { hubError, hubStatus } from "./hub-error.js";
import { updateModelCard } from "./model-card.js";
import { headIfUnchanged } from "./unchanged.js";
import { credentialsOf, type HubSettings } from "./settings.js";

/** Weight formats that cannot be CryptoTensors: always plaintext. */
const PLAIN_WEIGHT = /\.(bin|pt|pth|ckpt|h5|msgpack|gguf|pkl|npy|npz|onnx|onnx_data)$/i;
const SAFETENSORS = /\.safetensors$|\.onnx\.cryptotensors$/i;
const WEIGHT_INDEX = /\.safetensors\.index\.json$/i;

export interface PushOptions {
  dir: string;
  repo: string;
  /** Branch to commit to (created from main when missing). Default main. */
  revision?: string;
  private?: boolean;
  message?: string;
  allowPlaintext?: boolean;
  /** Push encrypted weights without a signed release manifest (model.sig). */
  allowUnsignedRelease?: boolean;
  settings: HubSettings;
  /** Phases and per-file hashing progress of the upload. */
  onEvent?: (e: PushEvent) => void;
  version: string;
}

export type PushEvent =
  | { kind: "checked"; files: number; bytes: number; encrypted: number; plaintext: string[] }
  | { kind: "phase"; phase: string }
  | { kind: "file"; path: string; progress: number; state: "hashing" | "uploading" | "error" };

export interface PushResult {
  repo: string;
  revision: string;
  commit: string;
  url: string;
  files: string[];
  deleted: string[];
  confidential: boolean;
  created: boolean;
  /** Nothing differed from the branch: no commit was made, `commit` is the branch's head. */
  unchanged: boolean;
}

interface LocalFile {
  path: string;
  abs: string;
  size: number;
}

async function walk(dir: string): Promise<LocalFile[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot read the folder ${dir}: ${err.code ?? err.message}`, { cause: err });
  });
  const out: LocalFile[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const abs = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    const path = relative(dir, abs).split("\\").join("/");
    // Git internals, caches and editor/OS litter stay home.
    if (path.split("/").some((p) => p === ".git" || p === ".cache" || p === "__pycache__") || e.name === ".DS_Store") continue;
    out.push({ path, abs, size: (await stat(abs)).size });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

interface Classified {
  encrypted: string[];
  plaintext: string[];
  signers: Set<string>;
  encryptionKeys: Set<string>;
  formats: Set<string>;
}

async function classify(files: LocalFile[]): Promise<Classified> {
  const c: Classified = { encrypted: [], plaintext: [], signers: new Set(), encryptionKeys: new Set(), formats: new Set() };
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const f of files) {
    if (/\.onnx$/i.test(f.path) && (await isStrippedGraph(f, byPath.get(f.path + ONNX_CONTAINER_SUFFIX)))) continue;
    if (PLAIN_WEIGHT.test(f.path)) {
      c.plaintext.push(f.path);
      continue;
    }
    if (!SAFETENSORS.test(f.path)) continue;
    const { header, crypto } = await readHeader(f.abs);
    const all = header.tensors.length;
    if (!crypto || crypto.encryption.size < all) {
      c.plaintext.push(f.path);
    } else {
      c.encrypted.push(f.path);
    }
    if (crypto) {
      if (crypto.keys.sign.kid) c.signers.add(crypto.keys.sign.kid);
      if (crypto.keys.enc.kid) c.encryptionKeys.add(crypto.keys.enc.kid);
      c.formats.add(`CryptoTensors v${crypto.keys.version}, ${crypto.keys.encAlg}`);
    }
  }
  return c;
}

/** An ONNX graph whose weights were moved into its encrypted container (ctensors encrypt). */
async function isStrippedGraph(graph: LocalFile, container: LocalFile | undefined): Promise<boolean> {
  if (!container) return false;
  const { header, crypto } = await readHeader(container.abs);
  if (!crypto) return false;
  const name = graph.path.slice(graph.path.lastIndexOf("/") + 1);
  checkGraph(new Uint8Array(await readFile(graph.abs)), name, header.metadata?.get(ONNX_MANIFEST_KEY)); // throws if it does not match
  return true;
}

async function remoteText(repo: string, path: string, revision: string, settings: HubSettings): Promise<string | undefined> {
  try {
    const blob = await downloadFile({ repo, path, revision, ...credentialsOf(settings) });
    return blob ? await blob.text() : undefined;
  } catch (err) {
    if (hubStatus(err) === 404) return undefined;
    throw hubError(err, `reading ${path} of ${repo}@${revision}`, settings);
  }
}

/** Pushes `dir` to `repo` in one commit. @throws ERR_CT_NOT_CONFIDENTIAL, ERR_CT_HUB, ERR_CT_FORMAT, ERR_CT_IO */
export async function pushModel(o: PushOptions): Promise<PushResult> {
  const { settings, repo } = o;
  const revision = o.revision ?? "main";
  const emit = o.onEvent ?? (() => {});
  if (settings.offline) throw new CryptoTensorsError("ERR_CT_HUB", "HF_HUB_OFFLINE is set: push needs the Hub");
  const { files, classified, release } = await checkFolder(o.dir, o.allowPlaintext ?? false, o.allowUnsignedRelease === true, emit);
  const created = await ensureRepoAndBranch(repo, revision, o.private ?? false, settings);
  const remote = created ? [] : await remoteFiles(repo, revision, settings);
  await refusePlaintextInConfidentialRepo(repo, revision, remote, classified, settings);
  const plan = await planCommit(o, revision, files, classified, remote, release);
  const pushed = [...new Set([...files.map((f) => f.path), "README.md", DECLARATION_FILE])].sort(); // the card is committed even when generated
  const summary = { repo, revision, files: pushed, deleted: plan.deleted, confidential: plan.declaration.confidential, created };
  // As `hf upload`: no empty commit when every file is already there with the same content.
  const head = created ? undefined : await headIfUnchanged(repo, revision, plan.operations, settings);
  if (head) return { ...summary, commit: head, url: `${settings.hubUrl}/${repo}/commit/${head}`, unchanged: true };
  const title = o.message ?? `Upload CryptoTensors model (${classified.encrypted.length} encrypted file(s))`;
  const commit = await commitOperations(repo, revision, plan.operations, title, settings, emit);
  return { ...summary, commit: commit.oid, url: commit.url, unchanged: false };
}

/**
 * Walks and classifies the folder; refuses an empty folder, one with our own declaration file in it,
 * plaintext weights unless allowed, and a folder with no weights at all.
 */
async function checkFolder(
  dir: string,
  allowPlaintext: boolean,
  allowUnsignedRelease: boolean,
  emit: (e: PushEvent) => void,
): Promise<{ files: LocalFile[]; classified: Classified; release: ReturnType<typeof releaseFileCheck> }> {
  const files = await walk(dir);
  if (!files.length) throw new CryptoTensorsError("ERR_CT_IO", `${dir} holds no files to push`);
  if (files.some((f) => f.path === DECLARATION_FILE)) {
    throw usageError(`${DECLARATION_FILE} in ${dir} is written by push itself: remove it from the folder`);
  }
  const c = await classify(files);
  emit({
    kind: "checked",
    files: files.length,
    bytes: files.reduce((s, f) => s + f.size, 0),
    encrypted: c.encrypted.length,
    plaintext: c.plaintext,
  });
  if (c.plaintext.length && !allowPlaintext) {
    throw new CryptoTensorsError(
      "ERR_CT_NOT_CONFIDENTIAL",
      `refusing to push plaintext weights: ${c.plaintext.join(", ")}. Encrypt them first (ctensors encrypt), or allow plaintext to publish them unencrypted`,
      { option: "allowPlaintext" },
    );
  }
  const release = releaseFileCheck(
    files.map((f) => f.path),
    c.plaintext.length === 0,
    allowUnsignedRelease,
  );
  if (!c.encrypted.length && !c.plaintext.length) {
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${dir} holds no weight files (.safetensors)`);
  }
  return { files, classified: c, release };
}

/** Creates the repo when missing and the branch when it is not main; returns whether the repo was created. */
async function ensureRepoAndBranch(repo: string, revision: string, isPrivate: boolean, settings: HubSettings): Promise<boolean> {
  const creds = credentialsOf(settings);
  let created = false;
  try {
    if (!(await repoExists({ repo, ...creds }))) {
      await createRepo({ repo, private: isPrivate, ...creds } as Parameters<typeof createRepo>[0]);
      created = true;
    }
  } catch (err) {
    if (hubStatus(err) !== 409) throw hubError(err, `creating ${repo}`, settings);
  }
  if (revision !== "main") {
    try {
      await createBranch({ repo, branch: revision, ...creds });
    } catch (err) {
      if (hubStatus(err) !== 409) throw hubError(err, `creating the branch ${revision} of ${repo}`, settings);
    }
  }
  return created;
}

/** A repo whose declaration says confidential never receives plaintext weights. */
async function refusePlaintextInConfidentialRepo(
  repo: string,
  revision: string,
  remote: string[],
  c: Classified,
  settings: HubSettings,
): Promise<void> {
  const remoteDecl = remote.includes(DECLARATION_FILE)
    ? parseDeclaration((await remoteText(repo, DECLARATION_FILE, revision, settings)) ?? "")
    : undefined;
  if (remoteDecl?.confidential && c.plaintext.length) {
    throw new CryptoTensorsError(
      "ERR_CT_NOT_CONFIDENTIAL",
      `${repo}@${revision} is declared confidential (${DECLARATION_FILE}); refusing to add plaintext weights: ${c.plaintext.join(", ")}`,
    );
  }
}

/**
 * The commit's operations: every local file, the model card with its CryptoTensors section, the
 * declaration, and the deletion of remote weight files the folder no longer has.
 */
async function planCommit(
  o: PushOptions,
  revision: string,
  files: LocalFile[],
  c: Classified,
  remote: string[],
  release: ReturnType<typeof releaseFileCheck>,
): Promise<{ operations: CommitOperation[]; deleted: string[]; declaration: Declaration }> {
  const { repo, settings } = o;
  const declaration: Declaration = {
    format: "cryptotensors",
    confidential: c.plaintext.length === 0,
    signers: [...c.signers].sort(),
    encryptionKeys: [...c.encryptionKeys].sort(),
    tool: `ctensors ${o.version}`,
  };
  const localCard = files.find((f) => f.path === "README.md");
  const baseCard = localCard
    ? await readFile(localCard.abs, "utf8")
    : remote.includes("README.md")
      ? await remoteText(repo, "README.md", revision, settings)
      : undefined;
  const card = updateModelCard(baseCard, {
    repo,
    signers: declaration.signers,
    encryptionKeys: declaration.encryptionKeys,
    formats: [...c.formats].sort(),
    encryptedFiles: c.encrypted.length,
    plaintextWeightFiles: c.plaintext,
    onnxWeights: c.encrypted.some((p) => p.endsWith(".onnx.cryptotensors")),
  });
  const local = new Set(files.map((f) => f.path));
  const deleted = remote.filter(
    (p) => !local.has(p) && (SAFETENSORS.test(p) || WEIGHT_INDEX.test(p) || PLAIN_WEIGHT.test(p) || release.stale(p)),
  );
  const operations: CommitOperation[] = [
    ...(await Promise.all(
      files
        .filter((f) => f.path !== "README.md")
        .map(async (f) => ({ operation: "addOrUpdate" as const, path: f.path, content: await openAsBlob(f.abs) })),
    )),
    { operation: "addOrUpdate", path: "README.md", content: new Blob([card]) },
    { operation: "addOrUpdate", path: DECLARATION_FILE, content: new Blob([serializeDeclaration(declaration)]) },
    ...deleted.map((path) => ({ operation: "delete" as const, path })),
  ];
  return { operations, deleted, declaration };
}

/** Uploads and commits, reporting phases and per-file progress; returns the commit. */
async function commitOperations(
  repo: string,
  revision: string,
  operations: CommitOperation[],
  title: string,
  settings: HubSettings,
  emit: (e: PushEvent) => void,
): Promise<{ oid: string; url: string }> {
  let result: { commit: { oid: string; url: string } } | undefined;
  try {
    const it = commitIter({ repo, branch: revision, operations, title, ...credentialsOf(settings) } as Parameters<typeof commitIter>[0]);
    for (;;) {
      const step = await it.next();
      if (step.done) {
        result = step.value as typeof result;
        break;
      }
      const ev = step.value as {
        event: string;
        phase?: string;
        path?: string;
        progress?: number;
        state?: "hashing" | "uploading" | "error";
      };
      if (ev.event === "phase") emit({ kind: "phase", phase: ev.phase ?? "" });
      else if (ev.event === "fileProgress")
        emit({ kind: "file", path: ev.path ?? "", progress: ev.progress ?? 0, state: ev.state ?? "hashing" });
    }
  } catch (err) {
    throw hubError(err, `uploading to ${repo}@${revision}`, settings);
  }
  if (!result?.commit?.oid)
    throw new CryptoTensorsError("ERR_CT_HUB", `the Hub at ${settings.hubUrl} did not return a commit for the upload to ${repo}`);
  return result.commit;
}

async function remoteFiles(repo: string, revision: string, settings: HubSettings): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of listFiles({ repo, revision, recursive: true, ...credentialsOf(settings) }))
      if (e.type === "file") out.push(e.path);
  } catch (err) {
    if (hubStatus(err) === 404) return [];
    throw hubError(err, `listing ${repo}@${revision}`, settings);
  }
  return out;
}
