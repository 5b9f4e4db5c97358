// The benchmark's parts, in run order. A part is { name, title, run(ctx) → { rows, notes? } };
// later milestones add theirs here. `--only` picks by name; DEFAULT_PARTS run without it (vllm: opt-in,
// several minutes of real vLLM runs).
import baseline from "./baseline.mjs";
import breakdown from "./breakdown.mjs";
import codec from "./codec.mjs";
import engine from "./engine.mjs";
import alloc from "./alloc.mjs";
import rss from "./rss.mjs";
import sidecar from "./sidecar.mjs";
import release from "./release.mjs";
import transformersjs from "./transformersjs.mjs";
import vllm from "./vllm.mjs";

export const PARTS = [baseline, codec, engine, breakdown, alloc, sidecar, release, rss, transformersjs, vllm];
export const DEFAULT_PARTS = ["baseline", "codec", "engine", "sidecar", "release"];
