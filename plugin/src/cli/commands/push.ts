// ctensors push DIR REPO [--revision BRANCH] [--private] [--message MSG] [--allow-plaintext] [hub options]

import { pushModel } from "../../hub/push.js";
import { parseRepoRef } from "../../hub/repo-ref.js";
import { usageError } from "../../errors.js";
import { printable, toJson } from "../../format/printable.js";
import { defineCommand, expectPositionals } from "../command.js";
import { HUB_OPTIONS, hubSettingsFromArgs } from "../hub-args.js";
import { createPushProgress } from "../push-progress.js";
import { VERSION } from "../../version.js";

export const push = defineCommand({
  summary: "upload an encrypted model folder to a Hub repo (creates the repo; refuses plaintext weights)",
  usage: "ctensors push DIR REPO [options]",
  description:
    "REPO is org/name. Weight files must be CryptoTensors with every tensor encrypted unless --allow-plaintext.\n" +
    "One commit writes the folder, cryptotensors.json (the confidentiality declaration) and a model card section;\n" +
    "config and tokenizer files stay plaintext. Remote weight files the folder no longer has are deleted in the\n" +
    "same commit. An unchanged folder makes no commit.",
  options: {
    revision: {
      type: "string",
      value: "BRANCH",
      description: "the branch to commit to (created from main when missing)",
      defaultText: "main",
    },
    private: { type: "boolean", default: false, description: "create the repo private (an existing repo keeps its visibility)" },
    message: {
      type: "string",
      value: "MSG",
      description: "the commit message",
      defaultText: "Upload CryptoTensors model (N encrypted file(s))",
    },
    "allow-plaintext": {
      type: "boolean",
      default: false,
      description: "also push plaintext weights (never to a repo declared confidential)",
    },
    "allow-unsigned-release": {
      type: "boolean",
      default: false,
      description: "push a confidential folder without a signed release manifest (model.sig)",
    },
    json: {
      type: "boolean",
      default: false,
      description: "print {repo, revision, commit, url, files, deleted, confidential, created, unchanged} as JSON",
    },
    ...HUB_OPTIONS,
  },
  examples: [
    "ctensors push ./my-model-encrypted org/my-model-encrypted",
    "HF_ENDPOINT=http://127.0.0.1:8080 ctensors push ./my-model-encrypted org/my-model-encrypted --private --message 'release 2'",
  ],
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
        version: VERSION,
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
