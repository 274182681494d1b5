"""`SglangEngine`: the `Engine` interface over an in-process `sglang.Engine` (agg and pd stages).

sglang runs prefill and decode as one request, so the interface's two halves map onto one sglang
stream: `prefill` starts the request (prompt ids with placeholders expanded, media as
`processor_output` items) and waits for its first token; `generate` continues reading the same
stream. The KV cache never leaves sglang: `PrefillResult.kv` is one int64 tensor holding the
handle of the live request, valid in this process only. A handle `generate` does not pick up
within `UNCLAIMED_TTL_S` is aborted.

Tokens become `TokenOutput`s through `Sequence`, the HF engine's own output assembly (text
deltas, stop strings held back, stop ids, length, usage), so both engines answer alike; sglang is
given the same stop criteria and samples. Whichever of the two ends first ends the request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any

import msgspec
import torch

from queues.messages import DecodeState, SamplingParams
from workers.engine.base import EncodedItem, PrefillResult
from workers.engine.limits import EngineStats
from workers.engine.model_info import ModelInfo
from workers.engine.prefill import expand_placeholders
from workers.engine.sequence import Sequence
from workers.engine.sglang.media import MediaKind, VisionLayout, multimodal_inputs
from workers.engine.sglang.sampling import request_arguments
from workers.engine.sglang.stream import LiveRequest, SglangAborted
from workers.engine.types import TokenOutput
from workers.media.types import LoadedMedia

log = logging.getLogger(__name__)

UNCLAIMED_TTL_S = 60.0
CPU = torch.device("cpu")  # where the (unused) sampler of a Sequence would live
Encoder = Callable[[list[LoadedMedia]], list[EncodedItem]]


class SglangEngine:
    def __init__(
        self, runtime: Any, info: ModelInfo, layout: VisionLayout, media: MediaKind, encoder: Encoder | None
    ) -> None:
        self.runtime = runtime  # a started sglang.Engine
        self.info = info
        self.layout = layout
        self.media = media  # what prefill takes: pixels (agg, from `encoder`) or embeddings (pd)
        self._encoder = encoder
        self.stats = EngineStats()
        self._eos = frozenset(info.eos_token_ids)
        self._handles = itertools.count(1)
        self._unclaimed: dict[int, LiveRequest] = {}
        self._generating: dict[str, LiveRequest] = {}
        self._closing: set[asyncio.Task[None]] = set()  # streams of expired handles being closed
        self._closed = False

    async def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        """Pixel values for sglang's own vision tower (agg); the HF processor runs off the loop."""
        self._check_open()
        if self._encoder is None:
            raise RuntimeError(
                "this sglang engine takes embeddings from the encode stage, it does not encode"
            )
        encoded = await asyncio.to_thread(self._encoder, items)
        self.stats.encode_batches += 1
        self.stats.encode_items += len(items)
        return encoded

    async def prefill(
        self, prompt_ids: list[int], items: list[EncodedItem], sampling: SamplingParams
    ) -> PrefillResult:
        self._check_open()
        expanded, _ = expand_placeholders(prompt_ids, [meta for _, meta in items], self.info.placeholder_ids)
        rid = uuid.uuid4().hex
        live = LiveRequest(rid=rid, stream=await self._start(rid, expanded, items, sampling))
        try:
            await live.next_chunk()  # sglang rejects a request here (ValueError) or sends its first token
        except StopAsyncIteration:
            raise SglangAborted(f"sglang request {live.rid} ended before its first token") from None
        except BaseException:
            await live.close()
            raise
        first = live.pending[0]
        self.stats.prefills += 1
        handle = next(self._handles)
        self._unclaimed[handle] = live
        asyncio.get_running_loop().call_later(UNCLAIMED_TTL_S, self._expire, handle)
        state = DecodeState(
            prompt_len=len(expanded),
            next_position=len(expanded),
            first_token=first.token_id,
            first_logprob=first.logprob,
            first_top_logprobs=first.top_logprobs or [],
            num_layers=1,  # `kv` is the handle, not a cache
            num_kv_heads=0,
            head_dim=0,
            kv_dtype="int64",
        )
        return PrefillResult(kv=[torch.tensor([handle], dtype=torch.int64)], state=state)

    async def _start(
        self, rid: str, expanded: list[int], items: list[EncodedItem], sampling: SamplingParams
    ) -> Any:
        return await self.runtime.async_generate(
            rid=rid,
            input_ids=expanded,
            stream=True,
            **multimodal_inputs(items, self.layout, self.media),
            **request_arguments(sampling, self._eos),
        )

    def generate(
        self,
        request_id: str,
        kv: list[torch.Tensor],
        state: DecodeState,
        sampling: SamplingParams,
        *,
        stream: bool = True,  # sglang streams either way
    ) -> AsyncGenerator[TokenOutput, None]:
        """Validates eagerly: `kv` must be a handle `prefill` of this engine returned."""
        self._check_open()
        if len(kv) != 1 or kv[0].dtype != torch.int64 or kv[0].numel() != 1:
            raise ValueError("the sglang engine continues only requests it prefilled (kv is not a handle)")
        live = self._unclaimed.pop(int(kv[0].item()), None)
        if live is None:
            raise ValueError("the sglang request of this handle is gone (expired or already generating)")
        if request_id in self._generating:
            raise ValueError(f"request {request_id!r} is already generating")
        self._generating[request_id] = live
        return self._stream(request_id, live, state, sampling)

    async def _stream(
        self, request_id: str, live: LiveRequest, state: DecodeState, sampling: SamplingParams
    ) -> AsyncGenerator[TokenOutput, None]:
        # sglang samples; the Sequence only assembles outputs, so it needs no sampler state
        greedy = msgspec.structs.replace(sampling, temperature=0.0)
        info = self.info
        sequence = Sequence(request_id, state, greedy, self._eos, info.tokenizer, info.max_context, CPU)
        try:
            async for token in live.tokens():
                output = sequence.accept(token.token_id, token.logprob, token.top_logprobs)
                self.stats.decode_tokens += 1
                if output.finish_reason is None and token.finish_reason is not None:
                    output = msgspec.structs.replace(output, finish_reason=token.finish_reason)
                yield output
                if output.finish_reason is not None:
                    return
        except SglangAborted:
            if not live.cancelled:
                raise
        finally:
            self._generating.pop(request_id, None)
            if not live.finished:
                await live.close()

    async def cancel(self, request_id: str) -> None:
        live = self._generating.get(request_id)
        if live is not None and not live.finished:
            live.cancelled = True
            self.runtime.tokenizer_manager.abort_request(live.rid)

    def _expire(self, handle: int) -> None:
        live = self._unclaimed.pop(handle, None)
        if live is not None:
            log.warning("sglang request %s was prefilled but never generated; aborting it", live.rid)
            self.runtime.tokenizer_manager.abort_request(live.rid)
            task = asyncio.get_running_loop().create_task(live.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("engine is closed")

    async def close(self) -> None:
        """Pending generate iterators end (their sglang requests are aborted); sglang stops."""
        if self._closed:
            return
        self._closed = True
        for live in [*self._unclaimed.values(), *self._generating.values()]:
            live.cancelled = True
            self.runtime.tokenizer_manager.abort_request(live.rid)
        self._unclaimed.clear()
        await asyncio.to_thread(self.runtime.shutdown)
