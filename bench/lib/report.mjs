// Rendering: the results table, machine facts, a generated reading of the numbers, and the update
// of one marked section of bench/RESULTS.md (other sections and hand-written text are kept).

import { existsSync, readFileSync, writeFileSync } from "node:fs";

const f = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? "—" : x.toFixed(d));
const ratio = (x) => (x === null || x === undefined ? "—" : `${x.toFixed(2)}×`);

// Table columns by name; a part may return `columns` (a list of names, or of [header, cell(row)] pairs for
// a column of its own) to replace DEFAULT_COLUMNS.
const COLUMNS = {
  op: ["operation", (r) => r.op],
  seconds: ["s (median)", (r) => (r.seconds === null ? "—" : `${f(r.seconds)}${r.n > 1 ? ` (n=${r.n})` : ""}`)],
  range: ["min–max s", (r) => (r.seconds === null || r.n < 2 ? "" : `${f(r.minSeconds)}–${f(r.maxSeconds)}`)],
  gbps: ["GB/s", (r) => f(r.gbps)],
  openssl1: ["÷ openssl 1 core", (r) => ratio(r.vsOpenssl1)],
  openssl2: ["÷ openssl -multi 2", (r) => ratio(r.vsOpenssl2)],
  baseline: ["÷ baseline", (r) => ratio(r.vsBaseline)],
  reference: ["÷ reference", (r) => ratio(r.vsReference)],
  cpu: ["CPU/wall", (r) => f(r.cpuPerWall)],
  peak: ["peak RSS MiB (process)", (r) => f(r.peakRssMiB, 0)],
  opPeak: ["peak RSS MiB (op) / at start", (r) => (r.opPeakRssMiB === null ? "—" : `${f(r.opPeakRssMiB, 0)} / ${f(r.rssStartMiB, 0)}`)],
  clientPeak: ["client peak RSS MiB (process)", (r) => f(r.peakRssMiB, 0)],
  sidecarPeak: ["sidecar peak RSS MiB", (r) => f(r.sidecarPeakRssMiB, 0)],
  shmPeak: ["/dev/shm peak MiB", (r) => f(r.shmPeakMiB, 0)],
};
export const DEFAULT_COLUMNS = ["op", "seconds", "range", "gbps", "openssl1", "openssl2", "reference", "cpu", "peak", "opPeak"];

export function renderTable(rows, columns = DEFAULT_COLUMNS) {
  const cols = columns.map(
    (c) =>
      (Array.isArray(c) ? c : COLUMNS[c]) ??
      (() => {
        throw new Error(`unknown table column ${c}`);
      })(),
  );
  const lines = [`| ${cols.map(([h]) => h).join(" | ")} |`, `|${cols.map((_, i) => (i === 0 ? ":--" : "--:")).join("|")}|`];
  for (const r of rows) lines.push(`| ${cols.map(([, cell]) => cell(r)).join(" | ")} |`);
  return lines.join("\n");
}

export function renderFacts(m) {
  return [
    `- date: ${m.date}`,
    `- CPU: ${m.cpu} — nproc ${m.nproc}; flags: ${m.cpuFlags}; RAM ${m.memGiB} GiB; ${m.kernel}`,
    `- Node ${m.node} (its OpenSSL ${m.nodeOpenssl}); system ${m.systemOpenssl ?? "openssl: not found"}`,
    `- Python ${m.python ?? "—"}, torch ${m.torch ?? "—"}, safetensors ${m.safetensors ?? "—"}, cryptotensors ${m.cryptotensors ?? "—"}`,
    `- work dir ${m.workDir} (file system: ${m.workFs ?? "?"})`,
    `- memory prefault: ${m.prefault ?? "—"}`,
    ...(m.hugePages
      ? [
          `- huge pages for ${m.hugePages.dir} regions: ${m.hugePages.used ? "used" : "**absent**"} (tmpfs mount huge=${m.hugePages.mountHuge}, ` +
            `shmem_enabled ${m.hugePages.shmemEnabled}, hugetlb pages reserved ${m.hugePages.hugetlbPages}); every region page is ${m.hugePages.used ? "a 2 MiB folio where it fits" : "4 KiB"}`,
        ]
      : []),
    ...(m.load ? [`- ${m.load}`] : []),
  ].join("\n");
}

/** A few sentences computed from the rows (whatever parts ran). */
export function renderReading(byId, extra = {}) {
  const g = (id) => byId.get(id);
  const out = [];
  const o1 = g("openssl-enc-1"),
    o2 = g("openssl-enc-2"),
    d1 = g("openssl-dec-1"),
    mc = g("memcpy");
  if (o1 && o2) {
    out.push(
      `Ceiling: openssl AES-256-GCM on 2 MiB buffers does ${f(o1.gbps)} GB/s on one core, ${f(o2.gbps)} GB/s with -multi 2 (${f(o2.gbps / o1.gbps)}× scaling)${d1 ? `; decryption ${f(d1.gbps)} GB/s on one core` : ""}${mc ? `; memcpy runs at ${f(mc.gbps)} GB/s` : ""}.`,
    );
  }
  const e = g("ours-encrypt"),
    ed = g("ours-encrypt-data");
  if (e) {
    let s = `encryptFile: ${f(e.gbps)} GB/s end to end (${ratio(e.vsOpenssl1)} openssl single core, ${ratio(e.vsOpenssl2)} of -multi 2), CPU/wall ${f(e.cpuPerWall)}`;
    if (ed)
      s += `; the data phase alone runs at ${f(ed.gbps)} GB/s and the final header write + fsync + rename take ${f(e.seconds - ed.seconds)} s of ${f(e.seconds)} s (${f((100 * (e.seconds - ed.seconds)) / e.seconds, 0)} %)`;
    out.push(`${s}.`);
  }
  const dm = g("ours-decrypt-mem"),
    df = g("ours-decrypt-file"),
    dfd = g("ours-decrypt-file-data");
  if (dm)
    out.push(
      `Decrypt to memory: ${f(dm.gbps)} GB/s (${ratio(dm.vsOpenssl1)} openssl single-core decryption).${df ? ` decryptFile to disk: ${f(df.gbps)} GB/s${dfd ? `, of which fsync+rename ${f(df.seconds - dfd.seconds)} s` : ""}.` : ""}`,
    );
  const rs = g("ref-save"),
    rsf = g("ref-save-fsync"),
    rl = g("ref-load");
  if (rs && e) {
    out.push(
      `Against the reference (ratio = our GB/s ÷ theirs, >1 = we are faster): encrypt ${ratio(e.vsReference)} with both sides fsyncing (${f(e.gbps)} vs ${f(rsf.gbps)} GB/s)` +
        `${ed ? `, ${ratio(ed.vsReference)} comparing our data phase with save_file without fsync (${f(ed.gbps)} vs ${f(rs.gbps)} GB/s)` : ""}; ` +
        `decrypting load ${ratio(dm?.vsReference)} (${f(dm?.gbps)} vs ${f(rl?.gbps)} GB/s). ` +
        `Peak RSS during the operation: reference save_file ${f(rs.opPeakRssMiB, 0)} MiB (from ${f(rs.rssStartMiB, 0)} MiB at its start), reference load ${f(rl?.opPeakRssMiB, 0)} MiB; ours ${f(e.opPeakRssMiB, 0)} MiB (encrypt) and ${f(dm?.opPeakRssMiB, 0)} MiB (decrypt to memory). CPU/wall: reference load ${f(rl?.cpuPerWall)}, ours ${f(dm?.cpuPerWall)}.`,
    );
  }
  const bd = ["bd-read", "bd-seal", "bd-seal-hot", "bd-open", "bd-write", "bd-fsync"].map(g);
  if (bd.every(Boolean)) {
    const [read, seal, hot, open, write, fsync] = bd;
    const perGiB = (r) => 2 ** 30 / (r.gbps * 1e9);
    out.push(
      `Components, seconds per GiB: read ${f(perGiB(read), 3)}, sealInto ${f(perGiB(seal), 3)} (${f(seal.gbps)} GB/s = ${ratio(seal.vsOpenssl1)} openssl; ${f(hot.gbps)} GB/s cache-hot), openInto ${f(perGiB(open), 3)}, write ${f(perGiB(write), 3)} (min–max ${f((write.minSeconds * 2 ** 30) / write.bytes, 3)}–${f((write.maxSeconds * 2 ** 30) / write.bytes, 3)}), fsync ${f(perGiB(fsync), 3)}. ` +
        `read + sealInto + write + fsync = ${f(perGiB(read) + perGiB(seal) + perGiB(write) + perGiB(fsync), 3)} s/GiB${e ? ` against ${f(perGiB(e), 3)} s/GiB measured for encryptFile` : ""}.`,
    );
  }
  const ae = g("alloc-encrypt-default"),
    at = g("alloc-encrypt-tuned"),
    ad = g("alloc-decrypt-default"),
    adt = g("alloc-decrypt-tuned"),
    ai = g("alloc-into-default"),
    ait = g("alloc-into-tuned");
  if (ae && at) {
    out.push(
      `Allocation experiments (same package code): fixing glibc's malloc thresholds by environment takes encrypt ${f(ae.gbps)} → ${f(at.gbps)} GB/s (${ratio(at.gbps / ae.gbps)}) and readTensor decryption ${f(ad.gbps)} → ${f(adt.gbps)} GB/s (${ratio(adt.gbps / ad.gbps)}); ` +
        `readTensorInto one reused buffer reaches ${f(ai.gbps)} GB/s (${f(ait.gbps)} GB/s tuned, ${ratio(ait.gbps / ad.gbps)} readTensor with defaults)${ait.vsReference ? `, ${ratio(ait.vsReference)} the reference's load` : ""}.`,
    );
  }
  const re = g("rss-encrypt"),
    rm = g("rss-decrypt-mem"),
    ri = g("rss-decrypt-into"),
    rf = g("rss-decrypt-file"),
    rr = g("rss-ref-load");
  if (re) {
    const L = extra.largestTensorMiB;
    out.push(
      `Bounded memory at ${extra.sizeMiB} MiB: peak RSS of the whole node process ${f(re.peakRssMiB, 0)} MiB encrypting (independent of model and tensor size: 256 KiB per thread with the native engine, 16 MiB pieces with JS), ` +
        `${f(rm?.peakRssMiB, 0)} MiB decrypting to memory with readTensor${L ? ` (${f(rm.peakRssMiB / L, 1)}× the largest tensor, ${f(L, 1)} MiB: each call returns a new buffer and several wait for garbage collection)` : ""}, ` +
        `${f(ri?.peakRssMiB, 0)} MiB with readTensorInto into one reused buffer (the floor: one largest tensor + the process), ${f(rf?.peakRssMiB, 0)} MiB for decryptFile (it decrypts into one reused buffer too)` +
        `${rr ? `. The reference's load peaks at ${f(rr.peakRssMiB, 0)} MiB for the same file` : ""}.`,
    );
  }
  const en = g("engine-native-fresh"),
    ent = g("engine-native-touched"),
    em = g("engine-native-mmap-fresh"),
    emt = g("engine-native-mmap-touched"),
    ej = g("engine-js-fresh"),
    ejt = g("engine-js-touched");
  if (en && ej) {
    out.push(
      `Decrypt-only into a /dev/shm region: native engine ${f(en.gbps)} GB/s into fresh pages, ${f(ent.gbps)} GB/s into touched pages (${ratio(ent.vsOpenssl2)} openssl -multi 2 decryption, CPU/wall ${f(en.cpuPerWall)}); ` +
        `with the file and the region mmapped instead of pread/pwrite ${f(em?.gbps)} / ${f(emt?.gbps)} GB/s (page-table work for every 4 KiB page of both mappings); JS engine ${f(ej.gbps)} / ${f(ejt?.gbps)} GB/s (${f(en.gbps / ej.gbps)}× / ${f(ent.gbps / ejt.gbps)}× slower than native).`,
    );
  }
  const sp = g("sc-plain-clone"),
    sr = g("sc-resident-clone"),
    sz = g("sc-resident-zc"),
    sd = g("sc-stream-default"),
    ss = g("sc-stream-small"),
    sref = g("sc-ref-load"),
    sx = extra.sidecar;
  if (sp && sr && sx) {
    const st = sx.steps,
      side = sx.sidecarSide,
      mibw = (b) => f(b / 2 ** 20, 0);
    const pct = (x) => f((100 * x) / st.seconds, 0);
    out.push(
      `Sidecar, resident: load_file + clone of every tensor runs at ${f(sr.gbps)} GB/s, ${ratio(sr.vsBaseline)} a plain safetensors load + clone (${f(sp.gbps)} GB/s)${sref ? ` and ${ratio(sr.vsReference)} the reference's decrypting load (${f(sref.gbps)} GB/s)` : ""}; ` +
        `the zero-copy load_file alone takes ${f(sz.seconds)} s of the ${f(sr.seconds)} s, so the clone adds ${f(sr.seconds - sz.seconds)} s. ` +
        `Streaming (copy=True) ${f(sd?.gbps)} GB/s with the default window, ${f(ss?.gbps)} GB/s with 64 MiB (in effect ${mibw(sx.windows.small)} MiB: raised to the largest tensor).`,
    );
    out.push(
      `Where the time goes: the sidecar logs ${side.resident ? `${side.resident.ms} ms (${side.resident.gbps} GB/s)` : "—"} for the resident load itself. For comparison, the JS engine's per-tensor loop replayed with the same code (sidecar-steps, CTENSORS_ENGINE=js) takes ${f(st.seconds)} s: ` +
        `readTensorInto ${f(st.decrypt)} s (${pct(st.decrypt)} %; of which reading the page-cached ciphertext ≈ ${f(st.read)} s, so AES-GCM openInto on the main thread ≈ ${f(st.decrypt - st.read)} s = ${f(st.bytes / (st.decrypt - st.read) / 1e9)} GB/s), ` +
        `pwrite into /dev/shm ${f(st.write)} s (${pct(st.write)} %, ${f(st.bytes / st.write / 1e9)} GB/s: first touch of new tmpfs pages), zeroing the scratch ${f(st.zero)} s, open ${f(st.open)} s; CPU/wall ${f(st.cpuPerWall)}: every step waits for the previous one, on one core. ` +
        `The client side (gRPC, mapping, building views) is the rest of load_file: ${f(sz.seconds)} s against the sidecar's ${side.resident ? f(side.resident.ms / 1000) : "—"} s.`,
    );
    out.push(
      `Memory at ${f(sx.dataMiB, 0)} MiB of tensors (largest ${f(sx.largestMiB, 0)} MiB): sidecar peak RSS ${f(sr.sidecarPeakRssMiB, 0)} MiB resident, ${f(sd?.sidecarPeakRssMiB, 0)} / ${f(ss?.sidecarPeakRssMiB, 0)} MiB streaming (default / 64 MiB window) (native engine: 256 KiB of buffer per thread; the JS engine holds a scratch buffer of the largest tensor); ` +
        `/dev/shm peak ${f(sr.shmPeakMiB, 0)} MiB resident (the whole model), ${f(sd?.shmPeakMiB, 0)} MiB streaming default (bound ${mibw(sx.windows.def * sx.windows.count)} MiB), ${f(ss?.shmPeakMiB, 0)} MiB with 64 MiB (bound ${mibw(sx.windows.small * sx.windows.count)} MiB). ` +
        `Client peak RSS ${f(sr.peakRssMiB, 0)} MiB resident + clone (shared pages touched by the clone count too), ${f(sd?.peakRssMiB, 0)} MiB streaming, against ${f(sp.peakRssMiB, 0)} MiB for the plain load + clone.`,
    );
  }
  return out.map((s) => `- ${s}`).join("\n");
}

/**
 * Issue 7's targets, from the rows of this run (only those whose rows were measured). End to end =
 * ctensors.load_file alone: its tensors are complete in memory (zero-copy views of the decrypted
 * /dev/shm region), which is what the baseline's load_file + clone gives; "+ clone" is shown too.
 */
export function renderTargets(byId) {
  const g = (id) => byId.get(id);
  const lines = [];
  const row = (what, value, target, ok, detail) =>
    lines.push(`| ${what} | ${value} | ${target} | ${ok === null ? "—" : ok ? "met" : "**missed**"} | ${detail} |`);
  const zc = g("sc-resident-zc"),
    cl = g("sc-resident-clone"),
    ref = g("sc-ref-load"),
    base = g("sc-plain-clone");
  const zc1 = g("sc-resident-v1-zc"),
    ref1 = g("sc-ref-load-v1");
  if (zc && ref)
    row(
      "end-to-end load ÷ reference load_file (v2 file), throughput",
      f(zc.gbps / ref.gbps) + "×",
      "≥ 1.5×",
      zc.gbps / ref.gbps >= 1.5,
      `${f(zc.gbps)} vs ${f(ref.gbps)} GB/s; with a clone of every tensor ${f(cl.gbps / ref.gbps)}×${zc1 && ref1 ? `; v1 file ${f(zc1.gbps / ref1.gbps)}× (${f(zc1.gbps)} vs ${f(ref1.gbps)} GB/s)` : ""}`,
    );
  if (zc && base)
    row(
      "end-to-end load time ÷ plain load_file + clone",
      f(zc.seconds / base.seconds) + "×",
      "≤ 1.3×",
      zc.seconds / base.seconds <= 1.3,
      `${f(zc.seconds)} vs ${f(base.seconds)} s; with our own clone as well ${f(cl.seconds / base.seconds)}×`,
    );
  const tch = g("sc-resident-touch");
  if (tch && ref)
    row(
      "issue 16: resident load_file, every page touched by the client ÷ reference load_file (v2), throughput",
      f(tch.gbps / ref.gbps) + "×",
      "≥ 1.5× (≥ 1.0× at least)",
      tch.gbps / ref.gbps >= 1.5,
      `${f(tch.gbps)} vs ${f(ref.gbps)} GB/s; CPU seconds per GiB, all processes, in the notes of the sidecar table`,
    );
  const htch = g("sc-resident-huge-touch");
  if (htch && ref)
    row(
      "issue 16: the same with the regions on hugetlbfs (serve --shm-dir, reserved huge pages) ÷ reference load_file (v2), throughput",
      f(htch.gbps / ref.gbps) + "×",
      "≥ 1.5× (≥ 1.0× at least)",
      htch.gbps / ref.gbps >= 1.5,
      `${f(htch.gbps)} vs ${f(ref.gbps)} GB/s`,
    );
  const ea = g("engine-native-alloc");
  const o2d = g("openssl-dec-2");
  if (ea && o2d)
    row(
      "issue 16: decrypt-only into regions as a load uses them (allocation included) ÷ openssl speed -decrypt -multi 2",
      f(ea.gbps / o2d.gbps) + "×",
      "≥ 0.70×",
      ea.gbps / o2d.gbps >= 0.7,
      `${f(ea.gbps)} vs ${f(o2d.gbps)} GB/s`,
    );
  const eh = g("engine-native-huge-alloc");
  if (eh && o2d)
    row(
      "issue 16: the same into a region on hugetlbfs (serve --shm-dir, reserved huge pages) ÷ openssl speed -decrypt -multi 2",
      f(eh.gbps / o2d.gbps) + "×",
      "≥ 0.70×",
      eh.gbps / o2d.gbps >= 0.7,
      `${f(eh.gbps)} vs ${f(o2d.gbps)} GB/s`,
    );
  const et = g("engine-native-touched"),
    ef = g("engine-native-fresh"),
    o2 = g("openssl-dec-2");
  if (et && o2)
    row(
      "decrypt-only (sidecar engine into /dev/shm) ÷ openssl speed -decrypt -multi 2",
      f(et.gbps / o2.gbps) + "×",
      "≥ 0.70×",
      et.gbps / o2.gbps >= 0.7,
      `${f(et.gbps)} vs ${f(o2.gbps)} GB/s into already-touched pages; into fresh pages ${f(ef.gbps)} GB/s = ${f(ef.gbps / o2.gbps)}×`,
    );
  const vp = g("vllm-plain"),
    vs = g("vllm-ours-stream");
  if (vp && vs)
    row(
      "issue 16: vLLM load_weights time, --load-format cryptotensors (default config) ÷ vLLM's own load of the plaintext folder",
      f(vs.seconds / vp.seconds) + "×",
      "≤ 1.2×, tokens equal",
      vs.seconds / vp.seconds <= 1.2 && vs.tokensEqual === true,
      `${f(vs.seconds)} vs ${f(vp.seconds)} s, ${f(vs.bytes / 2 ** 30)} GiB; greedy tokens equal: ${vs.tokensEqual ? "yes" : "**no**"}; CPU s/GiB all processes ${f(vs.cpuAllPerGiB)} vs ${f(vp.cpuAllPerGiB)}`,
    );
  const e = g("ours-encrypt"),
    ed = g("ours-encrypt-data"),
    rs = g("ref-save"),
    rsf = g("ref-save-fsync");
  if (e && rsf)
    row(
      "encrypt ÷ reference save_file (encrypting)",
      f(e.gbps / rsf.gbps) + "×",
      "≥ 2×",
      e.gbps / rsf.gbps >= 2,
      `${f(e.gbps)} vs ${f(rsf.gbps)} GB/s, both including fsync; data phase vs save_file without fsync ${f(ed.gbps / rs.gbps)}×`,
    );
  for (const id of ["sc-stream-default", "sc-stream-small"]) {
    const r = g(id);
    if (r?.sidecarPeakRssMiB)
      row(
        `streaming: sidecar peak RSS (${id === "sc-stream-default" ? "default window" : "64 MiB window"})`,
        `${f(r.sidecarPeakRssMiB, 0)} MiB`,
        "≤ 512 MiB",
        r.sidecarPeakRssMiB <= 512,
        `/dev/shm peak ${f(r.shmPeakMiB, 0)} MiB; ${f(r.bytes / 2 ** 20, 0)} MiB model`,
      );
  }
  if (!lines.length) return "";
  return [
    "Targets of issues 7 and 16 (ratios from this run):",
    "",
    "| target | this run | goal | | detail |",
    "|:--|--:|:--|:--|:--|",
    ...lines,
  ].join("\n");
}

export function renderSection({ key, command, facts, tables, reading, preamble }) {
  const parts = [
    `<!-- bench:${key}:begin -->`,
    `## ${key === "main" ? "Main run" : key === "rss" ? "Bounded memory run" : `Run: ${key}`}`,
    "",
    `Command: \`${command}\``,
    "",
    preamble,
    "",
    "Machine:",
    "",
    renderFacts(facts),
  ];
  for (const t of tables) {
    parts.push("", `### ${t.title}`, "", renderTable(t.rows, t.columns));
    if (t.notes?.length) parts.push("", ...t.notes.map((n) => `- ${n}`));
  }
  parts.push("", "### Reading", "", reading, "", `<!-- bench:${key}:end -->`);
  return parts.join("\n");
}

const HEAD = `# Benchmark results

Generated by \`bench/run.mjs\` (see bench/README.md). Each section below is rewritten only by a run
of its kind (\`--write\`); text outside the marked sections is kept. Speeds are GB/s with
GB = 10^9 bytes of tensor data; ratios are our throughput ÷ the baseline's throughput measured in
the same run, on the same machine and files (so >1 means faster than the baseline).
`;

export function updateResultsFile(path, key, section) {
  let text = existsSync(path) ? readFileSync(path, "utf8") : HEAD;
  const k = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); // keys like "baseline+sidecar" hold regex characters
  const re = new RegExp(`<!-- bench:${k}:begin -->[\\s\\S]*?<!-- bench:${k}:end -->`);
  text = re.test(text) ? text.replace(re, () => section) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(path, text);
}
