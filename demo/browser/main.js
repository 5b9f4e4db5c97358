// The demo page's script. Query parameters: model (Hub-style id, default acme/secret-bert),
// mode=encrypted|plain (plain: no hook, for the plaintext baseline), keys (JWK-set URL, default /keys/jwks.json). Paths are those served by
// scripts/browser-demo.mjs: /lib (transformers.js, ctensors), /ort (onnxruntime-web wasm), /hub, /keys.
import { env, pipeline } from "/lib/transformers.js";
import { installCryptoTensors } from "/lib/ctensors-transformers.web.js";

const params = new URLSearchParams(location.search);
const model = params.get("model") ?? "acme/secret-bert";
const mode = params.get("mode") ?? "encrypted";
const keys = params.get("keys") ?? "/keys/jwks.json"; // a JWK set with the master key and the publisher's public key
const texts = ["Hello secret world!", "the cat sat on the mat", "encrypted tensors in a browser app"];
const status = document.getElementById("status");
const info = document.getElementById("info");

function show(label, value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  info.append(dt, dd);
}

try {
  env.allowLocalModels = false;
  env.remoteHost = `${location.origin}/hub/`;
  env.backends.onnx.wasm.wasmPaths = `${location.origin}/ort/`; // onnxruntime-web from node_modules, no CDN
  env.backends.onnx.wasm.numThreads = 1;
  let hook = null;
  if (mode === "encrypted") {
    // In a real app the key set comes from an authenticated key service; see docs/transformersjs.md.
    hook = await installCryptoTensors(env, { key: keys, trust: keys });
  }
  const extractor = await pipeline("feature-extraction", model, { dtype: "fp32", device: "wasm" });
  const out = await extractor(texts, { pooling: "mean", normalize: false });
  const dims = out.dims;
  const data = Array.from(out.data);
  show("model", model);
  show("mode", mode === "encrypted" ? "encrypted (CryptoTensors, verified and decrypted in memory)" : "plaintext baseline");
  if (hook) show("decrypted", hook.loaded.map((l) => `${l.source} — ${l.tensors} tensors, signer ${l.signer}`).join("; "));
  show("output", `${dims.join(" × ")} float32`);
  const tbody = document.querySelector("#out tbody");
  texts.forEach((t, i) => {
    const row = data
      .slice(i * dims[1], i * dims[1] + 8)
      .map((v) => v.toFixed(5))
      .join("  ");
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td class="vec"></td>`;
    tr.children[0].textContent = t;
    tr.children[1].textContent = row + "  …";
    tbody.append(tr);
  });
  status.textContent = "done";
  status.className = "done";
  window.__result = { dims, data, loaded: hook?.loaded ?? null };
} catch (e) {
  status.textContent = `error ${e?.code ?? ""}: ${e?.message ?? e}`;
  status.className = "error";
  window.__result = { error: { code: e?.code ?? null, message: String(e?.message ?? e) } };
}
