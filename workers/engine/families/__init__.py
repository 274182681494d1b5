"""Family adapters: the torch side of each family (media encoding, positions), by family name.

What config.json says of a family (model types, modalities, placeholders) is `queues.checkpoint`'s.
"""

from __future__ import annotations

from queues.checkpoint import FamilySpec
from workers.engine.families.base import Family
from workers.engine.families.llava import Llava
from workers.engine.families.qwen2_audio import Qwen2Audio
from workers.engine.families.qwen_vl import Qwen2VL, Qwen25VL

ADAPTERS: dict[str, type[Family]] = {cls.spec.name: cls for cls in (Qwen2VL, Qwen25VL, Llava, Qwen2Audio)}


def adapter_for(spec: FamilySpec) -> type[Family]:
    return ADAPTERS[spec.name]


__all__ = ["ADAPTERS", "Family", "adapter_for"]
