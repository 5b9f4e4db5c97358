// Applies a per-file operation to a single file or to a whole model folder.

import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { checkShardIndex, copyModelFile, isDirectory, listModelFiles, type ModelFiles } from "./folder.js";
import { readHeader } from "../container/reader.js";
import { RELEASE_MANIFEST_FILE } from "../release/oms.js";

export interface ModelProgress {
  file: string;
  index: number;
  count: number;
}

/**
 * Handles the ONNX models of a folder (encrypt: graph + external data → graph + container; decrypt: the
 * reverse). Returns the files it wrote and the input files (relative) it consumed: those are neither
 * processed by `perFile` nor copied.
 */
export type OnnxHandler = (inRoot: string, outRoot: string, files: ModelFiles) => Promise<{ written: string[]; consumed: Set<string>; files: number }>;

/**
 * Runs `perFile(in, out)` on `input` (file) or on every safetensors file of the folder `input`,
 * copying the other files; shard indexes are checked against the output. On failure, every file and
 * directory this call created is removed again: a half-processed model folder is never left behind.
 */
export async function processModel(
  input: string,
  output: string,
  perFile: (inFile: string, outFile: string, progress: ModelProgress) => Promise<void>,
  onnx?: OnnxHandler,
  /** Folders only: runs once every file is written (e.g. writes the release manifest); returns the paths it wrote. */
  finish?: (outRoot: string) => Promise<string[]>,
): Promise<{ files: number; copied: number }> {
  const madeDirs: string[] = [];
  const written: string[] = [];
  const mkdirp = async (d: string) => {
    const first = await mkdir(d, { recursive: true });
    if (first !== undefined) madeDirs.push(first);
  };
  try {
    if (!(await isDirectory(input))) {
      await mkdirp(dirname(output));
      await perFile(input, output, { file: input, index: 0, count: 1 });
      return { files: 1, copied: 0 };
    }
    const files = await listModelFiles(input);
    // Fail before any work when the shard index does not describe the shards (names are kept as they are).
    for (const rel of files.indexes) {
      await checkShardIndex(input, rel, async (shard) => (await readHeader(join(input, shard))).header.tensors.map((t) => t.name));
    }
    await mkdirp(output);
    const consumed = new Set<string>();
    let onnxFiles = 0;
    if (onnx) {
      for (const rel of files.onnx) await mkdirp(dirname(join(output, rel)));
      const r = await onnx(input, output, files);
      written.push(...r.written);
      r.consumed.forEach((c) => consumed.add(c));
      onnxFiles = r.files;
    }
    const safetensors = files.safetensors.filter((f) => !consumed.has(f));
    for (const [i, rel] of safetensors.entries()) {
      await mkdirp(dirname(join(output, rel)));
      await perFile(join(input, rel), join(output, rel), { file: rel, index: i, count: safetensors.length });
      written.push(join(output, rel));
    }
    // The input's release manifest never describes the output (a new release is written by `finish`).
    const others = [...files.indexes, ...files.onnx, ...files.others].filter((f) => !consumed.has(f) && f !== RELEASE_MANIFEST_FILE);
    for (const rel of others) {
      await mkdirp(dirname(join(output, rel)));
      await copyModelFile(input, output, rel);
      written.push(join(output, rel));
    }
    if (finish) written.push(...(await finish(output)));
    return { files: safetensors.length + onnxFiles, copied: others.length };
  } catch (err) {
    for (const f of written) await rm(f, { force: true }).catch(() => {});
    for (const d of madeDirs.reverse()) await rm(d, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** The safetensors files of `input` (a file or a model folder), as absolute-or-given paths. */
export async function modelSafetensors(input: string): Promise<string[]> {
  if (!(await isDirectory(input))) return [input];
  return (await listModelFiles(input)).safetensors.map((rel) => join(input, rel));
}
