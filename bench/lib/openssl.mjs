// `openssl speed -evp aes-256-gcm` as the AEAD throughput baseline (system OpenSSL, not Node's copy).

import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Runs openssl speed for one buffer size and returns bytes per second (openssl prints 1000s of bytes/s).
 * @param {{ multi?: number, decrypt?: boolean, bytes?: number, seconds?: number }} o
 */
export async function opensslSpeed({ multi = 1, decrypt = false, bytes = 2 * 1024 * 1024, seconds = 3 } = {}) {
  const args = ["speed"];
  if (multi > 1) args.push("-multi", String(multi));
  if (decrypt) args.push("-decrypt");
  args.push("-evp", "aes-256-gcm", "-bytes", String(bytes), "-seconds", String(seconds));
  const { stdout, stderr } = await run("openssl", args, { maxBuffer: 16 * 1024 * 1024 });
  const text = `${stdout}\n${stderr}`;
  // The result row: "AES-256-GCM   5754585.09k" (-multi prints the summed row the same way).
  const rows = [...text.matchAll(/^aes-256-gcm\s+([\d.]+)k\s*$/gim)];
  if (!rows.length) throw new Error(`cannot parse openssl speed output:\n${text.slice(-2000)}`);
  return { command: `openssl ${args.join(" ")}`, bytesPerSecond: Number(rows.at(-1)[1]) * 1000 };
}

export async function opensslVersion() {
  try {
    return (await run("openssl", ["version"])).stdout.trim();
  } catch {
    return null;
  }
}
