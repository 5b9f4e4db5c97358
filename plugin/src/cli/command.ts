// The shape of a CLI command (one file per command in commands/).

import type { ParseArgsConfig } from "node:util";

export interface CommandIO {
  /** Result lines (stdout). */
  out(line: string): void;
  /** Diagnostics (stderr). */
  err(line: string): void;
  quiet: boolean;
}

export interface CommandContext {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
  io: CommandIO;
}

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  /** Returns the exit code. */
  run(ctx: CommandContext): Promise<number>;
}
