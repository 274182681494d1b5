"""Family adapters: what differs between model families (media encoding, placeholder tokens, positions).

`family_for(model_type)` finds the adapter class for a checkpoint's `config.json` model_type.
"""

from __future__ import annotations

from workers.engine.families.base import Family
from workers.engine.families.llava import Llava
from workers.engine.families.qwen2_audio import Qwen2Audio
from workers.engine.families.qwen_vl import Qwen2VL, Qwen25VL

FAMILIES: tuple[type[Family], ...] = (Qwen2VL, Qwen25VL, Llava, Qwen2Audio)


class UnsupportedModelError(ValueError):
    pass


def family_for(model_type: str) -> type[Family]:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise UnsupportedModelError(f"unsupported model type {model_type!r}; supported families: {supported}")


__all__ = ["FAMILIES", "Family", "UnsupportedModelError", "family_for"]
