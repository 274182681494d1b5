"""logit_bias against HF `generate` with the same biases as single-token `sequence_bias` (applied first,
as HF orders its processors), greedy and sampled, and per row: biased and plain requests decoded in
one batch each get their own tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.unit.engine import media
from tests.unit.engine.oracle import Reference, Request, greedy, run_engine, sampled, token_ids
from workers.engine.engine import TransformersEngine

FAMILY = "qwen2-vl"
PROMPT = "Describe the image."


async def test_logit_bias_equals_hf_sequence_bias(
    engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    engine, reference = engine_for(FAMILY), reference_for(FAMILY)
    plain = Request(PROMPT, [media.image(4)], greedy(10))
    unbiased = token_ids(await run_engine(engine, plain, "plain"))
    # push the plain answer's second token away and another token up: the answer must change
    bias = {unbiased[1]: -100.0, 300: 4.0, 17: -2.5}
    for name, sampling in {
        "greedy": greedy(10, logit_bias=bias),
        "sampled": sampled(11, 10, logit_bias=bias),
    }.items():
        request = Request(PROMPT, plain.media, sampling)
        ours = token_ids(await run_engine(engine, request, f"bias-{name}"))
        assert ours == reference.generate(request), name
        if name == "greedy":
            assert ours != unbiased and unbiased[1] not in ours


async def test_biased_and_plain_rows_share_a_batch(
    engine_for: Callable[[str], TransformersEngine], reference_for: Callable[[str], Reference]
) -> None:
    engine, reference = engine_for(FAMILY), reference_for(FAMILY)
    requests = [
        Request(PROMPT, [media.image(i)], greedy(8, logit_bias={300: 6.0} if i % 2 else {})) for i in range(4)
    ]
    outputs = await asyncio.gather(*(run_engine(engine, r, f"row-{i}") for i, r in enumerate(requests)))
    for request, output in zip(requests, outputs, strict=True):
        assert token_ids(output) == reference.generate(request)
