// Structured logs: one JSON object per line on stderr. Callers pass events and fields, never key
// material, tokens or tensor bytes (nothing here redacts: what is not passed cannot leak). Strings from
// files (tensor names, kids) are written JSON-escaped, C1 and bidi characters included (toJson).
// Why not pino: its serializer (like JSON.stringify) writes C1 controls and bidi overrides raw, and it
// offers no hook at the string-escaping level, so a hostile tensor name could reorder or hide text in
// a terminal or log viewer; the format here is one line of our own escaper, which every human and
// machine rendering of the project shares (format/printable.ts). Levels, time and one JSON object per
// line are what log collectors need from it.

import { toJson } from "../index.js";

export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** A logger writing `{"time","level","event",...fields}` lines (default: to stderr). */
export function jsonLogger(write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const emit = (level: string, event: string, fields?: LogFields) => {
    write(`${toJson({ time: new Date().toISOString(), level, event, ...fields })}\n`);
  };
  return {
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
  };
}

/** Discards everything (tests). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** The loggable part of an error: name, code, message (and stack when asked), then the same for its cause. */
export function describeError(err: unknown, withStack = false): LogFields {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: LogFields = { error: err.message, error_name: err.name };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.error_code = code;
  if (withStack && err.stack) out.stack = err.stack;
  if (err.cause !== undefined) out.cause = describeError(err.cause, withStack);
  return out;
}
