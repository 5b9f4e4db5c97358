// The shape of a CLI command (one file per command in commands/). `defineCommand` infers the type of
// `values` from the command's parseArgs option config: a string option is `string | undefined`
// (`string` with a default), a boolean one `boolean | undefined` (`boolean` with a default), a
// `multiple` one an array. No `values.x as T` casts.

import type { parseArgs, ParseArgsConfig } from "node:util";
import { usageError } from "../errors.js";

export interface CommandIO {
  /** Result lines (stdout). */
  out(line: string): void;
  /** Diagnostics (stderr). */
  err(line: string): void;
  quiet: boolean;
}

export type CommandOptions = NonNullable<ParseArgsConfig["options"]>;

/** The options every command has (main.ts handles them). */
export const GLOBAL_OPTIONS = { help: { type: "boolean", short: "h" }, quiet: { type: "boolean", short: "q" } } as const;

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
  usage: string;
  options: CommandOptions;
  /** Returns the exit code. */
  run(ctx: CommandContext<V>): Promise<number>;
}

/** A command whose `run` gets `values` typed from `options`. */
export function defineCommand<const O extends CommandOptions>(command: {
  summary: string;
  usage: string;
  options: O;
  run(ctx: CommandContext<OptionValues<O>>): Promise<number>;
}): Command<OptionValues<O>> {
  return command;
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
