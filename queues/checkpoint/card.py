"""`Checkpoint`: a checkpoint directory as the front door uses it, read without torch or transformers.

It renders a chat into prompt token ids (one placeholder token per media item), decodes single
tokens for logprobs, and knows the family, context length, EOS ids and sampling defaults. The
tokenizer is `tokenizer.json` as saved, run by the `tokenizers` library (the Rust tokenizer
transformers wraps); the workers check at start that transformers loads the same one
(`workers.engine.model_info`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from tokenizers import Tokenizer

from queues.checkpoint.families import FamilySpec, family_spec
from queues.checkpoint.segments import SegmentEncoder
from queues.checkpoint.template import compile_template
from queues.types import Modality

Message = dict[str, Any]  # {"role": str, "content": str | [{"type": "text"|"image"|"video"|"audio", ...}]}
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json")
# The named special tokens templates see (transformers' `special_tokens_map`).
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_DEFAULT_KEYS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


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
class Checkpoint:
    model_dir: Path
    family: FamilySpec
    tokenizer: Tokenizer
    special_tokens: dict[str, str]  # bos_token, eos_token, ... as tokenizer_config.json names them
    chat_template: str
    placeholder_ids: dict[Modality, int]
    generation: GenerationDefaults
    eos_token_ids: tuple[int, ...]  # generation stops at every one of them
    max_context: int
    vocab_size: int  # rows of the model's logits (the tokenizer's vocabulary, often padded)

    @classmethod
    def load(cls, model_dir: str | Path) -> Checkpoint:
        """Raises `UnsupportedModelError` (a ValueError naming the supported families) for other
        models, and ValueError when a file the front door needs is missing."""
        path = Path(model_dir)
        config = _read_json(path / "config.json", required=True)
        family = family_spec(str(config.get("model_type")))
        # transformers' get_text_config(): the nested text config, or the top level of a flat one
        text = {**family.text_defaults, **(config.get("text_config") or config)}
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.exists():
            raise ValueError(
                f"{path} has no tokenizer.json (the fast tokenizer): save one with transformers, "
                "AutoTokenizer.from_pretrained(dir).save_pretrained(dir)"
            )
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer_config = _read_json(path / "tokenizer_config.json")
        special = _special_tokens(tokenizer_config, _read_json(path / "special_tokens_map.json"))
        generation = _read_json(path / "generation_config.json")
        eos = _eos_ids(
            generation, text, tokenizer.token_to_id(special["eos_token"]) if "eos_token" in special else None
        )
        return cls(
            model_dir=path,
            family=family,
            tokenizer=tokenizer,
            special_tokens=special,
            chat_template=_chat_template(path, tokenizer_config),
            placeholder_ids=family.placeholder_ids(config),
            generation=GenerationDefaults(**{k: generation[k] for k in _DEFAULT_KEYS if k in generation}),
            eos_token_ids=eos,
            max_context=int(text["max_position_embeddings"]),
            vocab_size=int(text.get("vocab_size") or tokenizer.get_vocab_size(with_added_tokens=True)),
        )

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset(self.family.modalities)

    def render_prompt(self, messages: list[Message]) -> list[int]:
        """Chat template + tokenization, leaving exactly one placeholder token per media item, in order."""
        wanted: list[Modality] = []
        shaped = [self.shape_message(message, wanted) for message in messages]
        text = self.render_text(shaped)
        ids = self.encode(text)
        token_to_modality = self._placeholder_modality
        found = [token_to_modality[i] for i in ids if i in token_to_modality]
        if found != wanted:
            raise ValueError(f"chat template rendered media placeholders {found}, the messages hold {wanted}")
        return ids

    def render_text(self, messages: list[Message]) -> str:
        """The template's text for already shaped messages, with the generation prompt."""
        return self._template.render(
            messages=messages, tools=None, documents=None, add_generation_prompt=True, **self.special_tokens
        )

    def shape_message(self, message: Message, wanted: list[Modality]) -> Message:
        """Content as parts, each media part also under its own key (some templates test for the key,
        `'audio' in content`, not the type); appends the message's media kinds to `wanted`."""
        content = message.get("content")
        if content is None:
            return message
        if isinstance(content, str):  # every family's template takes parts; LLaVA's takes only parts
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            kind = part.get("type")
            if kind in ("image", "video", "audio"):
                if kind not in self.family.modalities:
                    raise ValueError(f"{self.family.name} does not accept {kind} input")
                wanted.append(kind)
                part = {**part, kind: part.get(kind, "")}
            parts.append(part)
        return {**message, "content": parts}

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens added as the tokenizer's post-processor says."""
        if self._segments is not None:
            return self._segments.encode(text)
        return list(self.tokenizer.encode_batch_fast([text])[0].ids)

    def decode_token(self, token_id: int) -> str:
        """One token's text, special tokens included (what a logprob entry shows)."""
        return str(self.tokenizer.decode([token_id], skip_special_tokens=False))

    @functools.cached_property
    def _template(self) -> jinja2.Template:
        return compile_template(self.chat_template)

    @functools.cached_property
    def _segments(self) -> SegmentEncoder | None:
        return SegmentEncoder.for_tokenizer(self.tokenizer)

    @functools.cached_property
    def _placeholder_modality(self) -> dict[int, Modality]:
        return {token: modality for modality, token in self.placeholder_ids.items()}


def _read_json(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ValueError(f"{path} does not exist: not a Hugging Face checkpoint directory")
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or a serialized AddedToken."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_tokens(tokenizer_config: dict[str, Any], special_map: dict[str, Any]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for name in SPECIAL_TOKENS:
        text = _token_text(tokenizer_config.get(name, special_map.get(name)))
        if text is not None:
            tokens[name] = text
    return tokens


def _chat_template(path: Path, tokenizer_config: dict[str, Any]) -> str:
    """chat_template.jinja wins, as in transformers; then tokenizer_config.json, then the others."""
    jinja = path / TEMPLATE_FILES[0]
    if jinja.exists():
        return jinja.read_text()
    if isinstance(tokenizer_config.get("chat_template"), str):
        return str(tokenizer_config["chat_template"])
    for name in TEMPLATE_FILES[1:]:
        template = _read_json(path / name).get("chat_template")
        if isinstance(template, str):
            return template
    raise ValueError(f"{path} has no chat template")


def _eos_ids(
    generation: dict[str, Any], text_config: dict[str, Any], tokenizer_eos: int | None
) -> tuple[int, ...]:
    for source in (generation.get("eos_token_id"), text_config.get("eos_token_id"), tokenizer_eos):
        if source is None:
            continue
        ids = [source] if isinstance(source, int) else list(source)
        if ids:
            return tuple(dict.fromkeys(int(i) for i in ids))
    return ()
