"""The engine interface the stage workers program against, and the values it exchanges.

Both the transformers engine and the mock engine implement `Engine`; an sglang backend would too.
All methods are called from the asyncio event loop; implementations keep torch work off it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from queues.messages import DecodeState, EncodedMeta, SamplingParams
from queues.types import FinishReason
from workers.engine.limits import EngineStats
from workers.engine.types import TokenOutput
from workers.media.types import LoadedMedia

if TYPE_CHECKING:  # model_info imports the family adapters, which use EncodedItem from here
    from workers.engine.model_info import ModelInfo

EncodedItem = tuple[torch.Tensor, EncodedMeta]  # embedding (num_tokens, hidden) and its description


__all__ = ["EncodedItem", "Engine", "FinishReason", "PrefillResult", "TokenOutput"]


@dataclass(frozen=True)
class PrefillResult:
    kv: list[torch.Tensor]  # one contiguous tensor per layer, layout on DecodeState
    state: DecodeState


class Engine(Protocol):
    """Encode / prefill / decode on one model. Safe to call concurrently from many asyncio tasks."""

    info: ModelInfo  # the checkpoint's tokenizer, chat template, generation defaults
    stats: EngineStats

    async def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        """Embeddings for each item, in order; concurrent calls are batched together."""
        ...

    async def prefill(
        self, prompt_ids: list[int], items: list[EncodedItem], sampling: SamplingParams
    ) -> PrefillResult:
        """Run the prompt (one placeholder token per media item, items in prompt order)."""
        ...

    def generate(
        self,
        request_id: str,
        kv: list[torch.Tensor],
        state: DecodeState,
        sampling: SamplingParams,
        *,
        stream: bool = True,
    ) -> AsyncGenerator[TokenOutput, None]:
        """Every generated token, starting with the one prefill sampled; the last has a
        finish_reason. With `stream=False` the tokens after the first may arrive all at the end (the
        caller wants only the whole answer). Closing the iterator early frees the sequence."""
        ...

    async def cancel(self, request_id: str) -> None:
        """Drop a sequence between decode steps (a no-op for unknown ids)."""
        ...

    async def close(self) -> None:
        """Stop background work; pending generate iterators end."""
        ...
