"""Incremental detokenization: turn a stream of token ids into text deltas.

A delta is released only once the decoded text no longer ends in U+FFFD, so a multi-byte character
split over several byte tokens is never cut in half. Only a short window of recent tokens is
re-decoded each step, so the cost per token stays constant.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

REPLACEMENT = "\ufffd"
# A UTF-8 character spans at most 4 byte tokens: if the text still ends in U+FFFD four tokens after
# it started to, the bytes are invalid (a random model can emit those) and are released as they are.
MAX_INCOMPLETE_TOKENS = 4


class Decoder(Protocol):
    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


def fast_decoder(tokenizer: Any) -> Decoder:
    """The Rust `tokenizers.Tokenizer` behind a fast HF tokenizer: the same text (when the HF layer adds
    no clean-up) for a third of the per-call cost, which matters at one decode per token."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return cast(Decoder, tokenizer)
    return cast(Decoder, backend)


class IncrementalDetokenizer:
    """`push(token_id)` returns the newly stable text; `flush()` returns whatever is still held back.

    For valid UTF-8 output the deltas concatenate to `tokenizer.decode(all_ids, skip_special_tokens=True)`.
    """

    def __init__(self, tokenizer: Decoder) -> None:
        self._tokenizer = fast_decoder(tokenizer)
        self._ids: list[int] = []
        self._window_start = 0  # decode from here: gives the tokenizer context for spaces/merges
        self._emitted_upto = 0  # ids before this index have been turned into text
        self._incomplete_since: int | None = None  # first id of a still unfinished character

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        before = self._decode(self._ids[self._window_start : self._emitted_upto])
        after = self._decode(self._ids[self._window_start :])
        if after.endswith(REPLACEMENT):
            if self._incomplete_since is None:
                self._incomplete_since = len(self._ids) - 1
            if len(self._ids) - self._incomplete_since < MAX_INCOMPLETE_TOKENS:
                return ""
        if len(after) <= len(before):
            return ""
        self._incomplete_since = None
        self._window_start = self._emitted_upto
        self._emitted_upto = len(self._ids)
        return after[len(before) :]

    def extend(self, token_ids: list[int]) -> None:
        """Take tokens without decoding them; `flush()` then returns their text in one decode."""
        self._ids.extend(token_ids)

    def flush(self) -> str:
        """Text of the tokens still held back (an incomplete character decodes as U+FFFD)."""
        before = self._decode(self._ids[self._window_start : self._emitted_upto])
        after = self._decode(self._ids[self._window_start :])
        self._window_start = self._emitted_upto = len(self._ids)
        self._incomplete_since = None
        return after[len(before) :]
