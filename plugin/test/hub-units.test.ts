// Unit tests of the Hub helpers' own logic: repo references, settings precedence, the model card
// section, the confidentiality declaration, cache paths. (Network behaviour: test/hub/hub.test.ts.)

import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { RepoCache } from "../src/hub/cache.js";
import { parseDeclaration, serializeDeclaration } from "../src/hub/declaration.js";
import { updateModelCard, type CardFacts } from "../src/hub/model-card.js";
import { claimPartial, partialPath } from "../src/hub/partial.js";
import { parseRepoRef, repoFolderName, tryParseRepoRef, withRevision } from "../src/hub/repo-ref.js";
import { hubSettings } from "../src/hub/settings.js";
import { tempDir, thrown, VENV_PYTHON } from "./helpers.js";

describe("repo references", () => {
  it("parses org/name and org/name@revision", () => {
    expect(parseRepoRef("acme/llama-3.1_8B")).toEqual({ repo: "acme/llama-3.1_8B", revision: "main", explicitRevision: false });
    expect(parseRepoRef("acme/tiny@v1.0")).toMatchObject({ repo: "acme/tiny", revision: "v1.0", explicitRevision: true });
    expect(parseRepoRef("acme/tiny@refs/pr/1").revision).toBe("refs/pr/1");
    const sha = "0123456789abcdef0123456789abcdef01234567";
    expect(parseRepoRef(`acme/tiny@${sha}`).revision).toBe(sha);
  });

  it("rejects paths and names the Hub would not accept", () => {
    for (const bad of [
      "/abs/path",
      "./rel",
      "../x/y",
      "acme",
      "a/b/c",
      "acme/..",
      "acme/-x",
      "acme/x-",
      "acme/a--b",
      "acme/a..b",
      "acme/tiny@",
      "acme/tiny@../x",
      "acme/tiny@a//b",
      "acme/ti ny",
      "acme/tiny@x y",
      `acme/${"x".repeat(97)}`,
      "",
    ]) {
      expect(tryParseRepoRef(bad), bad).toBeUndefined();
    }
    expect(thrown(() => parseRepoRef("./model"))).toMatchObject({ code: "ERR_CT_USAGE" });
  });

  it("names cache folders as the Hub clients do", () => {
    expect(repoFolderName("acme/tiny")).toBe("models--acme--tiny");
  });
});

describe("settings", () => {
  it("takes options over the environment over defaults", () => {
    const env = { HF_ENDPOINT: "http://env-hub:1/", HF_TOKEN: "hf_env", HF_HUB_CACHE: "/env-cache" };
    expect(hubSettings({}, env)).toEqual({ hubUrl: "http://env-hub:1", accessToken: "hf_env", cacheDir: "/env-cache", offline: false });
    expect(hubSettings({ hubUrl: "http://opt:2", token: "hf_opt", cacheDir: "/opt-cache" }, env)).toMatchObject({
      hubUrl: "http://opt:2",
      accessToken: "hf_opt",
      cacheDir: "/opt-cache",
    });
    const home = join(tempDir("ct-hubset-"), "hf");
    const none = hubSettings({}, { HF_HOME: home });
    expect(none).toEqual({ hubUrl: "https://huggingface.co", accessToken: undefined, cacheDir: join(home, "hub"), offline: false });
    expect(hubSettings({}, {}).cacheDir).toBe(join(homedir(), ".cache", "huggingface", "hub"));
    expect(hubSettings({}, { XDG_CACHE_HOME: "/xdg" }).cacheDir).toBe("/xdg/huggingface/hub");
  });

  it("reads the token file and HF_HUB_OFFLINE", () => {
    const home = tempDir("ct-hubtok-");
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, "token"), "hf_from_file\n");
    expect(hubSettings({}, { HF_HOME: home }).accessToken).toBe("hf_from_file");
    expect(hubSettings({}, { HF_HOME: home, HF_TOKEN: "hf_env" }).accessToken).toBe("hf_env");
    for (const v of ["1", "true", "YES", "on"]) expect(hubSettings({}, { HF_HUB_OFFLINE: v }).offline).toBe(true);
    for (const v of ["0", "", "false"]) expect(hubSettings({}, { HF_HUB_OFFLINE: v }).offline).toBe(false);
  });

  it("refuses a Hub URL that is not http(s)", () => {
    expect(thrown(() => hubSettings({ hubUrl: "file:///etc" }, {}))).toMatchObject({ code: "ERR_CT_USAGE", option: "hubUrl" });
    expect(thrown(() => hubSettings({}, { HF_ENDPOINT: "not a url" }))).toMatchObject({ code: "ERR_CT_USAGE" });
  });
});

describe("model card", () => {
  const facts: CardFacts = {
    repo: "acme/tiny",
    signers: ["pub-1"],
    encryptionKeys: ["enc-1"],
    formats: ["CryptoTensors v2, aes256gcm"],
    encryptedFiles: 3,
    plaintextWeightFiles: [],
  };

  it("writes a new card with front matter tags, library_name and the section", () => {
    const card = updateModelCard(undefined, facts);
    expect(card.startsWith("---\ntags:\n- cryptotensors\n- encrypted\nlibrary_name: ctensors\n---\n# tiny\n")).toBe(true);
    expect(card).toContain("`pub-1`");
    expect(card).toContain("ctensors vllm");
    // The key files keygen writes, and install instructions.
    expect(card).toContain("--trust sign.pub.jwk");
    expect(card).not.toContain("signer.pub.jwk");
    expect(card).toContain("pip install");
    // transformers.js only for ONNX weights.
    expect(card).not.toContain("installCryptoTensors");
    expect(updateModelCard(undefined, { ...facts, onnxWeights: true })).toContain("installCryptoTensors");
  });

  it("keeps the user's text and front matter, and replaces only its own section on update", () => {
    const user = "---\nlicense: apache-2.0\ntags:\n- llama\n---\n# My model\n\nSome words.\n";
    const first = updateModelCard(user, facts);
    expect(first).toContain("license: apache-2.0");
    expect(first).toMatch(/tags:\n- llama\n- cryptotensors\n- encrypted\n/);
    expect(first).toContain("# My model\n\nSome words.");
    const second = updateModelCard(first.replace("Some words.", "Other words."), { ...facts, signers: ["pub-2"] });
    expect(second).toContain("Other words.");
    expect(second).toContain("`pub-2`");
    expect(second).not.toContain("`pub-1`");
    expect(second.match(/ctensors:begin/g)).toHaveLength(1);
    expect(second.match(/- cryptotensors/g)).toHaveLength(1);
  });

  it("edits indented, inline, single and empty tag lists as YAML (comments and other keys kept)", () => {
    const tagsOf = (card: string) => (parseYaml(/^---\n([\s\S]*?)\n---\n/.exec(card)![1]!) as { tags: string[] }).tags;
    const indented = updateModelCard(
      "---\nlicense: mit # why\ntags:\n  - llama\n  - text-generation\nlibrary_name: transformers\n---\nx\n",
      facts,
    );
    expect(tagsOf(indented)).toEqual(["llama", "text-generation", "cryptotensors", "encrypted"]);
    expect(indented).toContain("license: mit # why");
    expect(indented).toContain("tags:\n  - llama\n  - text-generation\n  - cryptotensors\n"); // the card's indentation kept
    expect(indented).toContain("library_name: transformers"); // the card's own choice is kept
    expect(tagsOf(updateModelCard("---\ntags: [a, b]\n---\nx\n", facts))).toEqual(["a", "b", "cryptotensors", "encrypted"]);
    expect(tagsOf(updateModelCard("---\ntags: solo\n---\nx\n", facts))).toEqual(["solo", "cryptotensors", "encrypted"]);
    expect(tagsOf(updateModelCard("---\ntags:\n---\nx\n", facts))).toEqual(["cryptotensors", "encrypted"]);
    expect(tagsOf(updateModelCard("---\n---\nx\n", facts))).toEqual(["cryptotensors", "encrypted"]);
  });

  it("refuses front matter that is not a YAML mapping", () => {
    expect(thrown(() => updateModelCard("---\na: [\n---\nx\n", facts))).toMatchObject({ code: "ERR_CT_FORMAT" });
    expect(thrown(() => updateModelCard("---\n- a\n---\nx\n", facts))).toMatchObject({ code: "ERR_CT_FORMAT" });
  });

  it("is read by huggingface_hub's ModelCard as it is meant", () => {
    const card = updateModelCard("---\nlicense: mit\ntags:\n  - llama\n  - text-generation\n---\n# x\n", { ...facts, onnxWeights: true });
    const script =
      "import json,sys\nfrom huggingface_hub import ModelCard\nc = ModelCard(sys.stdin.read())\nprint(json.dumps({'tags': c.data.tags, 'library_name': c.data.library_name, 'license': c.data.license}))";
    const r = spawnSync(VENV_PYTHON, ["-c", script], { input: card, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      tags: ["llama", "text-generation", "cryptotensors", "encrypted"],
      library_name: "ctensors",
      license: "mit",
    });
  });
});

describe("--revision", () => {
  it("sets the revision of a reference that names none, agrees with one that names the same, refuses a contradiction", () => {
    expect(withRevision(parseRepoRef("acme/tiny"), "v1")).toEqual({ repo: "acme/tiny", revision: "v1", explicitRevision: true });
    expect(withRevision(parseRepoRef("acme/tiny"), undefined)).toEqual(parseRepoRef("acme/tiny"));
    expect(withRevision(parseRepoRef("acme/tiny@v1"), "v1").revision).toBe("v1");
    expect(thrown(() => withRevision(parseRepoRef("acme/tiny@v1"), "v2"))).toMatchObject({ code: "ERR_CT_USAGE", option: "revision" });
    expect(thrown(() => withRevision(parseRepoRef("acme/tiny"), "../x"))).toMatchObject({ code: "ERR_CT_USAGE" });
  });
});

describe("declaration", () => {
  it("round-trips, and reads a malformed file as confidential", () => {
    const d = { format: "cryptotensors" as const, confidential: false, signers: ["s"], encryptionKeys: ["e"], tool: "ctensors 0.1.0" };
    expect(parseDeclaration(serializeDeclaration(d))).toEqual(d);
    expect(parseDeclaration("not json").confidential).toBe(true);
    expect(parseDeclaration("[]").confidential).toBe(true);
    expect(parseDeclaration('{"confidential": "no"}').confidential).toBe(true);
    expect(parseDeclaration('{"confidential": false}').confidential).toBe(false);
  });
});

describe("cache paths", () => {
  it("refuses Hub file names that would leave the snapshot, and odd object ids", () => {
    const cache = new RepoCache("/c", "acme/tiny");
    expect(cache.snapshotPath("a".repeat(40), "onnx/model.onnx")).toBe(`/c/models--acme--tiny/snapshots/${"a".repeat(40)}/onnx/model.onnx`);
    for (const bad of ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\b", ""]) {
      expect(
        thrown(() => cache.snapshotPath("a".repeat(40), bad)),
        bad,
      ).toMatchObject({ code: "ERR_CT_HUB" });
    }
    expect(thrown(() => cache.blobPath("../../x"))).toMatchObject({ code: "ERR_CT_HUB" });
  });
});

describe("partial downloads", () => {
  it("adopts the largest partial of a process that is gone, and never touches a live one or the Python client's", async () => {
    const blobs = tempDir("ct-partial-");
    mkdirSync(blobs, { recursive: true });
    const blob = join(blobs, "a".repeat(64));
    const gone = [1, 2].map(() => spawnSync(process.execPath, ["-e", ""]).pid);
    writeFileSync(partialPath(blob, gone[0]), "small");
    writeFileSync(partialPath(blob, gone[1]), "the larger one");
    writeFileSync(partialPath(blob, process.ppid), "live"); // the test runner's parent: alive
    writeFileSync(`${blob}.incomplete`, "python"); // huggingface_hub's, under its own lock
    const mine = await claimPartial(blob);
    expect(mine).toBe(partialPath(blob));
    expect(readFileSync(mine, "utf8")).toBe("the larger one");
    expect(readdirSync(blobs).sort()).toEqual(
      [`${"a".repeat(64)}.incomplete`, partialPath(blob, process.ppid).slice(blobs.length + 1), mine.slice(blobs.length + 1)].sort(),
    );
    // A second claim keeps what this process already has.
    expect(await claimPartial(blob)).toBe(mine);
    expect(readFileSync(mine, "utf8")).toBe("the larger one");
  });
});
