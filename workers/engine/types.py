"""What the engine hands the stage code for each generated token (inside one worker process)."""

from __future__ import annotations

import msgspec

from queues.types import FinishReason


class TokenOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One generated token as the client sees it."""

    index: int  # 0 for the first generated token (the one prefill sampled)
    token_id: int
    text: str  # the text delta this token releases (may be empty; never part of a stop string)
    logprob: float | None = None  # log-probability of token_id under the model, when asked
    top_logprobs: list[tuple[int, float]] | None = None  # (token id, logprob), most likely first
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0  # expanded prompt length, media tokens included
    completion_tokens: int = 0  # tokens generated so far, this one included
