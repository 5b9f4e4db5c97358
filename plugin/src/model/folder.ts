// Hugging Face model folders: every `*.safetensors` file (shards included) is processed, the shard
// index (`*.safetensors.index.json`) is checked against the shards and kept valid, and every other
// file (config, tokenizer, README…) is copied unchanged.

import { copyFile, mkdir, readdir, readFile, stat } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { CryptoTensorsError, usageError } from "../errors.js";
import { quote } from "../format/printable.js";
import { notRegularFile } from "../io/regular-file.js";

/** Folders never copied from a model folder. */
const SKIP_DIRS = new Set([".git", ".cache", ".huggingface"]);

/**
 * Bounds of a model folder's walk. Model folders are flat, or hold a few subfolders (`onnx/`, a
 * diffusers pipeline's `unet/`, `text_encoder/`): files lie at most MAX_MODEL_DEPTH folders below the
 * root. Past either bound the walk stops with ERR_CT_USAGE instead of walking, say, the whole file
 * system when `/` is given as a model folder.
 */
export const MAX_MODEL_DEPTH = 3;
/** Folder entries (files and folders, skipped ones included) the walk looks at, at most. */
export const MAX_MODEL_ENTRIES = 10_000;

export interface ModelFiles {
  /** Paths relative to the root. */
  /** `*.safetensors` and CryptoTensors containers of ONNX weights (`*.onnx.cryptotensors`). */
  safetensors: string[];
  indexes: string[];
  /** ONNX graphs (`*.onnx`). */
  onnx: string[];
  others: string[];
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    throw new CryptoTensorsError("ERR_CT_IO", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
}

function isModelFileName(name: string): boolean {
  return /\.(safetensors|onnx|onnx\.cryptotensors|safetensors\.index\.json)$/.test(name);
}

/**
 * The files of a model folder.
 * @throws ERR_CT_IO for a model file that is not a regular file (a FIFO…); ERR_CT_USAGE for a folder
 *   nested deeper than MAX_MODEL_DEPTH or holding more than MAX_MODEL_ENTRIES entries (not a model folder)
 */
export async function listModelFiles(root: string): Promise<ModelFiles> {
  const out: ModelFiles = { safetensors: [], indexes: [], onnx: [], others: [] };
  let seen = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      throw new CryptoTensorsError("ERR_CT_IO", `cannot list ${dir}: ${err.code ?? err.message}`, { cause: err });
    });
    seen += entries.length;
    if (seen > MAX_MODEL_ENTRIES)
      throw usageError(
        `${root} holds more than ${MAX_MODEL_ENTRIES} files and folders: not a model folder (model folders are flat, or hold a few subfolders such as onnx/)`,
      );
    for (const entry of entries) {
      const full = join(dir, entry.name);
      const rel = relative(root, full);
      if (entry.isDirectory()) {
        if (SKIP_DIRS.has(entry.name)) continue;
        if (depth >= MAX_MODEL_DEPTH)
          throw usageError(
            `${root} is not a model folder: ${rel} lies more than ${MAX_MODEL_DEPTH} folders deep (model folders are flat, or hold a few subfolders such as onnx/)`,
          );
        await walk(full, depth + 1);
      } else {
        // Regular files and symlinks to them count (the HF cache's snapshot folders are made of symlinks).
        // A FIFO, socket or device under a model file's name is refused: reading it would block forever.
        const target = entry.isFile() ? null : await stat(full).catch(() => null);
        if (!entry.isFile() && !target?.isFile()) {
          if (target && !target.isDirectory() && isModelFileName(entry.name)) throw notRegularFile(full, target);
          continue; // a broken symlink, a symlink to a folder, a stray FIFO that is no model file: not part of the model
        }
        if (entry.name.endsWith(".safetensors") || entry.name.endsWith(".onnx.cryptotensors")) out.safetensors.push(rel);
        else if (entry.name.endsWith(".onnx")) out.onnx.push(rel);
        else if (entry.name.endsWith(".safetensors.index.json")) out.indexes.push(rel);
        else out.others.push(rel);
      }
    }
  };
  await walk(root, 0);
  for (const list of Object.values(out)) list.sort();
  return out;
}

/**
 * Checks a shard index against the tensor names found in its shards: every weight_map entry must name
 * an existing shard that holds that tensor, and every tensor of those shards must be listed.
 * @throws ERR_CT_FORMAT
 */
export async function checkShardIndex(root: string, indexPath: string, namesOf: (shard: string) => Promise<string[]>): Promise<void> {
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(await readFile(join(root, indexPath), "utf8"));
  } catch (err) {
    throw new CryptoTensorsError("ERR_CT_FORMAT", `${indexPath} is not valid JSON`, { cause: err });
  }
  const map = index.weight_map;
  if (!map || typeof map !== "object") throw new CryptoTensorsError("ERR_CT_FORMAT", `${indexPath} has no weight_map`);
  const base = dirname(indexPath);
  const byShard = new Map<string, Set<string>>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (!byShard.has(shard)) byShard.set(shard, new Set());
    byShard.get(shard)!.add(tensor);
  }
  for (const [shard, listed] of byShard) {
    const names = await namesOf(join(base, shard)).catch((err) => {
      throw new CryptoTensorsError("ERR_CT_FORMAT", `${indexPath} names shard ${shard}, which cannot be read`, { cause: err });
    });
    const actual = new Set(names);
    const missing = [...listed].filter((n) => !actual.has(n));
    const unlisted = names.filter((n) => !listed.has(n));
    if (missing.length || unlisted.length) {
      throw new CryptoTensorsError(
        "ERR_CT_FORMAT",
        `${indexPath} does not match ${shard}: ${missing.length} listed tensor(s) missing, ${unlisted.length} unlisted (e.g. ${quote(missing[0] ?? unlisted[0])})`,
      );
    }
  }
}

export async function copyModelFile(inRoot: string, outRoot: string, rel: string): Promise<void> {
  const dst = join(outRoot, rel);
  await mkdir(dirname(dst), { recursive: true });
  await copyFile(join(inRoot, rel), dst);
}

/** Refuses to process a path into itself or overwrite existing output unless forced. */
export async function checkOutput(input: string, output: string, force: boolean): Promise<void> {
  if (resolve(input) === resolve(output)) throw usageError("input and output must differ");
  let exists = false;
  try {
    const s = await stat(output);
    exists = s.isDirectory() ? (await readdir(output)).length > 0 : true;
  } catch {
    exists = false;
  }
  if (exists && !force) throw usageError(`${output} already exists (overwriting it must be asked for)`, "force");
}
