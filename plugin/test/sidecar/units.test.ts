// Pure pieces of the sidecar: tensor packing, window sizes, the error → status table, the token
// check, and the default socket rule.

import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CryptoTensorsError, ERROR_CODES, type CryptoTensorsErrorCode } from "ctensors";
import { tokenMatches } from "../../src/sidecar/auth.js";
import { SidecarError, ShutdownError } from "../../src/sidecar/errors.js";
import { errorToStatus, SENT_ERROR_CODES } from "../../src/sidecar/errors-to-status.js";
import { alignUp, packBatches, streamingWindowBytes, streamingWindowCount } from "../../src/sidecar/load-plan.js";
import type { Logger } from "../../src/sidecar/log.js";
import { defaultSocketPath } from "../../src/sidecar/socket-path.js";
import { protoErrorCodes } from "../../src/sidecar/proto.js";

const MiB = 1024 * 1024;

describe("packBatches", () => {
  it("packs in order at 64-byte aligned offsets and splits at the limit", () => {
    const batches = packBatches([10, 0, 64, 100, 200], (n) => n, 256);
    expect(batches.map((b) => b.placements.map((p) => [p.item, p.offset]))).toEqual([
      [
        [10, 0],
        [0, 64],
        [64, 64],
        [100, 128],
      ],
      [[200, 0]],
    ]);
    expect(batches.map((b) => b.end)).toEqual([228, 200]);
  });

  it("gives an item larger than the limit a batch of its own", () => {
    expect(packBatches([5, 1000, 5], (n) => n, 100).map((b) => b.placements.map((p) => p.item))).toEqual([[5], [1000], [5]]);
    expect(packBatches([], (n: number) => n, 100)).toEqual([]);
  });

  it("alignUp", () => {
    expect([0, 1, 64, 65].map(alignUp)).toEqual([0, 64, 64, 128]);
  });
});

describe("streaming windows", () => {
  const sizes = [700_000, 700_000, 700_000, 14];
  it("defaults to 256 MiB, shrunk to what the request needs", () => {
    expect(streamingWindowBytes(0, sizes)).toBe(alignUp(3 * alignUp(700_000) + 14));
    expect(streamingWindowBytes(0, Array(4).fill(100 * MiB))).toBe(256 * MiB);
  });
  it("is at least 1 MiB and the largest tensor", () => {
    expect(streamingWindowBytes(1, [...sizes, 5 * MiB])).toBe(5 * MiB);
    expect(streamingWindowBytes(1, Array(4).fill(700_000))).toBe(MiB);
    expect(streamingWindowBytes(3 * MiB + 1, Array(8).fill(MiB))).toBe(alignUp(3 * MiB + 1));
    expect(streamingWindowBytes(0, [0])).toBe(64);
  });
  it("window count defaults to 2 and is capped", () => {
    expect(streamingWindowCount(0)).toBe(2);
    expect(streamingWindowCount(3)).toBe(3);
    expect(streamingWindowCount(10_000)).toBe(64);
  });
});

describe("errorToStatus", () => {
  const logged: { level: string; event: string; fields: Record<string, unknown> }[] = [];
  const log: Logger = {
    info: (event, fields = {}) => logged.push({ level: "info", event, fields }),
    warn: (event, fields = {}) => logged.push({ level: "warn", event, fields }),
    error: (event, fields = {}) => logged.push({ level: "error", event, fields }),
  };
  const expected: Record<CryptoTensorsErrorCode, status> = {
    ERR_CT_USAGE: status.INVALID_ARGUMENT,
    ERR_CT_FORMAT: status.FAILED_PRECONDITION,
    ERR_CT_UNSUPPORTED: status.FAILED_PRECONDITION,
    ERR_CT_SIGNATURE_INVALID: status.PERMISSION_DENIED,
    ERR_CT_UNTRUSTED_SIGNER: status.PERMISSION_DENIED,
    ERR_CT_INTEGRITY: status.PERMISSION_DENIED,
    ERR_CT_NOT_CONFIDENTIAL: status.PERMISSION_DENIED,
    ERR_CT_DECRYPTION_FAILED: status.DATA_LOSS,
    ERR_CT_KEY_NOT_FOUND: status.FAILED_PRECONDITION,
    ERR_CT_KEY_INVALID: status.FAILED_PRECONDITION,
    ERR_CT_POLICY_DENIED: status.PERMISSION_DENIED,
    ERR_CT_POLICY_UNSUPPORTED: status.FAILED_PRECONDITION,
    ERR_CT_IO: status.UNAVAILABLE,
    ERR_CT_HUB: status.UNAVAILABLE,
  };

  it("maps every codec code, with the code in the ct-error-code trailer and the message as details", () => {
    expect(Object.keys(expected).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, want] of Object.entries(expected)) {
      const s = errorToStatus(new CryptoTensorsError(code as CryptoTensorsErrorCode, `msg ${code}`), log);
      expect(s.code, code).toBe(want);
      expect(s.details).toBe(`msg ${code}`);
      expect(s.metadata.get("ct-error-code")).toEqual([code]);
    }
  });

  it("recognises codec errors by class, also from another copy of the codec module, never by name", async () => {
    const source = (await import("../../src/errors.js")) as typeof import("ctensors");
    expect(source.CryptoTensorsError).not.toBe(CryptoTensorsError);
    const s = errorToStatus(new source.CryptoTensorsError("ERR_CT_POLICY_DENIED", "refused"), log);
    expect([s.code, s.details, s.metadata.get("ct-error-code")[0]]).toEqual([status.PERMISSION_DENIED, "refused", "ERR_CT_POLICY_DENIED"]);
    const lookalike = Object.assign(new Error("/secret/path"), { name: "CryptoTensorsError", code: "ERR_CT_POLICY_DENIED" });
    expect(errorToStatus(lookalike, log)).toMatchObject({ code: status.INTERNAL, details: "internal error" });
  });

  it("ERR_CT_IO for a missing path is NOT_FOUND", () => {
    const enoent = Object.assign(new Error("no such file"), { code: "ENOENT" });
    expect(errorToStatus(new CryptoTensorsError("ERR_CT_IO", "cannot open", { cause: enoent }), log).code).toBe(status.NOT_FOUND);
  });

  it("maps the sidecar's own codes", () => {
    const cases = [
      ["ERR_CT_UNAUTHENTICATED", status.UNAUTHENTICATED],
      ["ERR_CT_BAD_REQUEST", status.INVALID_ARGUMENT],
      ["ERR_CT_MODEL_NOT_OPEN", status.NOT_FOUND],
      ["ERR_CT_INTERNAL", status.INTERNAL],
    ] as const;
    for (const [code, want] of cases) {
      const s = errorToStatus(new SidecarError(code, "m"), log);
      expect([s.code, s.metadata.get("ct-error-code")[0]]).toEqual([want, code]);
    }
  });

  it('hides anything else behind INTERNAL "internal error", logging the cause', () => {
    logged.length = 0;
    const secret = new TypeError("boom: /secret/path", { cause: new Error("deeper") });
    const s = errorToStatus(secret, log, { rpc: "Load" });
    expect(s).toMatchObject({ code: status.INTERNAL, details: "internal error" });
    expect(s.metadata.get("ct-error-code")).toEqual(["ERR_CT_INTERNAL"]);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: "error",
      event: "rpc.internal_error",
      fields: { rpc: "Load", error: "boom: /secret/path", cause: { error: "deeper" } },
    });
  });

  it("shutdown is UNAVAILABLE without a code, like an unreachable sidecar", () => {
    const s = errorToStatus(new ShutdownError(), log);
    expect(s.code).toBe(status.UNAVAILABLE);
    expect(s.metadata.get("ct-error-code")).toEqual([]);
  });

  it("sends only codes the proto's ErrorCode enum names", () => {
    const names = protoErrorCodes();
    for (const code of SENT_ERROR_CODES) expect(names).toContain(code);
    expect(SENT_ERROR_CODES).toHaveLength(names.length - 1); // every code but ERROR_CODE_UNSPECIFIED
  });
});

describe("tokenMatches", () => {
  const token = "ab".repeat(32);
  it("accepts exactly one `Bearer <token>` value", () => {
    expect(tokenMatches(token, [`Bearer ${token}`])).toBe(true);
    expect(tokenMatches(token, [])).toBe(false);
    expect(tokenMatches(token, [`Bearer ${token}`, `Bearer ${token}`])).toBe(false);
    expect(tokenMatches(token, [`bearer ${token}`])).toBe(false);
    expect(tokenMatches(token, [`Bearer ${token.slice(1)}`])).toBe(false);
    expect(tokenMatches(token, [Buffer.from(`Bearer ${token}`)])).toBe(false);
  });
});

describe("defaultSocketPath", () => {
  it("$CTENSORS_SOCKET, else $XDG_RUNTIME_DIR/ctensors/sidecar.sock, else /tmp/ctensors-<uid>/sidecar.sock", () => {
    expect(defaultSocketPath({ CTENSORS_SOCKET: "/x/s.sock", XDG_RUNTIME_DIR: "/run/user/7" }, 7)).toBe("/x/s.sock");
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: "/run/user/7" }, 7)).toBe("/run/user/7/ctensors/sidecar.sock");
    expect(defaultSocketPath({ CTENSORS_SOCKET: "", XDG_RUNTIME_DIR: "" }, 7)).toBe("/tmp/ctensors-7/sidecar.sock");
    expect(defaultSocketPath({}, 1000)).toBe("/tmp/ctensors-1000/sidecar.sock");
  });
});
