// --help text, generated from the commands' declarations (command.ts): the synopsis, the summary and
// description, every option with its value name, description and default, grouped, and the examples.

import type { Command, CommandOptions, OptionSpec } from "./command.js";
import { GLOBAL_OPTIONS } from "./command.js";

/** Options whose left column is wider than this get their description on the next line. */
const MAX_COLUMN = 34;

/** What --help shows as the option's default: its parseArgs default (flags are off unless given), else its defaultText. */
export function defaultShown(spec: OptionSpec): string | undefined {
  const def = spec.default;
  if (def !== undefined && def !== false && !(Array.isArray(def) && def.length === 0))
    return Array.isArray(def) ? def.join(", ") : String(def);
  return spec.defaultText;
}

/** The option as --help names it: `-q, --quiet`, `--key JWK`. */
export function optionLabel(name: string, spec: OptionSpec): string {
  const value = spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : "";
  return `${spec.short ? `-${spec.short}, ` : ""}--${name}${value}`;
}

function optionLine(name: string, spec: OptionSpec, column: number): string {
  const def = defaultShown(spec);
  const text = `${spec.description}${spec.multiple ? " (repeatable)" : ""}${def !== undefined ? ` (default: ${def})` : ""}`;
  const label = `  ${optionLabel(name, spec)}`;
  return label.length + 2 <= column ? `${label.padEnd(column)}${text}` : `${label}\n${" ".repeat(column)}${text}`;
}

/** The options of a command and the global ones, by group: the command's own first, "Global options" last. */
function optionSections(options: CommandOptions): string[] {
  const all: CommandOptions = { ...options, ...GLOBAL_OPTIONS };
  const groups = new Map<string, [string, OptionSpec][]>();
  for (const [name, spec] of Object.entries(all)) {
    const group = spec.group ?? "Options";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group)!.push([name, spec]);
  }
  const order = [...groups.keys()].sort((a, b) => rank(a) - rank(b));
  const labels = Object.entries(all).map(([n, s]) => optionLabel(n, s).length + 2);
  const column = Math.min(Math.max(...labels), MAX_COLUMN) + 2;
  return order.map((group) => [`${group}:`, ...groups.get(group)!.map(([n, s]) => optionLine(n, s, column))].join("\n"));
}

function rank(group: string): number {
  return group === "Options" ? 0 : group === "Global options" ? 2 : 1;
}

/** `ctensors NAME --help`. */
export function commandHelp(command: Command<unknown>): string {
  const parts = [`usage: ${command.usage}`, command.summary];
  if (command.description) parts.push(command.description);
  parts.push(...optionSections(command.options));
  parts.push(["Examples:", ...command.examples.map((e) => `  ${e}`)].join("\n"));
  return parts.join("\n\n");
}

/** `ctensors --help`. */
export function mainHelp(commands: Record<string, Command<unknown>>): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    "usage: ctensors <command> [options]",
    ["Commands:", ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)].join("\n"),
    [
      "Global options:",
      "  -q, --quiet    no progress output on stderr",
      "  -h, --help     show help ('ctensors <command> --help' or 'ctensors help <command>': a command's options and examples)",
      "  -V, --version  print the version and exit",
    ].join("\n"),
    [
      "Examples:",
      "  ctensors keygen --out keys",
      "  ctensors encrypt model.safetensors model.enc.safetensors --key keys/enc.jwk --sign-key keys/sign.jwk",
      "  ctensors encrypt --help",
    ].join("\n"),
  ].join("\n\n");
}
