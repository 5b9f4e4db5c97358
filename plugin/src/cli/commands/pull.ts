// ctensors pull REPO[@REV] [--revision REV] [--cache-dir DIR] [--include GLOB...] [hub options]
// Downloads into the standard HF cache (shared with the Python and JS Hub clients) and prints the
// snapshot folder. Encrypted files stay encrypted at rest.

import picomatch from "picomatch";
import { fetchSnapshot } from "../../hub/snapshot.js";
import { parseRepoRef, withRevision } from "../../hub/repo-ref.js";
import { defineCommand } from "../command.js";
import { HUB_OPTIONS, hubSettingsFromArgs } from "../hub-args.js";
import { createProgress } from "../progress.js";
import { usageError } from "../../errors.js";

export const pull = defineCommand({
  summary: "download a Hub model (encrypted at rest) into the HF cache and print its snapshot folder",
  usage: "ctensors pull REPO[@REV] [options]",
  description:
    "REV: a branch, tag or commit sha, as REPO@REV or --revision REV (as `hf download`). Downloads go into the\n" +
    "standard Hugging Face cache, are checked against the Hub's sizes and hashes, and an interrupted one resumes.",
  options: {
    revision: { type: "string", value: "REV", description: "the branch, tag or commit to download", defaultText: "main" },
    include: {
      type: "string",
      multiple: true,
      value: "GLOB",
      description: "download only the files matching GLOB",
      defaultText: "every file",
    },
    json: { type: "boolean", default: false, description: "print {repo, revision, commit, path, files, downloaded} as JSON" },
    ...HUB_OPTIONS,
  },
  examples: [
    "ctensors pull org/my-model-encrypted",
    "ctensors pull org/my-model-encrypted --revision v1.0 --include '*.safetensors' --include config.json",
  ],
  async run({ values, positionals, io }) {
    if (positionals.length !== 1) throw usageError("expected REPO[@REV]");
    const ref = withRevision(parseRepoRef(positionals[0]!), values.revision);
    const settings = hubSettingsFromArgs(values);
    const globs = values.include ?? [];
    const include = globs.length ? picomatch(globs, { dot: true }) : undefined;
    const progress = createProgress(!io.quiet);
    let started = false;
    const snap = await fetchSnapshot(ref, settings, {
      include,
      onProgress: (p) => {
        if (p.totalBytes === 0) return;
        if (!started) {
          progress.start(`pull ${ref.repo}`, p.totalBytes);
          started = true;
        }
        progress.update(p.doneBytes);
      },
    });
    progress.stop();
    if (values.json) {
      io.out(JSON.stringify(snap, null, 2));
    } else {
      if (!io.quiet)
        io.err(`${ref.repo}@${ref.revision} = ${snap.commit}: ${snap.files.length} files, ${snap.downloaded.length} downloaded`);
      io.out(snap.path);
    }
    return 0;
  },
});
