// The sidecar protocol's TypeScript types cannot drift from proto/ctensors/sidecar/v1/sidecar.proto:
// plugin/src/sidecar/generated/ is exactly what plugin/scripts/gen-proto-types.mjs makes from the .proto now
// (the same byte-exact check python-shim/tests/test_proto.py makes of the Python stubs), and the
// generator runs with the options the sidecar loads the proto with.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROTO_LOADER_OPTIONS } from "../../src/sidecar/proto.js";
// @ts-expect-error: a plain .mjs script without types
import { DEFAULT_OUT_DIR, GEN_OPTIONS, generate } from "../../scripts/gen-proto-types.mjs";

const tmp = mkdtempSync(join(tmpdir(), "ct-proto-types-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

describe("generated protocol types", () => {
  it("regenerating from the .proto gives the committed files, byte for byte (run node plugin/scripts/gen-proto-types.mjs)", () => {
    const written = (generate(tmp) as string[]).sort();
    const committed = files(DEFAULT_OUT_DIR)
      .map((f) => relative(DEFAULT_OUT_DIR, f))
      .sort();
    expect(committed).toEqual(written);
    for (const rel of written) {
      expect(readFileSync(join(DEFAULT_OUT_DIR, rel), "utf8"), `${rel} is stale`).toBe(readFileSync(join(tmp, rel), "utf8"));
    }
    // Every message of the proto has its type.
    const proto = readFileSync(
      join(DEFAULT_OUT_DIR, "..", "..", "..", "..", "proto", "ctensors", "sidecar", "v1", "sidecar.proto"),
      "utf8",
    );
    const messages = [...proto.matchAll(/^(?:message|enum) (\w+)/gm)].map((m) => `ctensors/sidecar/v1/${m[1]}.ts`);
    expect(messages.length).toBeGreaterThan(10);
    for (const m of messages) expect(written).toContain(m);
  });

  it("the generator's options are the loader's (keepCase, longs Number, enums String, defaults, oneofs)", () => {
    const o = PROTO_LOADER_OPTIONS;
    const expected = [
      ...(o.keepCase ? ["--keepCase"] : []),
      `--longs=${(o.longs as { name: string }).name}`,
      `--enums=${(o.enums as { name: string }).name}`,
      ...(o.defaults ? ["--defaults"] : []),
      ...(o.oneofs ? ["--oneofs"] : []),
      "--grpcLib=@grpc/grpc-js",
    ];
    expect(GEN_OPTIONS).toEqual(expected);
  });
});
