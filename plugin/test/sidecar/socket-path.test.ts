// The socket directory checks (src/socket-path.ts): what the refusal of a shared directory says.

import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { prepareSocketDir } from "../../src/sidecar/socket-path.js";

const root = mkdtempSync(join(tmpdir(), "ct-sockdir-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("prepareSocketDir", () => {
  it("refuses a shared (world-writable, sticky) directory without advising to chmod it", async () => {
    // Like /tmp: the advice must never be to change the mode of a directory others rely on.
    const shared = join(root, "shared");
    await prepareSocketDir(shared);
    chmodSync(shared, 0o1777);
    const err = await prepareSocketDir(shared).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    );
    // The library names no flag; the CLI adds its hint by code and option (cli/flag-hints.ts).
    expect(err).toMatchObject({ code: "ERR_CT_IO", option: "socket" });
    expect(err!.message).toMatch(/mode 0777/);
    expect(err!.message).not.toMatch(/chmod/);
    const { flagHint } = await import("../../dist/cli/flag-hints.js");
    expect(flagHint(err as never) ?? "").not.toMatch(/chmod/);
  });

  it("creates a missing directory with mode 0700", async () => {
    const fresh = join(root, "fresh", "deeper");
    await prepareSocketDir(fresh);
    await expect(prepareSocketDir(fresh)).resolves.toBeUndefined();
  });
});
