"""The mock engine: same interface, deterministic word output, batched simulated decode steps."""

from __future__ import annotations

import asyncio
import re

import pytest

from queues.messages import SamplingParams
from tests.models import tiny_model_dir
from tests.unit.engine import media
from workers.engine.base import Engine, TokenOutput
from workers.engine.limits import EngineLimits
from workers.engine.mock import MockEngine, MockTimings


@pytest.fixture
async def mock() -> MockEngine:
    return MockEngine.from_dir(
        tiny_model_dir("qwen2-vl"), MockTimings(decode_s_per_step=0.001, tokens_per_item=5)
    )


async def run(
    engine: Engine, text: str, sampling: SamplingParams, rid: str, images: int = 0, stream: bool = True
) -> list[TokenOutput]:
    content = [{"type": "image"}] * images + [{"type": "text", "text": text}]
    prompt = engine.info.render_prompt([{"role": "user", "content": content}])
    items = await engine.encode([media.image(i) for i in range(images)])
    result = await engine.prefill(prompt, items, sampling)
    return [o async for o in engine.generate(rid, result.kv, result.state, sampling, stream=stream)]


async def test_output_is_deterministic_words(mock: MockEngine) -> None:
    sampling = SamplingParams(max_tokens=6, seed=1)
    first = await run(mock, "hello", sampling, "a")
    again = await run(mock, "hello", sampling, "b")
    other_seed = await run(mock, "hello", SamplingParams(max_tokens=6, seed=2), "c")
    other_prompt = await run(mock, "hello there", sampling, "d")
    ids = [o.token_id for o in first]
    assert ids == [o.token_id for o in again]
    assert ids != [o.token_id for o in other_seed] and ids != [o.token_id for o in other_prompt]
    text = "".join(o.text for o in first)
    assert re.fullmatch(r"( ?[A-Za-z]{2,})+", text)
    assert first[-1].finish_reason == "length" and first[-1].completion_tokens == 6


async def test_media_tokens_count_in_the_prompt(mock: MockEngine) -> None:
    with_images = await run(mock, "look", SamplingParams(max_tokens=2, seed=0), "m", images=2)
    without = await run(mock, "look", SamplingParams(max_tokens=2, seed=0), "n")
    # each image: <|vision_start|> + 5 expanded pads + <|vision_end|>
    assert with_images[0].prompt_tokens - without[0].prompt_tokens == 2 * (5 + 2)


async def test_concurrent_requests_share_decode_steps() -> None:
    engine = MockEngine.from_dir(tiny_model_dir("qwen2-vl"), limits=EngineLimits(max_batch_size=4))
    sampling = SamplingParams(max_tokens=10, seed=0)
    results = await asyncio.gather(*(run(engine, f"q{i}", sampling, f"r{i}") for i in range(8)))
    assert all(len(r) == 10 for r in results)
    assert engine.stats.peak_batch == 4
    assert engine.stats.decode_steps < engine.stats.decode_tokens


async def test_stop_strings_and_cancel(mock: MockEngine) -> None:
    full = await run(mock, "x", SamplingParams(max_tokens=8, seed=3), "full")
    text = "".join(o.text for o in full)
    stop = text[4:7]
    stopped = await run(mock, "x", SamplingParams(max_tokens=8, seed=3, stop=[stop]), "stopped")
    assert "".join(o.text for o in stopped) == text[: text.find(stop)] and stopped[-1].finish_reason == "stop"

    prompt = mock.info.render_prompt([{"role": "user", "content": "x"}])
    long = SamplingParams(max_tokens=1_000_000, seed=0)
    result = await mock.prefill(prompt, [], long)
    stream = mock.generate("cancel-me", result.kv, result.state, long)
    await anext(stream)
    await anext(stream)
    await mock.cancel("cancel-me")
    assert [o async for o in stream] == []


async def test_not_streaming_gives_the_same_outputs_in_fewer_wakeups(mock: MockEngine) -> None:
    sampling = SamplingParams(max_tokens=8, seed=3)
    prompt = mock.info.render_prompt([{"role": "user", "content": "tell"}])
    streamed = await run(mock, "tell", sampling, "s1")
    result = await mock.prefill(prompt, [], sampling)
    arrivals: list[int] = []
    outputs: list[TokenOutput] = []
    steps_before = mock.stats.decode_steps
    async for output in mock.generate("s2", result.kv, result.state, sampling, stream=False):
        arrivals.append(mock.stats.decode_steps - steps_before)
        outputs.append(output)
    fields = [(o.index, o.token_id, o.finish_reason, o.completion_tokens) for o in outputs]
    assert fields == [(o.index, o.token_id, o.finish_reason, o.completion_tokens) for o in streamed]
    assert "".join(o.text for o in outputs) == "".join(o.text for o in streamed)  # all of it at the end
    # the first token comes from prefill at once; every other one only after the last step
    assert arrivals[0] == 0 and set(arrivals[1:]) == {mock.stats.decode_steps - steps_before}


async def test_a_non_streamed_answer_is_decoded_once_at_the_end(mock: MockEngine) -> None:
    sampling = SamplingParams(max_tokens=8, seed=4)
    streamed = await run(mock, "y", sampling, "streamed")
    held = await run(mock, "y", sampling, "held", stream=False)
    ids = [o.token_id for o in streamed]
    assert [o.token_id for o in held] == ids
    assert [o.text for o in held[:-1]] == [""] * 7
    text = mock.info.tokenizer.decode(ids, skip_special_tokens=True)
    assert held[-1].text == "".join(o.text for o in streamed) == text
    # a stop string needs the text token by token, streamed or not
    stop = text[3:6]
    stopped = await run(mock, "y", SamplingParams(max_tokens=8, seed=4, stop=[stop]), "stop", stream=False)
    assert "".join(o.text for o in stopped) == text[: text.find(stop)]
