// The fuzzers' oracle: what counts as a finding. Every failure must be a CryptoTensorsError with an
// ERR_CT_* code; anything else (TypeError, RangeError, a plain Error, a rejection with a non-error) is
// a finding, and so is a run that does not finish in time (a hang). Targets add their own checks
// (engines agree, nothing tampered is accepted) by throwing Finding.

export class Finding extends Error {
  override name = "Finding";
}

/** "ok" or "ERR_CT_…" for a coded error; throws Finding for anything else. */
export function outcomeOf(err: unknown): string {
  const e = err as { name?: unknown; code?: unknown } | null;
  if (err instanceof Error && e?.name === "CryptoTensorsError" && typeof e.code === "string" && e.code.startsWith("ERR_CT_")) return e.code;
  if (err instanceof Finding) throw err;
  const what = err instanceof Error ? `${err.name}: ${err.message}` : `a non-error value ${String(err)}`;
  throw new Finding(`uncoded failure: ${what}`, { cause: err });
}

/** Runs `fn` and returns "ok" or its error code; a Finding for an uncoded failure. */
export async function verdict(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return "ok";
  } catch (err) {
    return outcomeOf(err);
  }
}

/** Rejects with a Finding when `p` does not settle within `ms` (a hang, or close to one). */
export async function withinTime<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Finding(`hang: ${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A short, stable signature of a finding (to count distinct findings): message without numbers + first own stack frame. */
export function signatureOf(err: unknown): string {
  const e = err as Error;
  const cause = (e.cause as Error | undefined) ?? e;
  const frame = (cause.stack ?? "").split("\n").find((l) => l.includes("/plugin/src/")) ?? "";
  return `${e.message.replace(/\d+/g, "N").slice(0, 160)} @ ${frame.trim().replace(/:\d+:\d+\)?$/, "")}`;
}
