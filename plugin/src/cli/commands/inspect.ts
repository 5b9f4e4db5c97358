// ctensors inspect IN [--json]: what a file says about itself. Nothing here is verified: use `verify`.

import { readHeader, type CryptoInfo } from "../../container/reader.js";
import { isDefaultPolicy } from "../../policy.js";
import type { SafetensorsHeader } from "../../format/header.js";
import { modelSafetensors } from "../../model/process-model.js";
import { printable, toJson } from "../../format/printable.js";
import { defineCommand, expectPositionals } from "../command.js";

export interface FileReport {
  file: string;
  encrypted: boolean;
  formatVersion: string | null;
  chunkBytes: number | null;
  algorithm: string | null;
  encKey: { kid: string | null; jku: string | null } | null;
  signer: { kid: string | null; jku: string | null } | null;
  policy: { default: boolean; local: string; remote: string } | null;
  metadata: Record<string, string>;
  tensors: { name: string; dtype: string; shape: number[]; bytes: number; encrypted: boolean; digest: boolean }[];
}

export function describe(file: string, header: SafetensorsHeader, crypto: CryptoInfo | null): FileReport {
  const md = Object.fromEntries([...(header.metadata ?? [])].filter(([k]) => !k.startsWith("__")));
  return {
    file,
    encrypted: crypto !== null,
    formatVersion: crypto?.keys.version ?? null,
    chunkBytes: crypto?.keys.chunkBytes ?? null,
    algorithm: crypto?.keys.encAlg ?? null,
    encKey: crypto ? { kid: crypto.keys.enc.kid ?? null, jku: crypto.keys.enc.jku ?? null } : null,
    signer: crypto ? { kid: crypto.keys.sign.kid ?? null, jku: crypto.keys.sign.jku ?? null } : null,
    policy: crypto ? { default: isDefaultPolicy(crypto.policy), ...crypto.policy } : null,
    metadata: md,
    tensors: header.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      bytes: t.end - t.begin,
      encrypted: crypto?.encryption.has(t.name) ?? false,
      digest: crypto?.digests?.has(t.name) ?? false,
    })),
  };
}

/** The human-readable report. Every string that comes from the file goes through `printable`. */
function render(r: FileReport, out: (line: string) => void): void {
  const p = printable;
  const enc = r.tensors.filter((t) => t.encrypted).length;
  out(`${p(r.file)}`);
  if (!r.encrypted) {
    out(`  plain safetensors (not encrypted, not signed), ${r.tensors.length} tensors`);
  } else {
    out(
      `  CryptoTensors v${p(r.formatVersion ?? "")}${r.chunkBytes ? `, chunked (${r.chunkBytes} bytes)` : ", monolithic"}, ${p(r.algorithm ?? "")}`,
    );
    out(`  master key: kid ${p(r.encKey?.kid ?? "(none)")}${r.encKey?.jku ? `, jku ${p(r.encKey.jku)}` : ""}`);
    out(`  signer (claimed, not verified): kid ${p(r.signer?.kid ?? "(none)")}${r.signer?.jku ? `, jku ${p(r.signer.jku)}` : ""}`);
    out(`  policy: ${r.policy?.default ? "default (allow)" : "custom (needs a Rego engine; this tool refuses to load it)"}`);
    const plain = r.tensors.filter((t) => !t.encrypted);
    const unauth = plain.filter((t) => !t.digest).length;
    out(
      `  tensors: ${enc}/${r.tensors.length} encrypted${plain.length ? `, ${plain.length} plaintext (${unauth ? `${unauth} without a signed digest` : "all covered by signed digests"})` : ""}`,
    );
  }
  const md = Object.entries(r.metadata);
  if (md.length) out(`  metadata: ${md.map(([k, v]) => `${p(k)}=${p(v)}`).join(", ")}`);
  for (const t of r.tensors) {
    out(`    ${t.encrypted ? "E" : t.digest ? "d" : "-"} ${p(t.name)} ${p(t.dtype)}${JSON.stringify(t.shape)} ${t.bytes} B`);
  }
}

export const inspect = defineCommand({
  summary: "show a file's header: encryption, algorithms, signer, policy, tensors",
  usage: "ctensors inspect IN [options]",
  description:
    "Shows what the header claims, for a file or every weight file of a folder; nothing is verified (use verify).\n" +
    "Per tensor: E encrypted, d plaintext with a signed digest, - plaintext without.",
  options: { json: { type: "boolean", default: false, description: "print the report as JSON" } },
  examples: ["ctensors inspect model.enc.safetensors", "ctensors inspect ./my-model-encrypted --json"],
  async run({ values, positionals, io }) {
    const [input] = expectPositionals(positionals, ["IN"]);
    const reports: FileReport[] = [];
    for (const file of await modelSafetensors(input)) {
      const { header, crypto } = await readHeader(file);
      reports.push(describe(file, header, crypto));
    }
    if (values.json) io.out(toJson(reports.length === 1 ? reports[0] : reports, 2));
    else reports.forEach((r) => render(r, io.out));
    return 0;
  },
});
