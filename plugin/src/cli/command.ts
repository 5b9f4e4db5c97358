// The shape of a CLI command (one file per command in commands/), declared once: the same declaration
// drives parsing and --help. `defineCommand` infers the type of `values` from the command's options:
// a string option is `string | undefined` (`string` with a default), a boolean one `boolean |
// undefined` (`boolean` with a default), a `multiple` one an array. No `values.x as T` casts.
//
// Why not commander or yargs: parsing is Node's own maintained parser, node:util parseArgs (strict:
// unknown options, a missing value and a value given to a flag are usage errors), and help.ts
// generates every command's --help from the same declaration below (each option's description, value
// name and default, and the command's examples), so help and parser cannot drift apart. What commander
// or yargs would add is the subcommand dispatch and the help layout, a few dozen lines of main.ts and
// help.ts; moving would rewrite every command's declaration for the same result. The option
// descriptions a framework also needs live in the declarations, once.
// plugin/test/cli-help.test.ts holds every command to it.

import type { ParseArgsConfig } from "node:util";
import type { parseArgs } from "node:util";
import { usageError } from "../errors.js";

export interface CommandIO {
  /** Result lines (stdout). */
  out(line: string): void;
  /** Diagnostics (stderr). */
  err(line: string): void;
  quiet: boolean;
}

type ParseArgsOption = NonNullable<ParseArgsConfig["options"]>[string];

/** One option: what parseArgs needs (type, short, multiple, default) and what --help says about it. */
export type OptionSpec = ParseArgsOption & {
  /** What the option does, one line (help.ts adds the default). */
  description: string;
  /** The value's name in --help, e.g. FILE (string options; default VALUE). */
  value?: string;
  /**
   * The default in words when it is not a parseArgs `default`: taken from the environment or computed
   * (e.g. "$HF_ENDPOINT, else https://huggingface.co"). Build it from the code's own constants.
   */
  defaultText?: string;
  /** A heading that groups options shared by several commands in --help (e.g. "Hub options"). */
  group?: string;
};

export type CommandOptions = Record<string, OptionSpec>;

/** The options every command has (main.ts handles them). */
export const GLOBAL_OPTIONS = {
  quiet: { type: "boolean", short: "q", description: "no progress output on stderr", group: "Global options" },
  help: { type: "boolean", short: "h", description: "show this help and exit", group: "Global options" },
} as const satisfies CommandOptions;

/** The values parseArgs returns for options `O` (strict, positionals allowed), typed. */
export type OptionValues<O extends CommandOptions> = ReturnType<
  typeof parseArgs<{ options: O & typeof GLOBAL_OPTIONS; allowPositionals: true; strict: true }>
>["values"];

export interface CommandContext<V> {
  values: V;
  positionals: string[];
  io: CommandIO;
}

export interface Command<V> {
  summary: string;
  /** The synopsis: `ctensors NAME POSITIONALS --required X [options]` (usage errors repeat it). */
  usage: string;
  /** More about the command, for --help (options are described by their own declarations). */
  description?: string;
  options: CommandOptions;
  /** Example invocations for --help, each a `ctensors NAME …` line (an optional `# comment` after it). */
  examples: readonly [string, ...string[]];
  /** Returns the exit code. */
  run(ctx: CommandContext<V>): Promise<number>;
}

/** A command whose `run` gets `values` typed from `options`. */
export function defineCommand<const O extends CommandOptions>(command: {
  summary: string;
  usage: string;
  description?: string;
  options: O;
  examples: readonly [string, ...string[]];
  run(ctx: CommandContext<OptionValues<O>>): Promise<number>;
}): Command<OptionValues<O>> {
  return command;
}

/** The parseArgs config of `options` (the help fields left out). */
export function parserOptions(options: CommandOptions): NonNullable<ParseArgsConfig["options"]> {
  return Object.fromEntries(
    Object.entries(options).map(([name, { type, short, multiple, default: def }]) => [
      name,
      {
        type,
        ...(short !== undefined ? { short } : {}),
        ...(multiple !== undefined ? { multiple } : {}),
        ...(def !== undefined ? { default: def } : {}),
      },
    ]),
  );
}

/**
 * Checks the number of positional arguments against their names (e.g. ["IN", "OUT"]) and returns them.
 * @throws ERR_CT_USAGE
 */
export function expectPositionals<const N extends readonly string[]>(positionals: readonly string[], names: N): { [K in keyof N]: string } {
  if (positionals.length === names.length && positionals.every(Boolean)) return positionals as unknown as { [K in keyof N]: string };
  if (names.length === 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  throw usageError(`expected ${names.join(" and ")}`);
}
