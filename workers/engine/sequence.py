"""One generating sequence on the decode side: its sampler, its text stream, and when it ends."""

from __future__ import annotations

import functools

import torch

from queues.messages import DecodeState, SamplingParams
from queues.types import FinishReason
from workers.engine.detokenizer import Decoder, IncrementalDetokenizer
from workers.engine.sampling import Sampler, logprobs_of, restore_generator, stop_ids_for
from workers.engine.stops import StopStringFilter
from workers.engine.types import TokenOutput


class Sequence:
    """Turns chosen token ids into `TokenOutput`s: detokenizes, applies stop ids / stop strings /
    length limits, and counts usage. Not thread-safe; owned by one thread at a time."""

    def __init__(
        self,
        request_id: str,
        state: DecodeState,
        sampling: SamplingParams,
        eos_ids: frozenset[int],
        tokenizer: Decoder,
        max_context: int,
        device: torch.device,
        *,
        stream: bool = True,
    ) -> None:
        self.request_id = request_id
        self.state = state
        self.sampling = sampling
        self.stop_ids = stop_ids_for(sampling, eos_ids)
        self._device = device
        self.generated: list[int] = []
        self.finish_reason: FinishReason | None = None
        self._max_new = max(1, min(sampling.max_tokens, max_context - state.prompt_len))
        self._detokenizer = IncrementalDetokenizer(tokenizer)
        self._stops = StopStringFilter(sampling.stop)
        # Nobody sees a non-streamed answer before its end and no stop string needs watching: the
        # text is decoded once at the end instead of twice per token.
        self._text_at_end = not stream and not sampling.stop

    @functools.cached_property
    def sampler(self) -> Sampler:
        """Made on first use: the mock engine chooses tokens without one."""
        state, params = self.state, self.sampling
        sampled = params.temperature != 0
        generator = restore_generator(state.generator_state, self._device) if sampled else None
        return Sampler(params, self.stop_ids, state.penalty_prompt_ids, generator)

    @property
    def reserved_tokens(self) -> int:
        """The most KV tokens this sequence can ever hold (its admission budget)."""
        return self.state.prompt_len + self._max_new

    @property
    def next_position(self) -> int:
        """Rotary position of the token fed in the next decode step."""
        return self.state.next_position + len(self.generated) - 1 + self.state.rope_delta

    def first_output(self) -> TokenOutput:
        """The token prefill sampled, as the first output."""
        top = self.state.first_top_logprobs if self.sampling.logprobs else None
        return self.accept(self.state.first_token, self.state.first_logprob, top)

    def accept_from_logits(self, token: int, logits: torch.Tensor | None) -> TokenOutput:
        """`logits`: the raw `(vocab,)` row the token was chosen from, needed only for logprobs."""
        if not self.sampling.logprobs or logits is None:
            return self.accept(token, None, None)
        logprob, top = logprobs_of(logits, token, self.sampling.top_logprobs)
        return self.accept(token, logprob, top)

    def accept(self, token: int, logprob: float | None, top: list[tuple[int, float]] | None) -> TokenOutput:
        self.generated.append(token)
        count = len(self.generated)
        text = ""
        if token in self.stop_ids:  # the sampler suppresses them until min_tokens
            self.finish_reason = "stop"
            text = self._drain()
        elif self._text_at_end:
            if count >= self._max_new:
                self.finish_reason = "length"
                text = self._drain()
        else:
            delta = self._detokenizer.push(token)
            text, hit = self._stops.feed(delta) if count >= self.sampling.min_tokens else (delta, False)
            if hit:
                self.finish_reason = "stop"
            elif count >= self._max_new:
                self.finish_reason = "length"
                text += self._drain()
        if not self.sampling.logprobs:
            logprob, top = None, None
        return TokenOutput(
            index=count - 1,
            token_id=token,
            text=text,
            logprob=logprob,
            top_logprobs=top,
            finish_reason=self.finish_reason,
            prompt_tokens=self.state.prompt_len,
            completion_tokens=count,
        )

    def _drain(self) -> str:
        """At the end: what the detokenizer and the stop filter still hold (a stop string may complete)."""
        if self._text_at_end:  # every token but a stop token, all at once
            ended_by_stop_id = self.generated[-1] in self.stop_ids
            self._detokenizer.extend(self.generated[:-1] if ended_by_stop_id else self.generated)
        text, hit = self._stops.feed(self._detokenizer.flush())
        if hit:
            self.finish_reason = "stop"
            return text
        return text + self._stops.flush()
