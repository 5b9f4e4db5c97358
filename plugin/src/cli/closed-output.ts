// A closed stdout or stderr (`ctensors inspect DIR | head -2`) ends nothing loudly: Node reports the
// failed write as an 'error' event (EPIPE), which, unhandled, kills the process with a stack trace.
// The command runs on with its output discarded, so it still finishes and cleans up as it always does
// (an exit at the failed write would skip the removal of half-written output files).

const CLOSED = new Set(["EPIPE", "ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END"]);

/** Makes writes to a closed `stream` silent no-ops; any other write error still surfaces. */
export function discardWhenClosed(stream: NodeJS.WriteStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (!CLOSED.has(err.code ?? "")) throw err;
  });
}
