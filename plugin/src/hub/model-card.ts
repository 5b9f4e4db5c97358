// The model card section `ctensors push` writes: that the weights are CryptoTensors-encrypted, which
// keys, and how to load them. An existing card keeps its text; only the section between the
// ctensors markers is replaced, and the `cryptotensors` tag is added to its front matter.

export interface CardFacts {
  repo: string;
  signers: string[];
  encryptionKeys: string[];
  /** e.g. "CryptoTensors v2, AES-256-GCM" */
  formats: string[];
  encryptedFiles: number;
  plaintextWeightFiles: string[];
}

const BEGIN = "<!-- ctensors:begin (written by `ctensors push`; edits between these markers are replaced) -->";
const END = "<!-- ctensors:end -->";
const TAGS = ["cryptotensors", "encrypted"];

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
    ...(f.plaintextWeightFiles.length ? [`- **Plaintext weight files** (pushed with --allow-plaintext): ${list(f.plaintextWeightFiles)}`] : []),
    "",
    "### Loading",
    "",
    "Run the ctensors sidecar with the decryption key and the publisher's public signing key; it",
    "downloads, verifies and decrypts in memory (plaintext never touches disk):",
    "",
    "```sh",
    `ctensors serve --key enc.jwk --trust signer.pub.jwk      # HF_ENDPOINT / HF_TOKEN as usual`,
    "```",
    "",
    "- transformers (Python): `from ctensors.transformers import from_pretrained; model = from_pretrained(" + JSON.stringify(f.repo) + ")`",
    "- PyTorch tensors: `ctensors.load_file(" + JSON.stringify(f.repo) + ")`",
    `- vLLM: \`ctensors vllm --key enc.jwk --trust signer.pub.jwk -- ${f.repo} --load-format cryptotensors\``,
    `- transformers.js: \`await installCryptoTensors(env, { key, trust })\` (from \`ctensors/transformers\`), then \`pipeline(task, ${JSON.stringify(f.repo)})\``,
    "",
    "Loading these files with a plain safetensors loader gives ciphertext, not weights; ctensors refuses",
    "files whose signature does not verify against a trusted key.",
    END,
  ];
  return lines.join("\n");
}

function withTags(frontMatter: string): string {
  const lines = frontMatter.split("\n");
  const missing = TAGS.filter((t) => !lines.some((l) => l.trim() === `- ${t}`));
  if (!missing.length) return frontMatter;
  const tagLine = lines.findIndex((l) => /^tags:\s*$/.test(l));
  if (tagLine >= 0) {
    lines.splice(tagLine + 1, 0, ...missing.map((t) => `- ${t}`));
    return lines.join("\n");
  }
  const inline = lines.findIndex((l) => /^tags:\s*\[.*\]\s*$/.test(l));
  if (inline >= 0) {
    const items = lines[inline]!.replace(/^tags:\s*\[/, "").replace(/\]\s*$/, "").split(",").map((s) => s.trim()).filter(Boolean);
    lines.splice(inline, 1, "tags:", ...[...items, ...missing].map((t) => `- ${t}`));
    return lines.join("\n");
  }
  return [...lines, "tags:", ...missing.map((t) => `- ${t}`)].join("\n");
}

/** The card text: `existing` (or a new card) with the ctensors section and tags in place. */
export function updateModelCard(existing: string | undefined, facts: CardFacts): string {
  let body = existing ?? `# ${facts.repo.split("/")[1]}\n`;
  let front = "";
  const fm = /^---\n([\s\S]*?)\n---\n?/.exec(body);
  if (fm) {
    front = fm[1]!;
    body = body.slice(fm[0].length);
  }
  const section = cardSection(facts);
  const start = body.indexOf(BEGIN.slice(0, 22));
  const end = body.indexOf(END);
  if (start >= 0 && end > start) body = body.slice(0, start) + section + body.slice(end + END.length);
  else body = `${body.replace(/\s*$/, "")}\n\n${section}\n`;
  return `---\n${withTags(front).replace(/^\n+/, "")}\n---\n${body.replace(/^\n+/, "")}`;
}
