"""The model families we serve, as config.json describes them: names, model types, media, defaults.

The values config.json may leave out are the defaults of the family's transformers config class
(tests/unit/queues/checkpoint/test_card.py checks them against transformers).
"""

from __future__ import annotations

from typing import Any

import msgspec

from queues.types import Modality


class FamilySpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    model_types: tuple[str, ...]  # config.json `model_type`s of the family
    modalities: tuple[Modality, ...]
    # Per modality: the config keys naming its placeholder token (first present wins), and the default.
    placeholders: dict[Modality, tuple[tuple[str, ...], int]]
    # Text-model values the config may leave out: max_position_embeddings, eos_token_id.
    text_defaults: dict[str, Any] = {}

    def placeholder_ids(self, config: dict[str, Any]) -> dict[Modality, int]:
        ids: dict[Modality, int] = {}
        for modality, (keys, default) in self.placeholders.items():
            found = [config[key] for key in keys if config.get(key) is not None]
            ids[modality] = int(found[0]) if found else default
        return ids


QWEN2_VL = FamilySpec(
    name="qwen2-vl",
    model_types=("qwen2_vl",),
    modalities=("image", "video"),
    placeholders={"image": (("image_token_id",), 151655), "video": (("video_token_id",), 151656)},
    text_defaults={"max_position_embeddings": 32768, "eos_token_id": 151645},
)
QWEN25_VL = msgspec.structs.replace(QWEN2_VL, name="qwen2.5-vl", model_types=("qwen2_5_vl",))
LLAVA = FamilySpec(
    name="llava",
    model_types=("llava",),
    modalities=("image",),
    placeholders={"image": (("image_token_id", "image_token_index"), 32000)},
    text_defaults={"max_position_embeddings": 2048, "eos_token_id": 2},
)
QWEN2_AUDIO = FamilySpec(
    name="qwen2-audio",
    model_types=("qwen2_audio",),
    modalities=("audio",),
    placeholders={"audio": (("audio_token_id", "audio_token_index"), 151646)},
    text_defaults={"max_position_embeddings": 32768},
)

FAMILIES: tuple[FamilySpec, ...] = (QWEN2_VL, QWEN25_VL, LLAVA, QWEN2_AUDIO)


class UnsupportedModelError(ValueError):
    pass


def family_spec(model_type: str) -> FamilySpec:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise UnsupportedModelError(f"unsupported model type {model_type!r}; supported families: {supported}")
