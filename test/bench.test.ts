// The benchmark harness's own plumbing (no timings are asserted: performance is reported as
// ratios by `npm run bench`, never tested against the clock).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
// @ts-expect-error plain .mjs module without types
import { dataSha256, llamaShapes, writeSyntheticModel } from "../bench/lib/model.mjs";
// @ts-expect-error plain .mjs module without types
import { renderTargets, updateResultsFile } from "../bench/lib/report.mjs";
// @ts-expect-error plain .mjs module without types
import { resolveRatios } from "../bench/lib/rows.mjs";
// @ts-expect-error plain .mjs module without types
import { DEFAULT_PARTS, PARTS } from "../bench/parts/index.mjs";
// @ts-expect-error plain .mjs module without types
import { loggedLoadSeconds, vllmReport } from "../bench/parts/vllm.mjs";
import { readHeader } from "../plugin/dist/index.js";

const root = join(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "ctensors-bench-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("bench model generator", () => {
  it.each([8, 64, 1024, 4096])("hits %i MiB within 0.1 %% with Llama tensor names", (mib) => {
    const m = llamaShapes(mib * 2 ** 20);
    expect(Math.abs(m.dataBytes - mib * 2 ** 20) / (mib * 2 ** 20)).toBeLessThan(0.001);
    const names = m.tensors.map((t: { name: string }) => t.name);
    expect(names).toContain("model.layers.0.self_attn.q_proj.weight");
    expect(names).toContain("model.layers.0.mlp.down_proj.weight");
    expect(names).toContain("lm_head.weight");
    expect([...names].sort()).toEqual(names); // canonical data order
  });

  it("writes a valid safetensors file whose data hash matches", async () => {
    const m = llamaShapes(4 * 2 ** 20);
    const path = join(work, "m.safetensors");
    const w = await writeSyntheticModel(path, m.tensors);
    const { header, crypto } = await readHeader(path);
    expect(crypto).toBeNull();
    expect(header.tensors.map((t) => t.name)).toEqual(m.tensors.map((t: { name: string }) => t.name));
    expect(header.dataBytes).toBe(m.dataBytes);
    expect(await dataSha256(path)).toBe(w.dataSha256);
  });
});

describe("bench RESULTS.md sections", () => {
  it("replaces only its own section and keeps other text", () => {
    const path = join(work, "RESULTS.md");
    writeFileSync(path, "# head\n\n<!-- bench:main:begin -->\nold\n<!-- bench:main:end -->\n\n## Notes\nmine\n");
    updateResultsFile(path, "main", "<!-- bench:main:begin -->\nnew $& $1\n<!-- bench:main:end -->");
    updateResultsFile(path, "rss", "<!-- bench:rss:begin -->\nrss\n<!-- bench:rss:end -->");
    const text = readFileSync(path, "utf8");
    expect(text).toContain("new $& $1");
    expect(text).not.toContain("old");
    expect(text).toContain("## Notes\nmine");
    expect(text).toContain("<!-- bench:rss:begin -->\nrss");
  });

  it("replaces a section whose key holds regex characters (baseline+sidecar-cold) instead of appending a second one", () => {
    const path = join(work, "RESULTS-plus.md");
    const section = (body: string) => `<!-- bench:baseline+sidecar-cold:begin -->\n${body}\n<!-- bench:baseline+sidecar-cold:end -->`;
    writeFileSync(path, "# head\n");
    updateResultsFile(path, "baseline+sidecar-cold", section("first"));
    updateResultsFile(path, "baseline+sidecar-cold", section("second"));
    const text = readFileSync(path, "utf8");
    expect(text.split("bench:baseline+sidecar-cold:begin")).toHaveLength(2);
    expect(text).toContain("second");
    expect(text).not.toContain("first");
  });
});

describe("bench runner", () => {
  it("runs the codec and rss parts end to end on a tiny model", () => {
    const out = execFileSync(
      process.execPath,
      ["bench/run.mjs", "--size-mib", "8", "--reps", "1", "--warmup", "0", "--only", "codec,rss", "--no-reference"],
      {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    expect(out).toContain("| ours: encryptFile");
    expect(out).toContain("decryptFile output verified equal to the plain model's tensor data: yes");
    expect(out).toMatch(/peak RSS of the whole node process \d+ MiB encrypting/);
  });

  // A tiny pass of the sidecar part (8 MiB, one repeat, no reference): the python ops, a sidecar per
  // mode under GNU time, the byte-for-byte check. Needs the .venv with the ctensors package.
  it.skipIf(!existsSync(join(root, ".venv", "bin", "python")))(
    "runs the sidecar part end to end on a tiny model",
    () => {
      const out = execFileSync(
        process.execPath,
        ["bench/run.mjs", "--size-mib", "8", "--reps", "1", "--only", "sidecar", "--no-reference"],
        {
          cwd: root,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      expect(out).toContain("| ours resident: ctensors.load_file + clone × all");
      expect(out).toContain("| ours streaming: stream(copy=True), window 64 MiB × 2");
      expect(out).toMatch(
        /loaded tensors verified equal to safetensors' load of the plain model \(separate untimed runs before the repeats\): yes/,
      );
      expect(out).toMatch(/sidecar peak RSS \d+ MiB resident/);
      expect(out).toContain("| ours resident, v1 file: ctensors.load_file (zero-copy views)");
      expect(out).toMatch(/loaded tensors verified .*: yes \(resident, resident \(v1 file\), stream/);
    },
    120_000,
  );

  it("runs the release part (headers-only check vs full re-hash) on a tiny model", () => {
    const out = execFileSync(process.execPath, ["bench/run.mjs", "--size-mib", "8", "--reps", "1", "--only", "release", "--no-reference"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 300_000,
    });
    expect(out).toContain("ours: verifyRelease (shard headers + small files' sha256)");
    expect(out).toContain("ours: verifyRelease --full-hash");
  }, 300_000);

  it("runs the engine part (decrypt-only: native, native mmap, JS) on a tiny model", () => {
    const out = execFileSync(process.execPath, ["bench/run.mjs", "--size-mib", "8", "--reps", "1", "--only", "engine"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(out).toContain("| native engine (pread → EVP → pwrite, 256 KiB pieces): fresh region (first touch)");
    expect(out).toContain("| JS engine (node:crypto per tensor + pwrite): fresh region (first touch)");
    expect(out).toMatch(/CPU seconds per GiB .*native \d+\.\d+ \/ \d+\.\d+/);
    expect(out).toMatch(/Decrypt-only into a \/dev\/shm region: native engine \d+\.\d+ GB\/s/);
  }, 120_000);

  it.skipIf(!existsSync(join(root, ".venv", "bin", "python")))(
    "runs the sidecar part in --streaming-only mode and reports the RSS target",
    () => {
      const out = execFileSync(
        process.execPath,
        ["bench/run.mjs", "--size-mib", "8", "--reps", "1", "--only", "sidecar", "--streaming-only", "--no-reference"],
        {
          cwd: root,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      expect(out).toContain("each tensor dropped, default window");
      expect(out).toMatch(/\| streaming: sidecar peak RSS \(default window\) \| \d+ MiB \| ≤ 512 MiB \| met \|/);
      expect(out).not.toContain("| ours resident");
    },
    120_000,
  );
});

// The vllm part's report from samples shaped as its children print them (a real run takes minutes of
// vLLM: `node bench/run.mjs --only vllm`); here only the arithmetic, the token check and the target row.
describe("bench vllm part", () => {
  const sample = (seconds: number, cpuSeconds: number, sidecarCpuSeconds: number, tokens: number[][], log: string) => ({
    result: { seconds, cpuSeconds, sidecarCpuSeconds, tokens, loadModelSeconds: seconds + 1, llmSeconds: seconds + 5 },
    maxRssKiB: 2048 * 1024,
    stdout: "",
    stderr: log,
    sidecarMaxRssKiB: 100 * 1024,
    shmPeakBytes: 512 * 2 ** 20,
  });
  const withLogged = (s: ReturnType<typeof sample>) => ({ ...s, logged: loggedLoadSeconds(s.stderr) });
  const args = { dataBytes: 2 ** 30, tensors: 66, sizeMiB: 1024, shapes: { hidden_size: 2048, num_hidden_layers: 7, vocab_size: 43256 } };
  const tokens = [[1, 2, 3]];

  it("is opt-in, and reads vLLM's and our loader's log lines", () => {
    expect(PARTS.map((p: { name: string }) => p.name)).toContain("vllm");
    expect(DEFAULT_PARTS).not.toContain("vllm");
    expect(loggedLoadSeconds("INFO 12-01 [default_loader.py:501] Loading weights took 1.09 seconds")).toBe(1.09);
    expect(loggedLoadSeconds("cryptotensors: loaded 66 tensors (1024.0 MiB) from /m through the sidecar in 2.50 s (streaming mode)")).toBe(
      2.5,
    );
    expect(loggedLoadSeconds("nothing")).toBeNull();
  });

  it("reports time ratios, CPU seconds of all processes and the target row; differing tokens miss the target", () => {
    const log = "cryptotensors: loaded 66 tensors (1024.0 MiB) from /m through the sidecar in 3.00 s (streaming mode)";
    const samples = {
      plain: [2, 4, 3].map((s) => withLogged(sample(s, s, 0, tokens, `Loading weights took ${s}.00 seconds`))),
      stream: [3, 3.3].map((s) => withLogged(sample(s, 2, 1.5, tokens, log))),
    };
    const { rows, notes, tokensEqual } = vllmReport(samples, args);
    expect(tokensEqual).toBe(true);
    expect(rows.map((r: { id: string }) => r.id)).toEqual(["vllm-plain", "vllm-ours-stream"]);
    const byId = resolveRatios(rows);
    const stream = byId.get("vllm-ours-stream");
    expect(stream.seconds).toBeCloseTo(3.15);
    expect(stream.vsBaseline).toBeCloseTo(3 / 3.15); // throughput ratio
    expect(stream.cpuAllPerGiB).toBeCloseTo(3.5);
    expect(stream.sidecarPeakRssMiB).toBe(100);
    expect(notes.join("\n")).toContain("stream 1.05× (goal ≤ 1.2×)");
    expect(notes.join("\n")).toContain("equal to the plain run's: yes");
    expect(renderTargets(byId)).toMatch(/\| issue 16: vLLM load_weights time.* \| 1\.05× \| ≤ 1\.2×, tokens equal \| met \|/);

    samples.stream[1].result.tokens = [[1, 2, 4]];
    const bad = vllmReport(samples, args);
    expect(bad.tokensEqual).toBe(false);
    expect(renderTargets(resolveRatios(bad.rows))).toMatch(
      /\| 1\.05× \| ≤ 1\.2×, tokens equal \| \*\*missed\*\* \| .*tokens equal: \*\*no\*\*/,
    );
  });
});
