"""What the front door needs to know about a checkpoint, without loading its weights.

Family, tokenizer, chat-template rendering (one placeholder token per media item), generation
defaults from generation_config.json, EOS ids and context length.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoTokenizer
from transformers.utils.chat_template_utils import _compile_jinja_template

from queues.types import Modality
from workers.engine.detokenizer import IncrementalDetokenizer
from workers.engine.families import Family, family_for
from workers.engine.segments import SegmentEncoder

Message = dict[str, Any]  # {"role": str, "content": str | [{"type": "text"|"image"|"video"|"audio", ...}]}
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json")


@dataclass(frozen=True)
class GenerationDefaults:
    """Sampling values the checkpoint's generation_config.json sets (None where it sets nothing)."""

    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    model_dir: Path
    family: str
    family_cls: type[Family]
    tokenizer: Any  # a transformers tokenizer
    chat_template: str
    modalities: frozenset[Modality]
    placeholder_ids: dict[Modality, int]
    generation: GenerationDefaults
    eos_token_ids: tuple[int, ...]  # generation stops at every one of them
    max_context: int

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelInfo:
        """Raises `UnsupportedModelError` (a ValueError naming the supported families) for other models."""
        path = Path(model_dir)
        config = AutoConfig.from_pretrained(path)
        family = family_for(config.model_type)
        tokenizer = AutoTokenizer.from_pretrained(path)
        generation = _read_json(path / "generation_config.json")
        text_config = config.get_text_config()
        return cls(
            model_dir=path,
            family=family.name,
            family_cls=family,
            tokenizer=tokenizer,
            chat_template=_chat_template(path, tokenizer),
            modalities=frozenset(family.modalities),
            placeholder_ids=family.placeholder_ids(config),
            generation=GenerationDefaults(**{k: generation[k] for k in _DEFAULT_KEYS if k in generation}),
            eos_token_ids=_eos_ids(generation, text_config, tokenizer),
            max_context=int(text_config.max_position_embeddings),
        )

    def render_prompt(self, messages: list[Message]) -> list[int]:
        """Chat template + tokenization, leaving exactly one placeholder token per media item, in order."""
        wanted: list[Modality] = []
        shaped = [self._shape_message(message, wanted) for message in messages]
        text = self._template.render(
            messages=shaped, tools=None, documents=None, add_generation_prompt=True, **self._template_vars
        )
        ids = self._encode(text)
        token_to_modality = self._placeholder_modality
        found = [token_to_modality[i] for i in ids if i in token_to_modality]
        if found != wanted:
            raise ValueError(f"chat template rendered media placeholders {found}, the messages hold {wanted}")
        return ids

    # What `tokenizer.apply_chat_template(..., tokenize=False)` renders with, compiled once: its
    # per-call argument handling costs twice the rendering (tests/unit/engine/test_model_info.py
    # checks that the two agree).
    @functools.cached_property
    def _template(self) -> Any:
        return _compile_jinja_template(self.chat_template)

    @functools.cached_property
    def _template_vars(self) -> dict[str, Any]:
        return dict(self.tokenizer.special_tokens_map)

    @functools.cached_property
    def _segments(self) -> SegmentEncoder | None:
        return SegmentEncoder.for_tokenizer(self.tokenizer)

    @functools.cached_property
    def _placeholder_modality(self) -> dict[int, Modality]:
        return {token: modality for modality, token in self.placeholder_ids.items()}

    def _shape_message(self, message: Message, wanted: list[Modality]) -> Message:
        content = message.get("content")
        if content is None:
            return message
        if isinstance(content, str):  # every family's template takes parts; LLaVA's takes only parts
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            kind = part.get("type")
            if kind in ("image", "video", "audio"):
                if kind not in self.modalities:
                    raise ValueError(f"{self.family} does not accept {kind} input")
                wanted.append(kind)
                # some templates test for the key (`'audio' in content`), not the type
                part = {**part, kind: part.get(kind, "")}
            parts.append(part)
        return {**message, "content": parts}

    def _encode(self, text: str) -> list[int]:
        """Token ids of `text`, as `tokenizer(text)["input_ids"]` gives them; straight through the
        Rust tokenizer when there is one (the front door does this for every request)."""
        if self._segments is not None:
            return self._segments.encode(text)
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return list(self.tokenizer(text)["input_ids"])
        if hasattr(backend, "encode_batch_fast"):  # tokenizers >= 0.21: no offsets computed
            return list(backend.encode_batch_fast([text])[0].ids)
        return list(backend.encode(text).ids)

    def detokenizer(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.tokenizer)


_DEFAULT_KEYS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _chat_template(path: Path, tokenizer: Any) -> str:
    if isinstance(tokenizer.chat_template, str):
        return tokenizer.chat_template
    for name in TEMPLATE_FILES:
        file = path / name
        if not file.exists():
            continue
        if name.endswith(".jinja"):
            return file.read_text()
        template = _read_json(file).get("chat_template")
        if isinstance(template, str):
            return template
    raise ValueError(f"{path} has no chat template")


def _eos_ids(generation: dict[str, Any], text_config: Any, tokenizer: Any) -> tuple[int, ...]:
    for source in (
        generation.get("eos_token_id"),
        getattr(text_config, "eos_token_id", None),
        tokenizer.eos_token_id,
    ):
        if source is None:
            continue
        ids = [source] if isinstance(source, int) else list(source)
        if ids:
            return tuple(dict.fromkeys(int(i) for i in ids))
    return ()
