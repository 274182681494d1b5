"""The project's correctness oracle: our split pipeline gives exactly HF `generate`'s tokens.

For each family and input kind: greedy and seeded sampling, each request alone, and eight requests
of different lengths encoded and decoding concurrently in shared batches. Batching changes float32
rounding (other kernels for other shapes), never which token wins unless two candidates are within
that rounding of each other: the README's "Exactness" says how close the tiny models come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.unit.engine import media
from tests.unit.engine.oracle import Reference, Request, greedy, run_engine, sampled, token_ids
from workers.engine.engine import TransformersEngine
from workers.engine.prefill import expand_placeholders

QWEN_VL_CASES = {
    "text": Request("Tell me a story about a cat."),
    "image": Request("Describe the image.", [media.image(1, 84, 56)]),
    "three_images": Request(
        "Compare them.", [media.image(2), media.image(3, 112, 84), media.image(4, 140, 70)]
    ),
    "video": Request("What happens?", [media.video(5, frames=4)]),
}
CASES: dict[str, dict[str, Request]] = {
    "qwen2-vl": QWEN_VL_CASES,
    "qwen2.5-vl": {**QWEN_VL_CASES, "video": Request("What happens?", [media.video(5, frames=6, fps=3.0)])},
    "llava": {
        "text": Request("Tell me a story about a cat."),
        "image": Request("Describe the image.", [media.image(1, 84, 56)]),
        "three_images": Request(
            "Compare them.", [media.image(2), media.image(3, 112, 84), media.image(4, 70, 140)]
        ),
    },
    "qwen2-audio": {
        "text": Request("Tell me a story about a cat."),
        "audio": Request("What is this sound?", [media.audio(6, seconds=1.0)]),
        "two_clips": Request("Which is louder?", [media.audio(7, seconds=0.5), media.audio(8, seconds=2.5)]),
    },
}
SAMPLINGS = {"greedy": greedy(), "sampled": sampled(seed=7), "sampled_plain": sampled(11, top_p=1.0, top_k=0)}
PARAMS = [
    pytest.param(family, case, sampling, id=f"{family}-{case}-{sampling}")
    for family, cases in CASES.items()
    for case in cases
    for sampling in SAMPLINGS
]


def _with(request: Request, sampling_name: str) -> Request:
    return Request(request.text, request.media, SAMPLINGS[sampling_name])


@pytest.mark.parametrize(("family", "case", "sampling"), PARAMS)
async def test_tokens_equal_hf_generate(
    family: str,
    case: str,
    sampling: str,
    engine_for: Callable[[str], TransformersEngine],
    reference_for: Callable[[str], Reference],
) -> None:
    request = _with(CASES[family][case], sampling)
    expected = reference_for(family).generate(request)
    outputs = await run_engine(engine_for(family), request, f"{family}-{case}-{sampling}")
    assert token_ids(outputs) == expected
    assert outputs[-1].finish_reason is not None


@pytest.mark.parametrize("family", list(CASES))
async def test_expanded_prompt_equals_processor_ids(
    family: str, engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    engine = engine_for(family)
    for request in CASES[family].values():
        prompt = engine.info.render_prompt(request.messages())
        metas = [meta for _, meta in await engine.encode(request.media)]
        expanded, _ = expand_placeholders(prompt, metas, engine.info.placeholder_ids)
        assert expanded == reference_for(family).inputs(request)["input_ids"][0].tolist()


@pytest.mark.parametrize("family", list(CASES))
async def test_batch_of_eight_equals_solo(
    family: str, engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    requests = []
    for i in range(8):
        base = list(CASES[family].values())[i % len(CASES[family])]
        sampling = greedy(max_tokens=4 + i) if i % 2 else sampled(seed=100 + i, max_tokens=4 + i)
        requests.append(Request(base.text + " please" * i, base.media, sampling))
    expected = [reference_for(family).generate(r) for r in requests]
    engine = engine_for(family)
    peak_before = engine.stats.peak_batch
    engine.stats.peak_batch = 0
    batches_before = engine.stats.encode_batches
    results = await asyncio.gather(
        *(run_engine(engine, r, f"batch-{family}-{i}") for i, r in enumerate(requests))
    )
    assert [token_ids(r) for r in results] == expected
    assert engine.stats.peak_batch > 1  # they really shared decode steps
    with_media = sum(bool(r.media) for r in requests)
    assert engine.stats.encode_batches - batches_before < with_media  # and encoder batches
    engine.stats.peak_batch = max(peak_before, engine.stats.peak_batch)


@pytest.mark.parametrize("family", [f for f in CASES if "image" in CASES[f]])
async def test_different_image_different_tokens(
    family: str, engine_for: Callable[[str], TransformersEngine]
) -> None:
    engine = engine_for(family)
    runs = [
        token_ids(
            await run_engine(
                engine,
                Request("Describe the image.", [media.image(seed, 112, 112)], greedy(12)),
                f"img{seed}",
            )
        )
        for seed in (21, 22)
    ]
    assert runs[0] != runs[1]
