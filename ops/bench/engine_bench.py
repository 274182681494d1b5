"""Engine benchmark: decode tokens/s of our continuous-batching engine against HF `generate`.

    python -m ops.bench.engine_bench [--model DIR] [--device cpu|cuda] [--dtype float32|bfloat16]
                                     [--concurrency 1,8,32,64] [--max-tokens 64] [--threads N]

For each concurrency C, the same C text requests (prompts of different lengths, greedy, EOS
ignored so every request makes exactly --max-tokens tokens) go through:
  - ours: C prefills first, then C concurrent `generate` streams on one engine (continuous
    batching); decode = from the start of the streams to the last token;
  - HF one at a time: `generate` per request, sequentially; its rate does not depend on C, so it is
    measured on the first --sequential-sample requests;
  - HF static batching: one `generate` over the C prompts, left-padded.
Decode tokens are the tokens after the first (the first comes from prefill); for HF, decode cost =
cost(generate max_tokens) - cost(generate 1 token). Two costs are reported: wall seconds, and CPU
seconds of this process (steadier when the machine is shared: other work stretches wall time but
not our CPU time). Each figure is the best of --repeats runs, the systems interleaved run by run.
Encode: --encode-items images as concurrent single-item calls (ours batches them) against the same
encoder one image at a time.
Without --model, the tiny random-weight qwen2-vl is built into .cache/tiny-models/bench-qwen2-vl.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ops.tiny_model import build
from queues.messages import SamplingParams
from workers.engine.engine import TransformersEngine
from workers.engine.limits import EngineLimits
from workers.engine.loader import load_engine
from workers.media.types import LoadedImage, LoadedMedia

ROOT = Path(__file__).resolve().parents[2]
WORDS = "the quick brown fox jumps over the lazy dog while a small cat watches from the window".split()  # noqa: SIM905
SYSTEMS = ("ours", "HF 1-by-1", "HF static")


@dataclass(frozen=True)
class Cost:
    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.wall - other.wall, self.cpu - other.cpu)


@dataclass(frozen=True)
class Rate:
    tokens: int
    cost: Cost

    @property
    def per_s(self) -> float:
        return self.tokens / self.cost.wall

    @property
    def per_cpu_s(self) -> float:
        return self.tokens / self.cost.cpu


class Meter:
    def __init__(self) -> None:
        self.cost = Cost()

    @contextmanager
    def measure(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.cost = Cost(time.perf_counter() - wall, time.process_time() - cpu)


def prompts(engine: TransformersEngine, count: int) -> list[list[int]]:
    out = []
    for i in range(count):
        text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + (i * 7) % 40))
        out.append(engine.info.render_prompt([{"role": "user", "content": text}]))
    return out


def sampling(max_tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, seed=0, temperature=0, ignore_eos=True)


async def ours(engine: TransformersEngine, batch: list[list[int]], max_tokens: int) -> Rate:
    params = sampling(max_tokens)
    prefilled = [await engine.prefill(prompt, [], params) for prompt in batch]

    async def stream(i: int) -> int:
        result = prefilled[i]
        return len([o async for o in engine.generate(f"bench-{i}", result.kv, result.state, params)])

    meter = Meter()
    with meter.measure():
        counts = await asyncio.gather(*(stream(i) for i in range(len(batch))))
    return Rate(sum(counts) - len(batch), meter.cost)


def hf_generate(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_tokens: int, pad: int) -> Cost:
    meter = Meter()
    with meter.measure(), torch.no_grad():
        model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=1.0,
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,  # as ignore_eos: every request makes max_tokens
            pad_token_id=pad,
        )
    return meter.cost


def hf_decode(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_tokens: int, pad: int) -> Rate:
    """Tokens 2..max_tokens of every row, and their cost: a full run minus a 1-token run."""
    cost = hf_generate(model, ids, mask, max_tokens, pad) - hf_generate(model, ids, mask, 1, pad)
    return Rate(ids.shape[0] * (max_tokens - 1), cost)


def hf_sequential(
    model: Any, batch: list[list[int]], max_tokens: int, pad: int, device: torch.device
) -> Rate:
    tokens, cost = 0, Cost()
    for prompt in batch:
        ids = torch.tensor([prompt], device=device)
        rate = hf_decode(model, ids, torch.ones_like(ids), max_tokens, pad)
        tokens, cost = tokens + rate.tokens, cost + rate.cost
    return Rate(tokens, cost)


def hf_static(model: Any, batch: list[list[int]], max_tokens: int, pad: int, device: torch.device) -> Rate:
    width = max(len(p) for p in batch)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=device)  # left padding
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
    return hf_decode(model, ids, mask, max_tokens, pad)


def images(count: int, size: int) -> list[LoadedMedia]:
    rng = np.random.default_rng(0)
    return [
        LoadedImage(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)), f"bench-{i}")
        for i in range(count)
    ]


async def encode_rates(engine: TransformersEngine, count: int, size: int) -> tuple[Rate, Rate]:
    items = images(count, size)
    await engine.encode(items[:1])  # warm-up
    batched, single = Meter(), Meter()
    with batched.measure():
        await asyncio.gather(*(engine.encode([item]) for item in items))
    with single.measure(), torch.no_grad():
        for item in items:
            engine.family.encode([item])
    return Rate(count, batched.cost), Rate(count, single.cost)


def table(rows: dict[int, list[Rate]], encode: tuple[Rate, Rate], header: str) -> str:
    def best(rates: list[Rate], cpu: bool) -> float:
        return max(r.per_cpu_s if cpu else r.per_s for r in rates)

    lines = [header]
    for cpu, unit in ((False, "decode tokens/s (wall)"), (True, "decode tokens per CPU-second")):
        lines += [
            "",
            unit,
            f"{'concurrency':>11} | {'ours':>9} | {'HF 1-by-1':>9} | {'HF static':>9} | "
            f"{'vs 1-by-1':>9} | {'vs static':>9}",
            "-" * 71,
        ]
        for level, rates in rows.items():
            ours_, seq, static = (best(rates[i :: len(SYSTEMS)], cpu) for i in range(len(SYSTEMS)))
            lines.append(
                f"{level:>11} | {ours_:>9.1f} | {seq:>9.1f} | {static:>9.1f} | "
                f"{ours_ / seq:>8.2f}x | {ours_ / static:>8.2f}x"
            )
    batched, single = encode
    lines += [
        "",
        f"encode images/s (wall): {batched.per_s:.1f} batched (ours) vs {single.per_s:.1f} one at a time "
        f"({batched.per_s / single.per_s:.2f}x); per CPU-second: {batched.per_cpu_s:.1f} vs "
        f"{single.per_cpu_s:.1f}",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    if args.threads:
        torch.set_num_threads(args.threads)  # for every system alike
    model_dir = args.model or build("qwen2-vl", ROOT / ".cache" / "tiny-models" / "bench-qwen2-vl")
    device = torch.device(args.device)
    levels = [int(c) for c in args.concurrency.split(",")]
    engine = load_engine(
        model_dir, device, getattr(torch, args.dtype), EngineLimits(max_batch_size=max(levels))
    )
    model = engine.family.model
    pad = engine.info.tokenizer.pad_token_id or 0
    everything = prompts(engine, max(levels))
    sample = everything[: args.sequential_sample]
    await ours(engine, everything[:2], 4)  # warm-up
    hf_static(model, everything[:2], 4, pad, device)
    rows: dict[int, list[Rate]] = {}
    for level in levels:
        batch = everything[:level]
        rows[level] = []
        for _ in range(args.repeats):  # interleaved, so that all systems see the same machine load
            rows[level] += [
                await ours(engine, batch, args.max_tokens),
                hf_sequential(model, sample, args.max_tokens, pad, device),
                hf_static(model, batch, args.max_tokens, pad, device),
            ]
    encode = await encode_rates(engine, args.encode_items, args.image_size)
    await engine.close()
    header = (
        f"model {model_dir} on {device} ({args.dtype}), {torch.get_num_threads()} torch threads, "
        f"{args.max_tokens} tokens per request, best of {args.repeats}"
    )
    return table(rows, encode, header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--sequential-sample", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encode-items", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
