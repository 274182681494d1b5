"""Tokenizing a rendered prompt piece by piece, remembering recent pieces.

A fast tokenizer first cuts the text at its added tokens (`<|im_start|>`, the media placeholders,
...) and then tokenizes each piece in between on its own. `SegmentEncoder` makes the same cut and
keeps the ids of recent pieces, so the parts of a prompt that repeat across requests (the template's
frame, a long shared system prompt, the earlier turns of a conversation) are tokenized once, not per
request. It is used only where the cut is provably the tokenizer's own: every added token matches
exactly (no lstrip, rstrip, single-word or normalized matching), the post-processor adds no tokens,
and no pre-tokenizer depends on a piece's place in the text (Metaspace does: it prefixes only the
first piece). Elsewhere `for_tokenizer` returns None and the whole text goes to the tokenizer.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict

from tokenizers import Tokenizer

PROBE = "a b"
MAX_PIECE_CHARS = 8192  # longer pieces are tokenized every time, not kept


class SegmentEncoder:
    def __init__(self, backend: Tokenizer, added: dict[str, int], capacity: int = 1024) -> None:
        self._backend = backend
        self._added = added
        ordered = sorted(added, key=len, reverse=True)  # leftmost-longest, as the tokenizer matches
        self._pattern = re.compile("(" + "|".join(re.escape(token) for token in ordered) + ")")
        self._capacity = capacity
        self._pieces: OrderedDict[str, list[int]] = OrderedDict()

    @classmethod
    def for_tokenizer(cls, backend: Tokenizer, capacity: int = 1024) -> SegmentEncoder | None:
        """An encoder giving exactly `backend.encode(text).ids`, or None when the tokenizer's own
        cut cannot be reproduced piece by piece."""
        tokens = list(backend.get_added_tokens_decoder().items())
        if not tokens:
            return None
        if any(t.lstrip or t.rstrip or t.single_word or t.normalized for _, t in tokens):
            return None
        if backend.encode(PROBE).ids != backend.encode(PROBE, add_special_tokens=False).ids:
            return None  # the post-processor adds tokens (a BOS, say)
        if "Metaspace" in json.dumps(json.loads(backend.to_str()).get("pre_tokenizer")):
            return None
        return cls(backend, {t.content: token_id for token_id, t in tokens}, capacity)

    def encode(self, text: str) -> list[int]:
        parts = self._pattern.split(text)  # text, added token, text, added token, ..., text
        pieces = self._pieces
        fresh: dict[str, list[int]] = {}
        missing = [part for part in parts[::2] if part and part not in pieces]
        if missing:
            encoded = self._backend.encode_batch_fast(missing, add_special_tokens=False)
            fresh = {piece: list(encoding.ids) for piece, encoding in zip(missing, encoded, strict=True)}
        ids: list[int] = []
        for i, part in enumerate(parts):
            if i % 2:
                ids.append(self._added[part])
            elif part in fresh:
                ids += fresh[part]
            elif part:
                ids += pieces[part]
                pieces.move_to_end(part)
        for piece, piece_ids in fresh.items():
            if len(piece) <= MAX_PIECE_CHARS:
                pieces[piece] = piece_ids
        while len(pieces) > self._capacity:
            pieces.popitem(last=False)
        return ids
