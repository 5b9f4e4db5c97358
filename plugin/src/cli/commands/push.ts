// ctensors push DIR REPO [--revision BRANCH] [--private] [--message MSG] [--allow-plaintext] [hub options]

import { readFileSync } from "node:fs";
import { pushModel } from "../../hub/push.js";
import { parseRepoRef } from "../../hub/repo-ref.js";
import { usageError } from "../../errors.js";
import { printable, toJson } from "../../format/printable.js";
import { defineCommand, expectPositionals } from "../command.js";
import { HUB_OPTIONS, HUB_USAGE, hubSettingsFromArgs } from "../hub-args.js";
import { createPushProgress } from "../push-progress.js";

function version(): string {
  return (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

export const push = defineCommand({
  summary: "upload an encrypted model folder to a Hub repo (creates the repo; refuses plaintext weights)",
  usage:
    "ctensors push DIR REPO [--revision BRANCH] [--private] [--message MSG] [--allow-plaintext] [--allow-unsigned-release] [--hub-url URL] [--token T] [--json]\n" +
    "  REPO is org/name. Weight files must be CryptoTensors with every tensor encrypted unless --allow-plaintext.\n" +
    "  Writes cryptotensors.json (the confidentiality declaration) and a model card section; config and tokenizer\n" +
    "  files stay plaintext. Remote weight files the folder no longer has are deleted in the same commit.\n" +
    HUB_USAGE,
  options: {
    revision: { type: "string" },
    private: { type: "boolean", default: false },
    message: { type: "string" },
    "allow-plaintext": { type: "boolean", default: false },
    "allow-unsigned-release": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    ...HUB_OPTIONS,
  },
  async run({ values, positionals, io }) {
    const [dir, repoArg] = expectPositionals(positionals, ["DIR", "REPO"]);
    const ref = parseRepoRef(repoArg);
    if (ref.explicitRevision) throw usageError(`give the branch with --revision, not in REPO (${repoArg})`);
    const settings = hubSettingsFromArgs(values);
    const progress = createPushProgress({
      dir,
      bars: !io.quiet && process.stderr.isTTY === true,
      say: (line) => {
        if (!io.quiet) io.err(line);
      },
    });
    let result;
    try {
      result = await pushModel({
        dir,
        repo: ref.repo,
        revision: values.revision,
        private: values.private,
        message: values.message,
        allowPlaintext: values["allow-plaintext"],
        allowUnsignedRelease: values["allow-unsigned-release"],
        settings,
        version: version(),
        onEvent: (e) => progress.onEvent(e),
      });
    } finally {
      progress.stop();
    }
    if (values.json) {
      io.out(toJson(result, 2));
    } else {
      if (result.unchanged)
        io.out(
          `nothing to push: ${settings.hubUrl}/${result.repo} (${result.revision} = ${result.commit}) already has these ${result.files.length} files; no commit made`,
        );
      else
        io.out(
          `pushed ${result.files.length} files to ${settings.hubUrl}/${result.repo} (${result.revision} = ${result.commit})${result.created ? ", new repo" : ""}`,
        );
      if (result.deleted.length) io.out(`deleted stale weight files: ${printable(result.deleted.join(", "))}`);
      io.out(
        result.confidential
          ? "declared confidential: every weight file is encrypted"
          : "NOT confidential: plaintext weights were pushed (--allow-plaintext)",
      );
    }
    return 0;
  },
});
