"""One place that runs the language model: decoder + LM head, as `generate` computes them.

The decoder is called directly (`model.get_decoder()`), skipping the multimodal wrapper, whose only
work — merging media embeddings and computing positions — prefill does itself. The LM head is
applied to the last position only where the family's forward supports `logits_to_keep` (what
`generate` asks for), else to every position like the family's forward does, so logits are
bit-identical to `generate`'s. transformers 5.24 takes `cache=` and returns `.cache`; 5.17 takes
`past_key_values=` and returns `.past_key_values`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch


class ModelForward:
    def __init__(self, model: Any) -> None:
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        self._cache_kwarg = "cache"
        if self.decoder is not None:  # None: an encode worker, which holds no language model
            params = inspect.signature(self.decoder.forward).parameters
            self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._last_only = "logits_to_keep" in inspect.signature(model.forward).parameters

    def __call__(self, cache: Any = None, **inputs: Any) -> tuple[torch.Tensor, Any]:
        """Run with a KV cache; returns the float32 logits of the last position `(batch, vocab)` and the
        cache the decoder used (a new one when `cache` is None)."""
        if self.decoder is None or self.head is None:
            raise RuntimeError("this worker holds no language model: its stage only encodes")
        if cache is not None:
            inputs[self._cache_kwarg] = cache
        out = self.decoder(use_cache=True, return_dict=True, **inputs)
        hidden = out.last_hidden_state
        logits = self.head(hidden[:, -1:] if self._last_only else hidden)[:, -1]
        used = getattr(out, "cache", None)
        if used is None:
            used = out.past_key_values
        return logits.to(dtype=torch.float32, copy=True), used
