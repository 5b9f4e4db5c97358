// Runs one measured operation in a child process and collects its BENCH_RESULT line plus the
// process's lifetime peak RSS from GNU time (`/usr/bin/time -f %M`, KiB) when that exists.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

export const GNU_TIME = ["/usr/bin/time", "/bin/time"].find((p) => existsSync(p)) ?? null;
const MARK = "BENCH_MAXRSS_KIB=";

/**
 * @param {string} cmd  executable (node, python)
 * @param {string[]} args
 * @returns {Promise<{ result: object, maxRssKiB: number | null, stdout: string, stderr: string }>}
 */
export function runChild(cmd, args, { cwd, env } = {}) {
  const argv = GNU_TIME ? [GNU_TIME, "-f", `${MARK}%M`, cmd, ...args] : [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const line = stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
      const rss = new RegExp(`${MARK}(\\d+)`).exec(stderr);
      const cleanErr = stderr.replace(new RegExp(`^.*${MARK}.*$`, "gm"), "").trim();
      if (code !== 0 || !line) {
        const what = [cmd, ...args].join(" ");
        reject(new Error(`child failed (${signal ?? `exit ${code}`}): ${what}\n${cleanErr.slice(-4000)}\n${stdout.slice(-2000)}`));
        return;
      }
      const result = JSON.parse(line.slice("BENCH_RESULT ".length));
      const maxRssKiB = rss ? Number(rss[1]) : Math.max(result.prePeakKiB ?? 0, result.opPeakKiB ?? 0) || null;
      resolve({ result, maxRssKiB, stdout, stderr: cleanErr });
    });
  });
}
