"""How far float32 rounding moves our results from Hugging Face's, and how far that is from changing
a token: the figures behind the README's "Exactness" section.

    .venv/bin/python -m tests.unit.engine.rounding [requests per family]

Per family, with one media item per request (sizes varied): the encoder's output for an item alone
vs inside one batch of every request's items; our chosen-token logprobs (requests decoding together)
vs `log_softmax` of HF `generate`'s logits; the smallest gap between HF's two best greedy logits; and
whether every request, run concurrently, gives HF's tokens (greedy and seeded sampling alternate).
Differences are relative to the largest magnitude in the tensor (see `oracle.ROUNDING`).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import torch

from tests.models import FAMILIES, tiny_model_dir
from tests.unit.engine import media
from tests.unit.engine.oracle import Reference, Request, greedy, run_engine, sampled, token_ids
from workers.engine.engine import TransformersEngine
from workers.engine.loader import load_engine

SIZES = [(56, 56), (84, 56), (112, 112), (224, 168), (28, 84)]


def requests(family: str, n: int) -> list[Request]:
    out = []
    for i in range(n):
        width, height = SIZES[i % len(SIZES)]
        item = media.audio(100 + i) if family == "qwen2-audio" else media.image(100 + i, width, height)
        sampling = greedy(16, logprobs=True) if i % 2 == 0 else sampled(i, 16, logprobs=True)
        out.append(Request(f"Describe item {i}.", [item], sampling))
    return out


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


async def encoder_rounding(engine: TransformersEngine, batch: list[Request]) -> tuple[int, float]:
    alone = [await engine.encode(r.media) for r in batch]
    together = await asyncio.gather(*(engine.encode(r.media) for r in batch))
    pairs = [(b[0][0], a[0][0]) for a, b in zip(alone, together, strict=True)]
    return sum(torch.equal(x, y) for x, y in pairs), max(relative(x, y) for x, y in pairs)


def hf_run(reference: Reference, request: Request) -> tuple[list[int], list[torch.Tensor]]:
    """Like `Reference.generate`, with the logits of each step."""
    s = request.sampling
    options: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    if s.temperature:
        options = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k}
        torch.manual_seed(s.seed)
    options["repetition_penalty"] = s.repetition_penalty
    inputs = reference.inputs(request)
    with torch.no_grad():
        out = reference.model.generate(
            **inputs, max_new_tokens=s.max_tokens, output_logits=True, return_dict_in_generate=True, **options
        )
    tokens = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    return tokens, [logits[0].float() for logits in out.logits]


async def measure(family: str, n: int) -> list[str]:
    engine = load_engine(tiny_model_dir(family))
    reference = Reference(tiny_model_dir(family))
    batch = requests(family, n)
    try:
        bit_equal, encoder_worst = await encoder_rounding(engine, batch)
        expected = [hf_run(reference, r) for r in batch]
        got = await asyncio.gather(*(run_engine(engine, r, f"r{i}") for i, r in enumerate(batch)))
    finally:
        await engine.close()
    same_tokens = sum(token_ids(g) == tokens for g, (tokens, _) in zip(got, expected, strict=True))
    identical, logit_worst, margins = 0, 0.0, []
    for request, outputs, (_, logits) in zip(batch, got, expected, strict=True):
        for output, step in zip(outputs, logits, strict=False):
            if request.sampling.temperature == 0:
                top = torch.topk(step, 2).values
                margins.append(float((top[0] - top[1]) / step.abs().max()))
            logprobs = torch.log_softmax(step, dim=-1)
            theirs = float(logprobs[output.token_id])
            identical += output.logprob == theirs
            error = abs((output.logprob or 0.0) - theirs) / float(logprobs.abs().max())
            logit_worst = max(logit_worst, error)
    steps = sum(len(logits) for _, logits in expected)
    return [
        family,
        f"{bit_equal}/{n}",
        f"{encoder_worst:.1e}",
        f"{identical}/{steps}",
        f"{logit_worst:.1e}",
        f"{min(margins):.1e}",
        f"{same_tokens}/{n}",
    ]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    header = [
        "family", "encoder bit-equal", "encoder worst", "logprob identical", "logprob worst",
        "smallest greedy gap", "tokens = HF",
    ]  # fmt: skip
    rows = [asyncio.run(measure(family, n)) for family in FAMILIES]
    print(f"| {' | '.join(header)} |")
    print(f"|{'|'.join('---' if i == 0 else '---:' for i in range(len(header)))}|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
