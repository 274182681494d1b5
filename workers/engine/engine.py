"""The transformers engine: the asyncio-facing `Engine` over one model on one engine thread.

Every torch call runs on a single dedicated thread, so the event loop never blocks and the model
is never entered twice at once. Encode calls arriving together are batched (`EncodeBatcher`),
prefills queue on the engine thread, and the `DecodeScheduler` runs one batched decode step at a
time, admitting and dropping sequences between steps.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from queues.messages import DecodeState, SamplingParams
from workers.engine.base import EncodedItem, PrefillResult
from workers.engine.decode_batch import DecodeBatch, check_kv
from workers.engine.encode_batcher import EncodeBatcher
from workers.engine.families import Family
from workers.engine.forward import ModelForward
from workers.engine.kv_cache import BatchKVCache
from workers.engine.limits import EngineLimits, EngineStats, kv_shape
from workers.engine.model_info import ModelInfo
from workers.engine.prefill import Prefiller
from workers.engine.scheduler import Admission, DecodeScheduler, StepResult
from workers.engine.sequence import Sequence
from workers.engine.types import TokenOutput
from workers.media.types import LoadedMedia

T = TypeVar("T")


def batch_cache_for(family: Family) -> BatchKVCache:
    shape = kv_shape(family.model.config.get_text_config())
    return BatchKVCache(
        num_layers=shape.layers,
        num_kv_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        dtype=family.dtype,
        device=family.device,
    )


class TransformersEngine:
    def __init__(self, info: ModelInfo, family: Family, limits: EngineLimits | None = None) -> None:
        self.info = info
        self.family = family
        self.limits = limits or EngineLimits()
        self.device = family.device
        self.stats = EngineStats()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._eos = frozenset(info.eos_token_ids)
        forward = ModelForward(family.model)
        self._prefiller = Prefiller(family, forward, self._eos)
        self._batch = DecodeBatch(family, forward, batch_cache_for(family))
        self._encoder = EncodeBatcher(
            functools.partial(self._on_engine, family.encode), self.limits, self.stats
        )
        self._scheduler = DecodeScheduler(
            self._step,
            functools.partial(self._on_engine, self._batch.clear),
            self.limits,
            self.stats,
        )
        self._closed = False

    async def _on_engine(self, fn: Callable[..., T], *args: Any) -> T:
        def run() -> T:
            with torch.no_grad():
                return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    async def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        self._check_open()
        return await self._encoder.encode(items)

    async def prefill(
        self, prompt_ids: list[int], items: list[EncodedItem], sampling: SamplingParams
    ) -> PrefillResult:
        self._check_open()
        result = await self._on_engine(self._prefiller, list(prompt_ids), list(items), sampling)
        self.stats.prefills += 1
        return result

    def generate(
        self,
        request_id: str,
        kv: list[torch.Tensor],
        state: DecodeState,
        sampling: SamplingParams,
        *,
        stream: bool = True,
    ) -> AsyncGenerator[TokenOutput, None]:
        """Validates eagerly (bad KV raises here, before it can fail a shared batch step)."""
        self._check_open()
        check_kv(kv, state, self._batch.cache)
        if state.generator_state and state.generator_device != self.device.type:
            raise ValueError(
                f"sampler state is for {state.generator_device}, this engine is on {self.device}"
            )
        sequence = Sequence(
            request_id,
            state,
            sampling,
            self._eos,
            self.info.tokenizer,
            self.info.max_context,
            self.device,
            stream=stream,
        )
        return self._scheduler.stream(sequence, kv, stream)

    async def cancel(self, request_id: str) -> None:
        self._scheduler.forget(request_id)

    async def _step(self, admitted: list[Admission], drops: list[str]) -> StepResult:
        return await self._on_engine(self._step_on_engine, admitted, drops)

    def _step_on_engine(self, admitted: list[Admission], drops: list[str]) -> StepResult:
        for request_id in drops:
            self._batch.drop(request_id)
        for admission in admitted:
            self._batch.admit(admission.sequence, admission.kv)
            admission.kv = []  # copied into the batch; let the caller's tensors go
        outputs = self._batch.step()
        return StepResult(outputs, len(self._batch.rows))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("engine is closed")

    async def close(self) -> None:
        self._closed = True
        self._scheduler.close()
        self._encoder.close()
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self._thread.shutdown, wait=True)
        )
