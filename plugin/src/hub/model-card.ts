// The model card section `ctensors push` writes: that the weights are CryptoTensors-encrypted, which
// keys, and how to install and load them. An existing card keeps its text; only the section between
// the ctensors markers is replaced. The YAML front matter is edited with a YAML library (comments,
// order and the user's formatting kept): the `cryptotensors` and `encrypted` tags are added, and
// `library_name: ctensors` when the card names no library.

import { isMap, isSeq, parseDocument, YAMLSeq } from "yaml";
import { CryptoTensorsError } from "../errors.js";

export interface CardFacts {
  repo: string;
  signers: string[];
  encryptionKeys: string[];
  /** e.g. "CryptoTensors v2, AES-256-GCM" */
  formats: string[];
  encryptedFiles: number;
  plaintextWeightFiles: string[];
  /** Whether the repo has encrypted ONNX weights (transformers.js usage is shown only then). */
  onnxWeights?: boolean;
}

const BEGIN = "<!-- ctensors:begin (written by `ctensors push`; edits between these markers are replaced) -->";
const END = "<!-- ctensors:end -->";
const TAGS = ["cryptotensors", "encrypted"];
const LIBRARY = "ctensors";

function list(values: string[]): string {
  return values.length ? values.map((v) => `\`${v}\``).join(", ") : "(none named)";
}

export function cardSection(f: CardFacts): string {
  const lines = [
    BEGIN,
    "## Encrypted weights (CryptoTensors)",
    "",
    "The weights in this repository are **encrypted and signed** with the CryptoTensors format",
    "(safetensors with per-tensor encryption and an Ed25519-signed header). Without the decryption key",
    "they are ciphertext. `config.json` and the tokenizer files are plaintext, so the Hub, vLLM and",
    "transformers can read them.",
    "",
    `- Format: ${f.formats.join("; ") || "CryptoTensors"}; ${f.encryptedFiles} encrypted weight file(s)`,
    `- Signer key id (claimed by the files; check it against the publisher's public key): ${list(f.signers)}`,
    `- Encryption (master) key id: ${list(f.encryptionKeys)}`,
    ...(f.plaintextWeightFiles.length
      ? [`- **Plaintext weight files** (pushed with --allow-plaintext): ${list(f.plaintextWeightFiles)}`]
      : []),
    "",
    "### Install",
    "",
    "The `ctensors` command line (Node.js 20+) and its Python package (`pip install './python-shim[transformers]'`",
    "from the ctensors repository). `ctensors keygen` writes the keys as `enc.jwk` (the decryption key, secret),",
    "`sign.jwk` (the publisher's signing key, secret) and `sign.pub.jwk` (the public key to trust).",
    "",
    "### Loading",
    "",
    "Run the ctensors sidecar with the decryption key and the publisher's public signing key; it",
    "downloads, verifies and decrypts in memory (plaintext never touches disk):",
    "",
    "```sh",
    `ctensors serve --key enc.jwk --trust sign.pub.jwk      # HF_ENDPOINT / HF_TOKEN as usual`,
    "```",
    "",
    "- transformers (Python): `from ctensors.transformers import from_pretrained; model = from_pretrained(" + JSON.stringify(f.repo) + ")`",
    "- PyTorch tensors: `ctensors.load_file(" + JSON.stringify(f.repo) + ")`",
    `- vLLM: \`ctensors vllm --key enc.jwk --trust sign.pub.jwk -- ${f.repo} --load-format cryptotensors\``,
    ...(f.onnxWeights
      ? [
          `- transformers.js: \`await installCryptoTensors(env, { key, trust })\` (from \`ctensors/transformers\`), then \`pipeline(task, ${JSON.stringify(f.repo)})\``,
        ]
      : []),
    "",
    "Loading these files with a plain safetensors loader gives ciphertext, not weights, and plain",
    "`transformers` refuses the folder (its `config.json` says so); ctensors refuses files whose signature",
    "does not verify against a trusted key.",
    END,
  ];
  return lines.join("\n");
}

/** `frontMatter` (YAML) with the ctensors tags and library_name in place; everything else kept as written. */
function withCardMetadata(frontMatter: string): string {
  const doc = parseDocument(frontMatter);
  if (doc.errors.length) {
    throw new CryptoTensorsError(
      "ERR_CT_FORMAT",
      `the model card's front matter is not valid YAML: ${doc.errors[0]!.message.split("\n")[0]}`,
    );
  }
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  if (!isMap(doc.contents)) throw new CryptoTensorsError("ERR_CT_FORMAT", "the model card's front matter is not a YAML mapping");
  const node = doc.get("tags", true);
  let seq: YAMLSeq;
  if (isSeq(node)) {
    seq = node;
  } else {
    const value = doc.get("tags"); // absent, empty (`tags:`), or a single tag written as a string
    seq = value === undefined || value === null ? new YAMLSeq() : (doc.createNode([value]) as YAMLSeq);
    doc.set("tags", seq);
  }
  seq.flow = false; // one tag per line, as the Hub writes them
  const have = new Set(seq.items.map((item) => String(doc.createNode(item).toJSON())));
  for (const tag of TAGS) if (!have.has(tag)) seq.add(doc.createNode(tag));
  if (!doc.has("library_name")) doc.set("library_name", LIBRARY);
  // Lists under a key are written as the card already writes them; huggingface_hub (PyYAML) writes
  // them unindented (`tags:\n- llama`), so a new card does too.
  const indentSeq = /^[ \t]+-[ \t]/m.test(frontMatter) && !/^-[ \t]/m.test(frontMatter);
  return doc.toString({ lineWidth: 0, indentSeq }).replace(/\n+$/, "");
}

/** The card text: `existing` (or a new card) with the ctensors section and metadata in place. @throws ERR_CT_FORMAT */
export function updateModelCard(existing: string | undefined, facts: CardFacts): string {
  let body = existing ?? `# ${facts.repo.split("/")[1]}\n`;
  let front = "";
  const fm = /^---\r?\n(?:([\s\S]*?)\r?\n)?---[ \t]*(?:\r?\n|$)/.exec(body);
  if (fm) {
    front = fm[1] ?? "";
    body = body.slice(fm[0].length);
  }
  const section = cardSection(facts);
  const start = body.indexOf(BEGIN.slice(0, 22));
  const end = body.indexOf(END);
  if (start >= 0 && end > start) body = body.slice(0, start) + section + body.slice(end + END.length);
  else body = `${body.replace(/\s*$/, "")}\n\n${section}\n`;
  return `---\n${withCardMetadata(front)}\n---\n${body.replace(/^\n+/, "")}`;
}
