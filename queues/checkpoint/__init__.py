"""What the front door and the workers both know about a checkpoint, without torch or transformers.

`Checkpoint.load(dir)` reads config.json, generation_config.json, tokenizer.json and the chat
template: the family, its media placeholders, the context length, EOS ids, sampling defaults,
prompt rendering and tokenization. The workers' torch side (weights, processors, family adapters)
lives in `workers.engine` and builds on this.
"""

from queues.checkpoint.card import Checkpoint, GenerationDefaults, Message
from queues.checkpoint.families import FAMILIES, FamilySpec, UnsupportedModelError, family_spec

__all__ = [
    "FAMILIES",
    "Checkpoint",
    "FamilySpec",
    "GenerationDefaults",
    "Message",
    "UnsupportedModelError",
    "family_spec",
]
