// Child process for the transformers.js tests: runs a feature-extraction pipeline on a model, with or
// without the ctensors hook, and prints one JSON line {dims, data, loaded, fetches} or {error: {code, message}}.
// A child process gives every case a fresh transformers.js `env` and lets NODE_EXTRA_CA_CERTS apply.
// Usage: node run-pipeline.mjs '<json config>'
import { env, pipeline } from "@huggingface/transformers";

const cfg = JSON.parse(process.argv[2]);
const texts = cfg.texts ?? ["Hello secret world!", "the cat sat on the mat", "encrypted tensors in a browser app"];

// Baselines never cache; `fsCache: true` leaves transformers.js' default (a plaintext file cache) on.
if (!cfg.fsCache) env.useFSCache = false;
if (cfg.cacheDir) env.cacheDir = cfg.cacheDir;
if (cfg.localModelPath) {
  env.allowLocalModels = true;
  env.localModelPath = cfg.localModelPath;
  env.allowRemoteModels = false;
} else {
  env.allowLocalModels = false;
  env.allowRemoteModels = true;
  env.remoteHost = cfg.remoteHost;
}
let fetches = 0;
const realFetch = globalThis.fetch;
env.fetch = (url, init) => {
  fetches++;
  return realFetch(url, init);
};

try {
  let hook;
  if (cfg.hook) {
    const { installCryptoTensors } = await import("ctensors/transformers");
    hook = await installCryptoTensors(env, cfg.hook);
    if (cfg.expectFsCacheOff && env.useFSCache !== false) throw new Error("the hook left useFSCache on");
  }
  let out;
  const held = [];
  if (cfg.api === "auto") {
    // AutoTokenizer + AutoModel.from_pretrained instead of pipeline(): the raw last_hidden_state.
    const { AutoModel, AutoTokenizer } = await import("@huggingface/transformers");
    const tokenizer = await AutoTokenizer.from_pretrained(cfg.model);
    const model = await AutoModel.from_pretrained(cfg.model, { dtype: "fp32" });
    const result = await model(tokenizer(texts, { padding: true }));
    out = result.last_hidden_state;
  }
  for (let i = 0; i < (cfg.api === "auto" ? 0 : (cfg.repeat ?? 1)); i++) {
    const extractor = await pipeline("feature-extraction", cfg.model, { dtype: "fp32" });
    held.push(hook?.heldBytes ?? null); // the session exists: what the hook still holds
    out = await extractor(texts, { pooling: "mean", normalize: false });
    await extractor.dispose?.();
  }
  console.log(JSON.stringify({ dims: out.dims, data: Array.from(out.data), loaded: hook?.loaded ?? null, held, fetches }));
} catch (e) {
  console.log(JSON.stringify({ error: { code: e?.code ?? null, message: String(e?.message ?? e), name: e?.name ?? null } }));
}
