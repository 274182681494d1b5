"""Presence / frequency penalties (OpenAI semantics, no HF counterpart) against a direct computation
on the model's own logits, and min_tokens / repetition penalty against HF `generate`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from tests.unit.engine import media
from tests.unit.engine.oracle import Reference, Request, greedy, run_engine, sampled, token_ids
from workers.engine.engine import TransformersEngine

FAMILY = "qwen2-audio"  # its greedy answer to this prompt repeats a token, so penalties matter
PROMPT = "What is the weather today?"


async def test_presence_and_frequency_penalties(
    engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    engine, reference = engine_for(FAMILY), reference_for(FAMILY)
    request = Request(PROMPT, [], greedy(14, presence_penalty=0.8, frequency_penalty=0.6))
    penalized = token_ids(await run_engine(engine, request, "penalized"))
    plain = token_ids(await run_engine(engine, Request(PROMPT, [], greedy(14)), "plain"))
    assert penalized != plain

    prompt = reference.inputs(request)["input_ids"]
    for step, token in enumerate(penalized):
        ids = torch.cat([prompt, torch.tensor([penalized[:step]], dtype=torch.long)], dim=1)
        with torch.no_grad():
            logits = reference.model(input_ids=ids).logits[0, -1].float()
        for seen, count in Counter(penalized[:step]).items():
            logits[seen] -= 0.6 * count + 0.8
        assert token == int(logits.argmax()), f"step {step}"


async def test_min_tokens_holds_back_eos(
    engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    family = "qwen2-vl"
    short = Request("Describe the image.", [media.image(21)], greedy(12))
    ended = await run_engine(engine_for(family), short, "short")
    assert ended[-1].finish_reason == "stop" and len(ended) < 6  # this image makes it stop early

    held = Request(short.text, short.media, greedy(12, min_tokens=6))
    outputs = await run_engine(engine_for(family), held, "held")
    assert len(outputs) > 6
    assert token_ids(outputs) == reference_for(family).generate(held)


async def test_repetition_penalty_equals_hf(
    engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    for name, sampling in {
        "greedy": greedy(14, repetition_penalty=1.3),
        "sampled": sampled(5, 14, repetition_penalty=0.7),
    }.items():
        request = Request(PROMPT, [media.audio(3)], sampling)
        outputs = await run_engine(engine_for(FAMILY), request, f"repetition-{name}")
        assert token_ids(outputs) == reference_for(FAMILY).generate(request)
