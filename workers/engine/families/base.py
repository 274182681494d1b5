"""The adapter interface one model family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from queues.checkpoint import FamilySpec
from queues.messages import EncodedMeta
from queues.types import Modality
from workers.engine.base import EncodedItem
from workers.media.types import LoadedMedia


class Family(ABC):
    """The torch side of one family (`spec` is what config.json says of it): an instance wraps a
    loaded model and processor and does the family-specific work."""

    spec: ClassVar[FamilySpec]
    # Module paths of the media tower (what encode runs) and of the language model (prefill, decode).
    tower: ClassVar[tuple[str, ...]]
    language: ClassVar[tuple[str, ...]] = ("model.language_model", "lm_head")

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: torch.device,
        dtype: torch.dtype,
        placeholder_ids: dict[Modality, int],
    ) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.placeholder_ids = placeholder_ids  # the token each media item's placeholder uses

    @abstractmethod
    def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        """Embeddings `(num_tokens, hidden)` of each item, in order, in one batch per modality."""

    def prefill_positions(
        self, input_ids: torch.Tensor, metas: list[EncodedMeta]
    ) -> tuple[torch.Tensor, int]:
        """Position ids for the expanded prompt `(tokens,)`, shaped for the model, and the rope delta."""
        return torch.arange(input_ids.shape[0], device=self.device)[None, :], 0

    def decode_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Position ids for one decode step from each row's position `(rows,)`."""
        return positions[:, None]


def describe(embedding: torch.Tensor, modality: Modality, content_hash: str, **extra: Any) -> EncodedItem:
    """Pair an item's embedding with its metadata (token count, dtype, shape and family extras)."""
    embedding = embedding.contiguous()
    meta = EncodedMeta(
        modality=modality,
        num_tokens=embedding.shape[0],
        content_hash=content_hash,
        dtype=str(embedding.dtype).removeprefix("torch."),
        shape=list(embedding.shape),
        **extra,
    )
    return embedding, meta
