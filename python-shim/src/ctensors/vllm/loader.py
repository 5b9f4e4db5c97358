"""The vLLM model loader for `--load-format cryptotensors`. Imports vLLM: only ever imported by
`ctensors.vllm.register()` (vLLM's plugin hook), never by `import ctensors`.
"""

from __future__ import annotations

import time

from torch import nn
from vllm.config import ModelConfig
from vllm.config.load import LoadConfig
from vllm.logger import init_logger
from vllm.model_executor.model_loader.base_loader import BaseModelLoader

from ._config import LoaderConfig
from ._weights import CheckpointWeights, check_loaded

# Under "vllm." so that vLLM's logging configuration (handlers, VLLM_LOGGING_LEVEL) applies.
logger = init_logger("vllm.ctensors")


class CryptoTensorsModelLoader(BaseModelLoader):
    """Loads weights from the ctensors sidecar (decrypted into shared memory, never to disk).

    vLLM builds the model from `--model` (config.json, tokenizer: plaintext) as usual; this loader
    never reads weight files. Each tensor-parallel rank runs `load_weights` in its own process and
    is a client of the same sidecar; every rank receives whole tensors and vLLM's weight loaders
    keep the rank's shard.
    """

    def __init__(self, load_config: LoadConfig) -> None:
        super().__init__(load_config)
        self.config = LoaderConfig.parse(load_config.model_loader_extra_config)

    def _source(self, model_config: ModelConfig) -> str:
        return self.config.model_source(model_config.model, getattr(model_config, "revision", None))

    def download_model(self, model_config: ModelConfig) -> None:
        # The sidecar fetches, verifies and evaluates the policy when it opens the model: open and
        # close it, so that a refusal shows up here, before any memory is reserved.
        with CheckpointWeights(self._source(model_config), self.config):
            pass

    def load_weights(self, model: nn.Module, model_config: ModelConfig) -> None:
        source = self._source(model_config)
        started = time.perf_counter()
        with CheckpointWeights(source, self.config) as checkpoint:
            # On a GPU, tensors go there through pinned memory here, not as pageable host copies in vLLM.
            device = next((p.device for p in model.parameters()), None)
            weights = checkpoint.weights(device)
            try:
                loaded = model.load_weights(weights)  # type: ignore[operator]  # vLLM models define it; torch types nn.Module attributes as Tensor | Module
            finally:
                weights.close()
            total = checkpoint.total_bytes
            served = len(checkpoint.yielded)
        logger.info(
            "cryptotensors: loaded %d tensors (%.1f MiB) from %s through the sidecar in %.2f s (%s mode)",
            served,
            total / 2**20,
            source,
            time.perf_counter() - started,
            self.config.mode,
        )
        if model_config.quantization is not None:
            # Quantized models legitimately have parameters that no checkpoint tensor fills (scales
            # computed at load time): vLLM's own loader does not check them either.
            return
        check_loaded(source, (name for name, _ in model.named_parameters()), loaded, strict=self.config.strict)
