"""Prompt rendering for the front door, with a small cache of recent prompts.

Rendering the chat template and tokenizing is the front door's biggest cost per request. Requests
whose messages are exactly alike (a client asking for several samples of one prompt with different
seeds, since `n > 1` is refused; retries; probes) get their token ids from an LRU instead. Media
items are placeholders in the messages, so two requests with different images of the same shape
share an entry, rightly: their prompt ids are the same.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

from queues.checkpoint import Checkpoint

_key = msgspec.msgpack.Encoder(order="deterministic")


class PromptRenderer:
    def __init__(self, card: Checkpoint, capacity: int = 1024) -> None:
        self._card = card
        self._capacity = capacity
        self._recent: OrderedDict[bytes, tuple[int, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def render(self, messages: list[dict[str, Any]]) -> list[int]:
        """`Checkpoint.render_prompt(messages)`, from the cache when these messages were seen lately."""
        key = _key.encode(messages)
        found = self._recent.get(key)
        if found is not None:
            self._recent.move_to_end(key)
            self.hits += 1
            return list(found)
        self.misses += 1
        ids = self._card.render_prompt(messages)
        if self._capacity > 0:
            self._recent[key] = tuple(ids)
            if len(self._recent) > self._capacity:
                self._recent.popitem(last=False)
        return ids
