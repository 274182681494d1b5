"""A mock engine for infrastructure benchmarks and autoscaling tests: the `Engine` interface with
simulated device time and deterministic output, no model weights.

It shares the real engine's encode batching, decode scheduling (continuous batching, limits,
cancellation) and per-sequence text handling (detokenization, stop strings, max_tokens, usage); only
the compute is replaced. Device time is simulated with `asyncio.sleep` under one lock, so encode,
prefill and decode steps queue behind each other as they do on the real engine thread. Output tokens
are a function of the expanded prompt and the seed, drawn from tokens that decode to plain words of
the checkpoint's tokenizer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import torch

from queues.messages import DecodeState, EncodedMeta, SamplingParams
from workers.engine.base import EncodedItem, PrefillResult
from workers.engine.encode_batcher import EncodeBatcher
from workers.engine.limits import EngineLimits, EngineStats
from workers.engine.model_info import ModelInfo
from workers.engine.prefill import expand_placeholders
from workers.engine.scheduler import Admission, DecodeScheduler, StepResult
from workers.engine.sequence import Sequence
from workers.engine.types import TokenOutput
from workers.media.types import LoadedMedia

WORD = re.compile(r"^ ?[A-Za-z]{2,}$")
SCANNED_IDS = 20_000  # enough of a large vocabulary to find plenty of words


@dataclass(frozen=True)
class MockTimings:
    prefill_s_per_token: float = 0.0
    decode_s_per_step: float = 0.0  # one step advances every sequence in the batch
    encode_s_per_item: float = 0.0
    tokens_per_item: int = 16  # each media placeholder expands to this many tokens
    hidden_size: int = 8
    kv_layers: int = 2
    kv_heads: int = 1
    head_dim: int = 4


def _mix(value: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread, deterministic integer hash (per token)."""
    value = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


@functools.lru_cache(maxsize=4096)
def _stream(first_token: int, prompt_len: int, seed: int) -> int:
    """The hash a sequence's tokens are drawn from (with their index); once per sequence, not per token."""
    return _mix(_mix(_mix(first_token) ^ prompt_len) ^ (seed & 0xFFFFFFFFFFFFFFFF))


def _draw(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class MockEngine:
    def __init__(
        self, info: ModelInfo, timings: MockTimings | None = None, limits: EngineLimits | None = None
    ):
        self.info = info
        self.timings = timings or MockTimings()
        self.limits = limits or EngineLimits()
        self.stats = EngineStats()
        self._device = asyncio.Lock()
        self._eos = frozenset(info.eos_token_ids)
        self._words = self._word_tokens()
        self._rows: list[Sequence] = []
        self._encoder = EncodeBatcher(self._encode_batch, self.limits, self.stats)
        self._scheduler = DecodeScheduler(self._step, self._clear, self.limits, self.stats)

    @classmethod
    def from_dir(
        cls, model_dir: str | Path, timings: MockTimings | None = None, limits: EngineLimits | None = None
    ) -> MockEngine:
        return cls(ModelInfo.load(model_dir), timings, limits)

    def _word_tokens(self) -> list[int]:
        tokenizer = self.info.tokenizer
        ids = range(min(len(tokenizer), SCANNED_IDS))
        words = [i for i in ids if i not in self._eos and WORD.match(tokenizer.decode([i]))]
        if not words:
            raise ValueError("the tokenizer has no plain-word tokens to mock output with")
        return words

    async def _busy(self, seconds: float) -> None:
        async with self._device:
            if seconds > 0:
                await asyncio.sleep(seconds)

    # --- Engine interface ---

    async def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        return await self._encoder.encode(items)

    async def _encode_batch(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        unsupported = [item.modality for item in items if item.modality not in self.info.modalities]
        if unsupported:
            raise ValueError(f"{self.info.family} does not accept {unsupported[0]} input")
        await self._busy(self.timings.encode_s_per_item * len(items))
        shape = (self.timings.tokens_per_item, self.timings.hidden_size)
        return [
            (
                torch.full(shape, float(_draw(item.content_hash) % 1000) / 1000),
                EncodedMeta(
                    modality=item.modality,
                    num_tokens=shape[0],
                    content_hash=item.content_hash,
                    shape=list(shape),
                ),
            )
            for item in items
        ]

    async def prefill(
        self, prompt_ids: list[int], items: list[EncodedItem], sampling: SamplingParams
    ) -> PrefillResult:
        expanded, _ = expand_placeholders(prompt_ids, [meta for _, meta in items], self.info.placeholder_ids)
        await self._busy(self.timings.prefill_s_per_token * len(expanded))
        self.stats.prefills += 1
        t = self.timings
        kv = [torch.zeros((2, t.kv_heads, len(expanded), t.head_dim)) for _ in range(t.kv_layers)]
        state = DecodeState(
            prompt_len=len(expanded),
            next_position=len(expanded),
            # tuples of ints hash the same in every process (unlike strings): no digest needed
            first_token=self._token(_mix(hash((*expanded, sampling.seed)) & 0xFFFFFFFFFFFFFFFF), 0),
            first_logprob=-1.0 if sampling.logprobs else None,
            num_layers=t.kv_layers,
            num_kv_heads=t.kv_heads,
            head_dim=t.head_dim,
            kv_dtype="float32",
        )
        return PrefillResult(kv=kv, state=state)

    def generate(
        self,
        request_id: str,
        kv: list[torch.Tensor],
        state: DecodeState,
        sampling: SamplingParams,
        *,
        stream: bool = True,
    ) -> AsyncGenerator[TokenOutput, None]:
        sequence = Sequence(
            request_id,
            state,
            sampling,
            self._eos,
            self.info.tokenizer,
            self.info.max_context,
            torch.device("cpu"),
            stream=stream,
        )
        return self._scheduler.stream(sequence, kv, stream)

    async def cancel(self, request_id: str) -> None:
        self._scheduler.forget(request_id)

    async def close(self) -> None:
        self._scheduler.close()
        self._encoder.close()

    # --- simulated decode ---

    def _token(self, stream: int, index: int) -> int:
        return self._words[_mix(stream + index) % len(self._words)]

    async def _step(self, admitted: list[Admission], drops: list[str]) -> StepResult:
        async with self._device:  # the whole step, like one call on the real engine thread
            self._rows = [s for s in self._rows if s.request_id not in drops]
            self._rows.extend(a.sequence for a in admitted)
            if self.timings.decode_s_per_step > 0:
                await asyncio.sleep(self.timings.decode_s_per_step)
            outputs = [(sequence, self._advance(sequence)) for sequence in self._rows]
            self._rows = [s for s in self._rows if s.finish_reason is None]
            return StepResult(outputs, len(self._rows))

    def _advance(self, sequence: Sequence) -> TokenOutput:
        state, params = sequence.state, sequence.sampling
        stream = _stream(state.first_token, state.prompt_len, params.seed)
        token = self._token(stream, len(sequence.generated))
        logprob = -1.0 if params.logprobs else None
        top = [(token, -1.0)] if params.logprobs and params.top_logprobs else None
        return sequence.accept(token, logprob, top)

    async def _clear(self) -> None:
        self._rows = []
