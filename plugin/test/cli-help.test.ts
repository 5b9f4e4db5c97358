// `ctensors <command> --help` as a user runs it (the built CLI in a child process): every declared option
// appears with its description and its default, an Examples section shows invocations that the
// command's own parser accepts, and -V / --version print the package version. The help is generated
// from the same declarations the parser uses (cli/command.ts), so this holds for every command at once.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { GLOBAL_OPTIONS, parserOptions, type Command, type CommandOptions } from "../src/cli/command.js";
import { defaultShown, optionLabel } from "../src/cli/help.js";
import { COMMANDS } from "../src/cli/main.js";
import { DEFAULT_HEALTH_TIMEOUT_MS } from "../src/sidecar/health-check.js";
import { DEFAULT_METRICS_HOST } from "../src/sidecar/metrics.js";
import { VERSION } from "../src/version.js";
import { CLI, REPO_ROOT } from "./helpers.js";

const PACKAGE_VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, "plugin", "package.json"), "utf8")) as { version: string }).version;
const NAMES = Object.keys(COMMANDS) as (keyof typeof COMMANDS)[];

async function ct(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await execa(process.execPath, [CLI, ...args], { reject: false, stdin: "ignore", timeout: 60_000 });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Splits an example line as a shell would for these simple lines: words, 'single-quoted' words, leading VAR=value dropped. */
function words(line: string): string[] {
  const out = [...line.replace(/\s+#.*$/, "").matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  while (out.length && /^[A-Z_][A-Z0-9_]*=/.test(out[0]!)) out.shift();
  return out;
}

const helps = new Map<string, string>();

beforeAll(async () => {
  await Promise.all(
    NAMES.map(async (name) => {
      const r = await ct([name, "--help"]);
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: "" });
      helps.set(name, r.stdout);
    }),
  );
});

describe("every command's --help", () => {
  it.each(NAMES)("%s: describes every option with its default", (name) => {
    const help = helps.get(name)!;
    const lines = help.split("\n");
    const options: CommandOptions = { ...(COMMANDS[name] as Command<unknown>).options, ...GLOBAL_OPTIONS };
    for (const [option, spec] of Object.entries(options)) {
      const label = optionLabel(option, spec);
      const at = lines.findIndex((l) => l.trimStart().startsWith(`${label} `) || l.trim() === label);
      expect(at, `${name}: --${option} is not listed as "${label}"\n${help}`).toBeGreaterThanOrEqual(0);
      // The description follows the label on its line, or on the next one when the label is long.
      const entry = `${lines[at]} ${lines[at + 1] ?? ""}`;
      expect(spec.description.length, `${name} --${option}`).toBeGreaterThan(0);
      expect(entry, `${name} --${option}`).toContain(spec.description);
      const def = defaultShown(spec);
      if (def !== undefined) expect(entry, `${name} --${option}`).toContain(`(default: ${def})`);
      if (spec.multiple) expect(entry, `${name} --${option}`).toContain("(repeatable)");
    }
    // A parseArgs default is shown as declared (flags are off unless given, which --help does not repeat).
    for (const [option, spec] of Object.entries(options)) {
      if (typeof spec.default === "string") expect(help, `${name} --${option}`).toContain(`(default: ${spec.default})`);
    }
  });

  it.each(NAMES)("%s: has a usage line, the summary and an Examples section the parser accepts", (name) => {
    const help = helps.get(name)!;
    const command = COMMANDS[name] as Command<unknown>;
    expect(help.startsWith(`usage: ctensors ${name}`), help).toBe(true);
    expect(help).toContain(command.summary);
    const examples = help.split("\nExamples:\n")[1];
    expect(examples, `${name}: no Examples section\n${help}`).toBeDefined();
    const shown = examples!.split("\n").filter((l) => l.startsWith("  "));
    expect(shown.length).toBeGreaterThanOrEqual(1);
    expect(shown.map((l) => l.trim())).toEqual([...command.examples]);
    for (const example of command.examples) {
      const argv = words(example);
      expect(argv.slice(0, 2), example).toEqual(["ctensors", name]);
      // Strict, as main.ts parses: an example naming an option the command lacks fails here.
      expect(() =>
        parseArgs({
          args: argv.slice(2),
          options: parserOptions({ ...command.options, ...GLOBAL_OPTIONS }),
          allowPositionals: true,
          strict: true,
        }),
      ).not.toThrow();
    }
  });

  it("-h, `ctensors help <command>` and --help print the same help", async () => {
    for (const name of ["encrypt", "serve", "pull"] as const) {
      const short = await ct([name, "-h"]);
      const word = await ct(["help", name]);
      expect(short.code).toBe(0);
      expect(word.code).toBe(0);
      expect(short.stdout).toBe(helps.get(name));
      expect(word.stdout).toBe(helps.get(name));
    }
  });

  it("defaults stated in words match the code's constants", () => {
    expect(helps.get("health")).toContain(`(default: ${DEFAULT_HEALTH_TIMEOUT_MS})`);
    expect(helps.get("serve")).toContain(`--metrics-host HOST`);
    expect(helps.get("serve")).toMatch(new RegExp(`--metrics-host HOST .*\\(default: ${DEFAULT_METRICS_HOST.replaceAll(".", "\\.")}\\)`));
    expect(helps.get("encrypt")).toContain("--chunk-size BYTES");
    expect(helps.get("encrypt")).toContain("(default: 2097152)");
  });

  it("the top-level help lists every command and names -V/--version and the per-command help", async () => {
    const r = await ct(["--help"]);
    expect(r.code).toBe(0);
    for (const name of NAMES)
      expect(r.stdout).toMatch(new RegExp(`^  ${name} +${(COMMANDS[name] as Command<unknown>).summary.replace(/[()`]/g, ".")}$`, "m"));
    expect(r.stdout).toContain("-V, --version");
    expect(r.stdout).toContain("ctensors <command> --help");
    expect(r.stdout).toContain("Examples:");
  });

  it("a usage error names the synopsis and where the full help is", async () => {
    const r = await ct(["encrypt", "--no-such-option"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`usage: ${COMMANDS.encrypt.usage}`);
    expect(r.stderr).toContain("run 'ctensors encrypt --help' for every option and examples");
  });
});

describe("version", () => {
  it("-V and --version print the package version (src/version.ts reads plugin/package.json)", async () => {
    expect(VERSION).toBe(PACKAGE_VERSION);
    for (const flag of ["-V", "--version"]) {
      const r = await ct([flag]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: PACKAGE_VERSION, stderr: "" });
    }
  });
});
