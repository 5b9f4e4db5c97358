// The config.json entry that makes plain transformers refuse an encrypted folder (the Python
// end-to-end test python-shim/tests/test_conventions_e2e.py checks transformers' actual refusal).

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { markEncryptedConfigs, REFUSAL, REFUSAL_KEY, unmarkDecryptedConfigs } from "../src/model/transformers-config.js";
import { tempDir } from "./helpers.js";

const root = tempDir("ct-tfconfig-");
// As transformers writes it: floats with ".0" that a JSON round trip would turn into integers.
const CONFIG = '{\n  "attention_dropout": 0.0,\n  "model_type": "llama",\n  "rope_theta": 10000.0\n}\n';

function folder(name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

describe("transformers config marker", () => {
  it("adds the refusal beside safetensors files and removes it byte for byte", async () => {
    const dir = folder("a", {
      "config.json": CONFIG,
      "model.safetensors": "",
      "text_encoder/config.json": CONFIG,
      "text_encoder/model.safetensors": "",
      "other/config.json": CONFIG,
    });
    expect((await markEncryptedConfigs(dir)).sort()).toEqual(["config.json", "text_encoder/config.json"]);
    const marked = readFileSync(join(dir, "config.json"), "utf8");
    expect(JSON.parse(marked)[REFUSAL_KEY]).toBe(REFUSAL);
    expect(marked).toContain('"attention_dropout": 0.0'); // the rest is untouched
    expect(readFileSync(join(dir, "other/config.json"), "utf8")).toBe(CONFIG); // no weights beside it
    expect(await markEncryptedConfigs(dir)).toEqual([]); // idempotent
    expect((await unmarkDecryptedConfigs(dir)).sort()).toEqual(["config.json", "text_encoder/config.json"]);
    expect(readFileSync(join(dir, "config.json"), "utf8")).toBe(CONFIG);
    expect(readFileSync(join(dir, "text_encoder/config.json"), "utf8")).toBe(CONFIG);
  });

  it("keeps a transformers_weights the model had and restores it", async () => {
    const own = '{\n  "model_type": "llama",\n  "transformers_weights": "weights.safetensors"\n}\n';
    const dir = folder("b", { "config.json": own, "weights.safetensors": "" });
    await markEncryptedConfigs(dir);
    const marked = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(marked[REFUSAL_KEY]).toBe(REFUSAL);
    expect(marked.ctensors_original_transformers_weights).toBe("weights.safetensors");
    await unmarkDecryptedConfigs(dir);
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toEqual(JSON.parse(own));
  });

  it("leaves files that are not a config object alone, refuses invalid JSON, ignores a single file", async () => {
    const list = folder("c", { "config.json": "[1, 2]\n", "model.safetensors": "" });
    expect(await markEncryptedConfigs(list)).toEqual([]);
    expect(readFileSync(join(list, "config.json"), "utf8")).toBe("[1, 2]\n");
    const bad = folder("d", { "config.json": "{nope", "model.safetensors": "" });
    await expect(markEncryptedConfigs(bad)).rejects.toMatchObject({ code: "ERR_CT_FORMAT" });
    expect(await markEncryptedConfigs(join(bad, "model.safetensors"))).toEqual([]);
  });
});
