"""Decode behaviour on a real tiny model: stops, limits, logprobs, usage, cancellation, batching limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import torch

from tests.models import tiny_model_dir
from tests.unit.engine import media
from tests.unit.engine.oracle import (
    Reference,
    Request,
    equal_up_to_rounding,
    greedy,
    rounding_tolerance,
    run_engine,
    sampled,
    token_ids,
)
from workers.engine.engine import TransformersEngine
from workers.engine.limits import EngineLimits
from workers.engine.loader import load_engine

FAMILY = "qwen2-vl"
EARLY_EOS = Request("Describe the image.", [media.image(21)], greedy(12))  # greedy output ends at token 4
LONG = Request("Tell me a story about a cat.", [], greedy(12, ignore_eos=True))


@pytest.fixture(scope="module")
def engine(engine_for: Callable[[str], TransformersEngine]) -> TransformersEngine:
    return engine_for(FAMILY)


def with_sampling(request: Request, **changes: object) -> Request:
    params = {f: getattr(request.sampling, f) for f in request.sampling.__struct_fields__}
    return Request(request.text, request.media, type(request.sampling)(**{**params, **changes}))


async def test_stop_string_truncates_text_and_never_leaks(engine: TransformersEngine) -> None:
    full = await run_engine(engine, LONG, "stop-full")
    text = "".join(o.text for o in full)
    clean = [i for i in range(2, len(text) - 2) if "\ufffd" not in text[i : i + 2]]
    stop = text[clean[0] : clean[0] + 2]
    outputs = await run_engine(engine, with_sampling(LONG, stop=[stop]), "stop-string")
    assert "".join(o.text for o in outputs) == text[: text.find(stop)]
    assert outputs[-1].finish_reason == "stop"
    assert token_ids(outputs) == token_ids(full)[: len(outputs)]


async def test_stop_token_id_ends_generation(engine: TransformersEngine) -> None:
    tokens = token_ids(await run_engine(engine, LONG, "stop-id-full"))
    stop_at = next(i for i in range(1, len(tokens)) if tokens[i] not in tokens[:i])
    outputs = await run_engine(engine, with_sampling(LONG, stop_token_ids=[tokens[stop_at]]), "stop-id")
    assert token_ids(outputs) == tokens[: stop_at + 1]
    assert outputs[-1].finish_reason == "stop" and outputs[-1].text == ""


async def test_eos_stops_unless_ignored(engine: TransformersEngine) -> None:
    stopped = await run_engine(engine, EARLY_EOS, "eos")
    assert stopped[-1].finish_reason == "stop" and stopped[-1].token_id in engine.info.eos_token_ids
    ignored = await run_engine(engine, with_sampling(EARLY_EOS, ignore_eos=True), "eos-ignored")
    assert len(ignored) == 12 and ignored[-1].finish_reason == "length"
    assert token_ids(ignored)[: len(stopped)] == token_ids(stopped)


async def test_max_tokens_one_is_the_prefill_token(engine: TransformersEngine) -> None:
    outputs = await run_engine(engine, with_sampling(LONG, max_tokens=1), "one")
    assert len(outputs) == 1 and outputs[0].finish_reason == "length"


async def test_usage_counts_media_tokens(
    engine: TransformersEngine, reference_for: Callable[[str], Reference]
) -> None:
    request = Request("Describe the image.", [media.image(1, 112, 112)], greedy(5, ignore_eos=True))
    outputs = await run_engine(engine, request, "usage")
    prompt_len = reference_for(FAMILY).inputs(request)["input_ids"].shape[1]
    assert [(o.prompt_tokens, o.completion_tokens, o.index) for o in outputs] == [
        (prompt_len, i + 1, i) for i in range(5)
    ]


async def test_logprobs_equal_hf_raw_logits(
    engine: TransformersEngine, reference_for: Callable[[str], Reference]
) -> None:
    request = Request(
        "Describe the image.", [media.image(1, 84, 56)], sampled(3, 6, logprobs=True, top_logprobs=3)
    )
    outputs = await run_engine(engine, request, "logprobs")
    reference = reference_for(FAMILY)
    torch.manual_seed(request.sampling.seed)
    s = request.sampling
    hf = reference.model.generate(
        **reference.inputs(request),
        do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, repetition_penalty=1.0,
        max_new_tokens=s.max_tokens, output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip
    for output, logits in zip(outputs, hf.logits, strict=True):
        expected = torch.log_softmax(logits[0].float(), dim=-1)
        tolerance = rounding_tolerance(expected)
        assert output.logprob == pytest.approx(float(expected[output.token_id]), abs=tolerance)
        assert output.top_logprobs is not None
        top = torch.topk(expected, 3)
        assert [t for t, _ in output.top_logprobs] == top.indices.tolist()
        assert [v for _, v in output.top_logprobs] == pytest.approx(top.values.tolist(), abs=tolerance)


async def test_no_logprobs_unless_asked(engine: TransformersEngine) -> None:
    outputs = await run_engine(engine, with_sampling(LONG, max_tokens=3), "no-logprobs")
    assert all(o.logprob is None and o.top_logprobs is None for o in outputs)


async def _rows_after_next_step(engine: TransformersEngine) -> int:
    """Run a one-step request: by its end, every earlier drop has been applied."""
    await run_engine(engine, with_sampling(LONG, max_tokens=2), f"probe-{engine.stats.decode_steps}")
    return engine.stats.rows_after_step


async def test_cancel_ends_the_stream_and_frees_the_row(engine: TransformersEngine) -> None:
    prompt = engine.info.render_prompt(LONG.messages())
    long = with_sampling(LONG, max_tokens=10_000).sampling
    result = await engine.prefill(prompt, [], long)
    stream = engine.generate("to-cancel", result.kv, result.state, long)
    for _ in range(3):
        await anext(stream)
    await engine.cancel("to-cancel")
    assert [o async for o in stream] == []
    assert await _rows_after_next_step(engine) == 0


async def test_abandoned_iterator_frees_the_row(engine: TransformersEngine) -> None:
    prompt = engine.info.render_prompt(LONG.messages())
    long = with_sampling(LONG, max_tokens=10_000).sampling
    result = await engine.prefill(prompt, [], long)
    stream = engine.generate("abandoned", result.kv, result.state, long)
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert await _rows_after_next_step(engine) == 0


async def test_limits_make_requests_wait_not_fail() -> None:
    narrow = load_engine(tiny_model_dir(FAMILY), limits=EngineLimits(max_batch_size=2))
    one_at_a_time = load_engine(tiny_model_dir(FAMILY), limits=EngineLimits(max_kv_tokens=1))
    try:
        for engine, peak in ((narrow, 2), (one_at_a_time, 1)):
            requests = [with_sampling(LONG, max_tokens=4 + i) for i in range(5)]
            results = await asyncio.gather(
                *(run_engine(engine, r, f"limit-{i}") for i, r in enumerate(requests))
            )
            assert [len(r) for r in results] == [4 + i for i in range(5)]
            assert engine.stats.peak_batch == peak
    finally:
        await narrow.close()
        await one_at_a_time.close()


async def test_concurrent_encodes_share_one_batch(engine: TransformersEngine) -> None:
    batches, items = engine.stats.encode_batches, engine.stats.encode_items
    results = await asyncio.gather(
        engine.encode([media.image(1)]), engine.encode([media.image(2), media.video(3)])
    )
    assert (engine.stats.encode_batches - batches, engine.stats.encode_items - items) == (1, 3)
    assert [[meta.modality for _, meta in r] for r in results] == [["image"], ["image", "video"]]
    alone = await engine.encode([media.image(2)])
    # another batch shape may pick other float32 kernels (AVX-512): equal up to rounding, not bitwise
    assert equal_up_to_rounding(results[1][0][0], alone[0][0])
    assert not equal_up_to_rounding(results[0][0][0], alone[0][0])  # another image's embeddings


async def test_a_bad_item_fails_only_its_own_request(engine: TransformersEngine) -> None:
    good, bad = await asyncio.gather(
        engine.encode([media.image(1)]), engine.encode([media.audio(0)]), return_exceptions=True
    )
    assert isinstance(good, list) and len(good) == 1
    assert isinstance(bad, ValueError)


async def test_kv_that_does_not_fit_is_refused_up_front(engine: TransformersEngine) -> None:
    prompt = engine.info.render_prompt(LONG.messages())
    result = await engine.prefill(prompt, [], LONG.sampling)
    with pytest.raises(ValueError, match="layers"):
        engine.generate("bad-kv", result.kv[:-1], result.state, LONG.sampling)
    with pytest.raises(ValueError, match="layers"):
        engine.generate("bad-len", [t[:, :, :-1] for t in result.kv], result.state, LONG.sampling)


async def test_prompt_longer_than_the_context_is_refused(
    engine_for: Callable[[str], TransformersEngine],
) -> None:
    engine = engine_for("llava")
    with pytest.raises(ValueError, match="context"):
        await engine.prefill([1] * (engine.info.max_context + 1), [], LONG.sampling)


async def test_cancelled_consumer_task_frees_the_row(engine: TransformersEngine) -> None:
    prompt = engine.info.render_prompt(LONG.messages())
    long = with_sampling(LONG, max_tokens=10_000).sampling
    result = await engine.prefill(prompt, [], long)
    three = asyncio.Event()

    async def consume() -> None:
        async for output in engine.generate("consumer", result.kv, result.state, long):
            if output.index == 2:
                three.set()

    task = asyncio.create_task(consume())
    await three.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _rows_after_next_step(engine) == 0
