"""The sglang engine through the `Engine` interface, against HF `generate` and the transformers engine.

One sglang engine (agg stage) serves the whole module, fed both ways: pixel values from its own
`encode` (sglang runs its vision tower) and embeddings from the transformers engine's `encode` (what
the pd stage receives from our encode stage; sglang must not run its tower on them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import torch

from queues.messages import DecodeState, SamplingParams
from tests.models import tiny_model_dir
from tests.unit.engine import media
from tests.unit.engine.oracle import Reference, Request, greedy, run_engine, token_ids
from workers.engine.base import EncodedItem
from workers.engine.engine import TransformersEngine
from workers.engine.loader import load_engine
from workers.engine.model_info import ModelInfo
from workers.engine.sglang.engine import SglangEngine
from workers.engine.sglang.loader import load_sglang_engine
from workers.engine.types import TokenOutput
from workers.settings import WorkerSettings

QWEN2_VL_CASES = {
    "text": Request("Tell me a story about a cat."),
    "image": Request("Describe the image.", [media.image(1, 84, 56)]),
    "three_images": Request(
        "Compare them.", [media.image(2), media.image(3, 112, 84), media.image(4, 140, 70)]
    ),
    "video": Request("What happens?", [media.video(5, frames=4)]),
}
CASES = {
    "qwen2-vl": QWEN2_VL_CASES,
    # Qwen2.5-VL video positions follow real time (seconds per temporal grid step)
    "qwen2.5-vl": {
        **QWEN2_VL_CASES,
        "video": Request("What happens?", [media.video(5, frames=4, width=112, height=112, fps=2.0)]),
    },
}
FAMILIES = list(CASES)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    family: str = request.param
    return family


@pytest.fixture(scope="module")
def model_dir(family: str) -> Path:
    return tiny_model_dir(family)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> Reference:
    return Reference(model_dir)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hf(model_dir: Path) -> AsyncIterator[TransformersEngine]:
    engine = load_engine(model_dir)
    yield engine
    await engine.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sglang(model_dir: Path, placeholder_calls: Path) -> AsyncIterator[SglangEngine]:
    settings = WorkerSettings(model=str(model_dir), engine="sglang", max_kv_tokens=8192, max_batch_size=16)
    engine = await load_sglang_engine(settings, ModelInfo.load(model_dir), "agg")
    assert isinstance(engine, SglangEngine) and engine.media == "pixels"
    yield engine
    await engine.close()


@pytest.fixture(scope="module")
def sglang_pd(sglang: SglangEngine) -> SglangEngine:
    """The pd stage's engine (embeddings in) over the same sglang runtime. Never used concurrently
    with `sglang`: one sglang batch must not mix embeddings and pixel values (media.py)."""
    return SglangEngine(sglang.runtime, sglang.info, sglang.layout, "embeddings", None)


async def run(
    engine: SglangEngine, request: Request, items: list[EncodedItem], request_id: str
) -> list[TokenOutput]:
    prompt = engine.info.render_prompt(request.messages())
    result = await engine.prefill(prompt, items, request.sampling)
    return [out async for out in engine.generate(request_id, result.kv, result.state, request.sampling)]


@pytest.mark.parametrize("case", QWEN2_VL_CASES)
async def test_pixels_give_hf_generate_tokens(
    sglang: SglangEngine, reference: Reference, family: str, case: str
) -> None:
    """agg: our media through the HF processor, sglang's own vision tower."""
    request = CASES[family][case]
    if family == "qwen2.5-vl" and case == "video":  # sglang's tower differs on several frames: refused
        with pytest.raises(ValueError, match="frame by frame"):
            await run(sglang, request, await sglang.encode(request.media), "pixels-refused")
        request = Request(request.text, [media.video(5, frames=2, width=112, height=112, fps=2.0)])
    items = await sglang.encode(request.media)
    outputs = await run(sglang, request, items, f"pixels-{case}")
    assert token_ids(outputs) == reference.generate(request)


@pytest.mark.parametrize("case", QWEN2_VL_CASES)
async def test_embeddings_give_hf_generate_tokens(
    sglang_pd: SglangEngine, hf: TransformersEngine, reference: Reference, family: str, case: str
) -> None:
    """e-pd: embeddings from the transformers vision tower. They are (tokens, 64) tensors that
    sglang's tower (patch_embed takes 3*2*14*14 = 1176 values a row) could not even read: equal
    tokens mean sglang used them as they are."""
    request = CASES[family][case]
    items = await hf.encode(request.media)
    assert all(tensor.shape == (meta.num_tokens, 64) for tensor, meta in items)
    outputs = await run(sglang_pd, request, items, f"embeddings-{case}")
    assert token_ids(outputs) == reference.generate(request)


@pytest.mark.parametrize("media_from", ["sglang", "hf"], ids=["pixels", "embeddings"])
async def test_concurrent_requests_each_get_their_tokens(
    sglang: SglangEngine,
    sglang_pd: SglangEngine,
    hf: TransformersEngine,
    reference: Reference,
    media_from: str,
) -> None:
    engine, encoder = (sglang, sglang.encode) if media_from == "sglang" else (sglang_pd, hf.encode)
    requests = [
        Request(f"Question {i}.", [media.image(20 + i, 56 + 28 * (i % 3))] if i % 2 else [], greedy(6 + i))
        for i in range(8)
    ]
    wants = [reference.generate(request) for request in requests]

    async def one(i: int, request: Request) -> list[int]:
        return token_ids(await run(engine, request, await encoder(request.media), f"concurrent-{i}"))

    assert await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))) == wants


async def test_each_engine_takes_one_kind_of_media(
    sglang: SglangEngine, sglang_pd: SglangEngine, hf: TransformersEngine
) -> None:
    request = Request("Describe.", [media.image(1)])
    prompt = sglang.info.render_prompt(request.messages())
    with pytest.raises(ValueError, match="takes pixels only, the image item is embeddings"):
        await sglang.prefill(prompt, await hf.encode(request.media), greedy())
    with pytest.raises(ValueError, match="takes embeddings only, the image item is pixels"):
        await sglang_pd.prefill(prompt, await sglang.encode(request.media), greedy())


def _assembled(outputs: list[TokenOutput]) -> list[tuple[int, str, str | None, int, int]]:
    return [(o.token_id, o.text, o.finish_reason, o.prompt_tokens, o.completion_tokens) for o in outputs]


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": 12},
        {"max_tokens": 12, "min_tokens": 10},
        {"max_tokens": 12, "logprobs": True, "top_logprobs": 3},
        {"max_tokens": 12, "repetition_penalty": 1.3, "presence_penalty": 0.5, "frequency_penalty": 0.4},
    ],
    ids=["plain", "min_tokens", "logprobs", "penalties"],
)
async def test_outputs_equal_the_transformers_engine(
    sglang: SglangEngine, hf: TransformersEngine, extra: dict[str, object]
) -> None:
    """Greedy with each option: the same tokens, text deltas, finish reasons, usage and logprobs."""
    request = Request("Describe the image.", [media.image(9, 56, 84)], greedy(**extra))  # type: ignore[arg-type]
    want = await run_engine(hf, request, "hf-options")
    got = await run(sglang, request, await sglang.encode(request.media), "sglang-options")
    assert _assembled(got) == _assembled(want)
    for mine, theirs in zip(got, want, strict=True):
        if theirs.logprob is None:
            assert mine.logprob is None and mine.top_logprobs is None
            continue
        assert mine.logprob == pytest.approx(theirs.logprob, abs=1e-3)
        assert [t for t, _ in mine.top_logprobs or []] == [t for t, _ in theirs.top_logprobs or []]


async def test_stop_strings_and_stop_ids_end_where_the_transformers_engine_ends(
    sglang: SglangEngine, hf: TransformersEngine
) -> None:
    base = Request("Tell me a story about a dog.", [], greedy(16))
    free = await run_engine(hf, base, "hf-free")
    text = "".join(o.text for o in free)
    # two printable characters from the middle (a stop string is text, not a partial UTF-8 sequence)
    middle = [
        i
        for i in range(len(text) // 3, len(text) - 1)
        if text[i : i + 2].isascii() and text[i : i + 2].isprintable()
    ]
    stop_text = text[middle[0] : middle[0] + 2]
    stop_id = free[5].token_id
    for options in ({"stop": [stop_text]}, {"stop_token_ids": [stop_id]}):
        request = Request(base.text, [], greedy(16, **options))
        want = await run_engine(hf, request, "hf-stop")
        got = await run(sglang, request, [], "sglang-stop")
        assert want[-1].finish_reason == "stop" and len(want) < 16, options
        assert _assembled(got) == _assembled(want), options


@pytest.mark.parametrize(
    ("frames", "size", "fps"), [(8, 56, 2.0), (6, 56, 3.0)], ids=["many-frames", "timed-steps"]
)
async def test_videos_whose_positions_differ_from_transformers_are_refused(
    sglang: SglangEngine, frames: int, size: int, fps: float
) -> None:
    """sglang and transformers 5.x place the text after these videos differently (media.py)."""
    request = Request("What happens?", [media.video(6, frames=frames, width=size, height=size, fps=fps)])
    prompt = sglang.info.render_prompt(request.messages())
    with pytest.raises(ValueError, match="time positions"):
        await sglang.prefill(prompt, await sglang.encode(request.media), greedy())


async def test_seeded_sampling_reaches_sglang(sglang: SglangEngine) -> None:
    """sglang honours the seed only with deterministic inference (GPU); here: it samples, fully."""
    sampling = SamplingParams(max_tokens=8, seed=5, temperature=0.9, top_p=0.9, top_k=40, ignore_eos=True)
    outputs = await run(sglang, Request("Hello.", [], sampling), [], "sampled")
    assert len(outputs) == 8 and outputs[-1].finish_reason == "length"


async def test_cancel_ends_the_stream_and_frees_sglang(sglang: SglangEngine) -> None:
    sampling = greedy(200, ignore_eos=True)
    prompt = sglang.info.render_prompt(Request("Count.").messages())
    result = await sglang.prefill(prompt, [], sampling)
    stream = sglang.generate("to-cancel", result.kv, result.state, sampling)
    got = [await anext(stream), await anext(stream)]
    await sglang.cancel("to-cancel")
    got += [out async for out in stream]
    assert len(got) < 200 and all(out.finish_reason is None for out in got)
    await _until_sglang_forgets(sglang)
    # and the engine serves on
    outputs = await run(sglang, Request("Again.", [], greedy(3)), [], "after-cancel")
    assert len(outputs) == 3


async def test_closing_the_stream_early_aborts_the_sglang_request(sglang: SglangEngine) -> None:
    sampling = greedy(200, ignore_eos=True)
    prompt = sglang.info.render_prompt(Request("Count.").messages())
    result = await sglang.prefill(prompt, [], sampling)
    stream = sglang.generate("to-close", result.kv, result.state, sampling)
    await anext(stream)
    await stream.aclose()
    await _until_sglang_forgets(sglang)


async def _until_sglang_forgets(engine: SglangEngine) -> None:
    """sglang drops a request's state once it aborted it."""
    for _ in range(100):
        if not engine.runtime.tokenizer_manager.rid_to_state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"sglang still holds {list(engine.runtime.tokenizer_manager.rid_to_state)}")


async def test_errors_are_raised_not_served(sglang: SglangEngine) -> None:
    prompt = sglang.info.render_prompt(Request("Describe.", [media.image(1)]).messages())
    with pytest.raises(ValueError, match="placeholders"):
        await sglang.prefill(prompt, [], greedy())  # an image placeholder, no item
    with pytest.raises(ValueError):  # longer than sglang's KV pool (max_kv_tokens)
        await sglang.prefill([prompt[-1]] * 9000, [], greedy())
    state = DecodeState(
        prompt_len=1,
        next_position=1,
        first_token=0,
        num_layers=1,
        num_kv_heads=0,
        head_dim=0,
        kv_dtype="int64",
    )
    with pytest.raises(ValueError, match="handle"):
        sglang.generate("bogus", [torch.zeros(2, 3)], state, greedy())
    with pytest.raises(ValueError, match="gone"):
        sglang.generate("bogus", [torch.tensor([10**6])], state, greedy())
