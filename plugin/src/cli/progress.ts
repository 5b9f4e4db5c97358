// Progress bars on stderr for long work, only when stderr is a terminal (and not --quiet).

import cliProgress from "cli-progress";

export interface Progress {
  /** Starts (or restarts) a bar for one file of `totalBytes`. */
  start(label: string, totalBytes: number): void;
  update(doneBytes: number): void;
  stop(): void;
}

const silent: Progress = { start() {}, update() {}, stop() {} };

export function createProgress(enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "{label} |{bar}| {percentage}% {done}/{size} {rate}",
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = 0;
  let active = false;
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  return {
    start(label, totalBytes) {
      if (active) bar.stop();
      started = Date.now();
      active = true;
      bar.start(Math.max(totalBytes, 1), 0, { label, done: mb(0), size: mb(totalBytes), rate: "" });
    },
    update(done) {
      const secs = (Date.now() - started) / 1000;
      bar.update(done, { done: mb(done), rate: secs > 0 ? `${(done / 1e9 / secs).toFixed(2)} GB/s` : "" });
    },
    stop() {
      if (active) bar.stop();
      active = false;
    },
  };
}

/** An onProgress callback for one file: starts its bar on the first report. */
export function trackFile(progress: Progress, label: string): (doneBytes: number, totalBytes: number) => void {
  let started = false;
  return (done, total) => {
    if (!started) {
      progress.start(label, total);
      started = true;
    }
    progress.update(done);
  };
}
