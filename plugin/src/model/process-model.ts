// Applies a per-file operation to a single file or to a whole model folder.

import { mkdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { checkShardIndex, copyModelFile, isDirectory, listModelFiles, type ModelFiles } from "./folder.js";
import { readHeader } from "../container/reader.js";
import { RELEASE_MANIFEST_FILE } from "../release/oms.js";
import { mapIoErrors } from "../io/io-error.js";
import { withStagedFolder } from "../io/staged-folder.js";

export interface ModelProgress {
  file: string;
  index: number;
  count: number;
}

/**
 * Handles the ONNX models of a folder (encrypt: graph + external data → graph + container; decrypt: the
 * reverse), writing into `outRoot` (the staging folder). Returns the files it wrote and the input files
 * (relative) it consumed: those are neither processed by `perFile` nor copied.
 */
export type OnnxHandler = (
  inRoot: string,
  outRoot: string,
  files: ModelFiles,
) => Promise<{ written: string[]; consumed: Set<string>; files: number }>;

/**
 * Runs `perFile(in, out)` on `input` (file) or on every safetensors file of the folder `input`,
 * copying the other files; shard indexes are checked against the input first. The output appears
 * whole or not at all: a single file through perFile's own atomic write, a folder by being built in a
 * hidden staging folder renamed into place last (io/staged-folder.ts); an existing output folder is
 * replaced whole. On failure, nothing this call created is left behind.
 */
export async function processModel(
  input: string,
  output: string,
  perFile: (inFile: string, outFile: string, progress: ModelProgress) => Promise<void>,
  onnx?: OnnxHandler,
  /** Folders only: runs once every file is written, in the folder being staged (e.g. writes the release manifest). */
  finish?: (outRoot: string) => Promise<unknown>,
): Promise<{ files: number; copied: number }> {
  if (!(await isDirectory(input))) {
    return withParentOf(output, async () => {
      await perFile(input, output, { file: input, index: 0, count: 1 });
      return { files: 1, copied: 0 };
    });
  }
  const files = await listModelFiles(input);
  // Fail before any work when the shard index does not describe the shards (names are kept as they are).
  for (const rel of files.indexes) {
    await checkShardIndex(input, rel, async (shard) => (await readHeader(join(input, shard))).header.tensors.map((t) => t.name));
  }
  return withParentOf(
    output,
    () =>
      withStagedFolder(
        output,
        async (stage) => {
          const mkdirp = (d: string) => mapIoErrors(d, "creating", () => mkdir(d, { recursive: true }));
          const consumed = new Set<string>();
          let onnxFiles = 0;
          if (onnx) {
            for (const rel of files.onnx) await mkdirp(dirname(join(stage, rel)));
            const r = await onnx(input, stage, files);
            r.consumed.forEach((c) => consumed.add(c));
            onnxFiles = r.files;
          }
          const safetensors = files.safetensors.filter((f) => !consumed.has(f));
          for (const [i, rel] of safetensors.entries()) {
            await mkdirp(dirname(join(stage, rel)));
            await perFile(join(input, rel), join(stage, rel), { file: rel, index: i, count: safetensors.length });
          }
          // The input's release manifest never describes the output (a new release is written by `finish`).
          const others = [...files.indexes, ...files.onnx, ...files.others].filter((f) => !consumed.has(f) && f !== RELEASE_MANIFEST_FILE);
          for (const rel of others) {
            await mkdirp(dirname(join(stage, rel)));
            await mapIoErrors(join(output, rel), "writing", () => copyModelFile(input, stage, rel));
          }
          return { files: safetensors.length + onnxFiles, copied: others.length };
        },
        finish,
      ), // in the staged folder once every file has its name: the manifest appears with the release, or not at all
  );
}

/** Runs `body` after creating the parent folders of `output` that are missing; removes them again if `body` fails. */
async function withParentOf<T>(output: string, body: () => Promise<T>): Promise<T> {
  const parent = dirname(resolve(output));
  const first = await mapIoErrors(parent, "creating", () => mkdir(parent, { recursive: true }));
  try {
    return await body();
  } catch (err) {
    if (first !== undefined) await rm(first, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}

/** The safetensors files of `input` (a file or a model folder), as absolute-or-given paths. */
export async function modelSafetensors(input: string): Promise<string[]> {
  if (!(await isDirectory(input))) return [input];
  return (await listModelFiles(input)).safetensors.map((rel) => join(input, rel));
}
