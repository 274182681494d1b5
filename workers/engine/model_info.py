"""The workers' view of a checkpoint: the torch-free `Checkpoint` card, the family's torch adapter
class and the transformers tokenizer (which the detokenizer uses)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from queues.checkpoint import Checkpoint, GenerationDefaults, Message
from queues.types import Modality
from workers.engine.detokenizer import IncrementalDetokenizer
from workers.engine.families import Family, adapter_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    card: Checkpoint
    family_cls: type[Family]
    tokenizer: Any  # a transformers tokenizer

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelInfo:
        """Raises `UnsupportedModelError` (a ValueError naming the supported families) for other models."""
        card = Checkpoint.load(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(card.model_dir)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or backend.to_str() != card.tokenizer.to_str():
            log.warning(
                "transformers loads %s's tokenizer differently from its tokenizer.json; the front door "
                "tokenizes prompts with tokenizer.json as saved, so prompts may differ from "
                "apply_chat_template + tokenizer (save the tokenizer again with transformers to align them)",
                card.model_dir,
            )
        return cls(card=card, family_cls=adapter_for(card.family), tokenizer=tokenizer)

    @property
    def family(self) -> str:
        return self.card.family.name

    @property
    def modalities(self) -> frozenset[Modality]:
        return self.card.modalities

    @property
    def placeholder_ids(self) -> dict[Modality, int]:
        return self.card.placeholder_ids

    @property
    def generation(self) -> GenerationDefaults:
        return self.card.generation

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.card.eos_token_ids

    @property
    def max_context(self) -> int:
        return self.card.max_context

    @property
    def chat_template(self) -> str:
        return self.card.chat_template

    def render_prompt(self, messages: list[Message]) -> list[int]:
        return self.card.render_prompt(messages)

    def detokenizer(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.tokenizer)
