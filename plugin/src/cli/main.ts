// The `ctensors` command line. Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 format, 4 signature /
// trust / integrity, 5 decryption, 6 key, 7 policy, 8 I/O, 9 Hub (see docs/cli.md).

import { parseArgs } from "node:util";
import { CryptoTensorsError, EXIT_CODES } from "../errors.js";
import { printable, printableLines } from "../format/printable.js";
import { GLOBAL_OPTIONS, parserOptions, type Command, type CommandIO } from "./command.js";
import { decrypt } from "./commands/decrypt.js";
import { devHub } from "./commands/dev-hub.js";
import { encrypt } from "./commands/encrypt.js";
import { health } from "./commands/health.js";
import { inspect } from "./commands/inspect.js";
import { keygen } from "./commands/keygen.js";
import { pull } from "./commands/pull.js";
import { push } from "./commands/push.js";
import { rewrap } from "./commands/rewrap.js";
import { serve } from "./commands/serve.js";
import { signRelease } from "./commands/sign-release.js";
import { verify } from "./commands/verify.js";
import { vllm } from "./commands/vllm.js";
import { flagHint } from "./flag-hints.js";
import { commandHelp, mainHelp } from "./help.js";
import { VERSION } from "../version.js";

// Each command's `values` type comes from its own options; here they are all run the same way.
// biome-ignore lint/suspicious/noExplicitAny: each command has its own option types; the runner treats them alike
type AnyCommand = Command<any>;

export const COMMANDS = {
  keygen,
  encrypt,
  decrypt,
  inspect,
  verify,
  rewrap,
  "sign-release": signRelease,
  push,
  pull,
  serve,
  health,
  vllm,
  "dev-hub": devHub,
} satisfies Record<string, AnyCommand>;

const help = () => mainHelp(COMMANDS);
const VERSION_FLAGS = ["--version", "-V"];

/** Runs the CLI and returns the exit code (does not call process.exit). */
export async function main(argv: string[], io: CommandIO = defaultIO(argv)): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" && rest.length) return main([rest[0]!, "--help"], io); // `ctensors help encrypt`
  if (!name || name === "--help" || name === "-h" || name === "help") {
    io.out(help());
    return name ? 0 : 2;
  }
  if (VERSION_FLAGS.includes(name)) {
    io.out(VERSION);
    return 0;
  }
  const command = (COMMANDS as Record<string, AnyCommand>)[name];
  if (!command) {
    io.err(`ctensors: unknown command ${printable(JSON.stringify(name))}\n\n${help()}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: parserOptions({ ...command.options, ...GLOBAL_OPTIONS }),
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    io.err(`ctensors ${name}: ${printable((err as Error).message)}\n${usageLines(name, command)}`);
    return 2;
  }
  if (parsed.values.help) {
    io.out(commandHelp(command));
    return 0;
  }
  try {
    return await command.run({ values: parsed.values, positionals: parsed.positionals, io });
  } catch (err) {
    if (err instanceof CryptoTensorsError) {
      const hint = flagHint(err);
      const message = `ctensors ${name}: error [${err.code}]: ${printable(err.message)}${hint ? ` (${hint})` : ""}`;
      io.err(err.code === "ERR_CT_USAGE" ? `${message}\n${usageLines(name, command)}` : message);
      return EXIT_CODES[err.category];
    }
    // Anything else is a bug of ours (a TypeError included), not a user's mistake.
    io.err(`ctensors ${name}: unexpected error: ${printable(String((err as Error).stack ?? err))}`);
    return 1;
  }
}

/** After a usage error: the synopsis, and where the rest is. */
function usageLines(name: string, command: AnyCommand): string {
  return `usage: ${command.usage}\nrun 'ctensors ${name} --help' for every option and examples`;
}

function defaultIO(argv: string[]): CommandIO {
  return {
    // Whatever a command prints, no control character reaches the terminal raw (format/printable.ts).
    out: (line) => process.stdout.write(`${printableLines(line)}\n`),
    err: (line) => process.stderr.write(`${printableLines(line)}\n`),
    quiet: argv.includes("--quiet") || argv.includes("-q"),
  };
}
