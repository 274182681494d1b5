"""The two sides of the correctness oracle: Hugging Face `generate`, and our encode → prefill → decode
with the KV cache and decode state passed as they are between processes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import msgspec
import torch
import transformers
from transformers import AutoConfig, AutoProcessor
from transformers.video_utils import VideoMetadata

from queues.messages import DecodeState, SamplingParams
from workers.engine.base import Engine, TokenOutput
from workers.media.types import LoadedAudio, LoadedImage, LoadedMedia, LoadedVideo


@dataclass
class Request:
    """A chat turn: text parts and media in the order they appear, plus sampling."""

    text: str
    media: list[LoadedMedia] = field(default_factory=list)
    sampling: SamplingParams = field(
        default_factory=lambda: SamplingParams(max_tokens=8, seed=0, temperature=0)
    )

    def messages(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": item.modality} for item in self.media]
        return [{"role": "user", "content": [*parts, {"type": "text", "text": self.text}]}]


def greedy(max_tokens: int = 8, **extra: Any) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, seed=0, temperature=0, **extra)


def sampled(seed: int, max_tokens: int = 8, **extra: Any) -> SamplingParams:
    params: dict[str, Any] = {"temperature": 0.9, "top_p": 0.9, "top_k": 40, **extra}
    return SamplingParams(max_tokens=max_tokens, seed=seed, **params)


class Reference:
    """A separate HF model instance and processor for the same checkpoint."""

    def __init__(self, model_dir: Any, device: str | None = None) -> None:
        """`device`: where `generate` runs; default `ORACLE_DEVICE` or cpu (the GPU check sets it to the
        workers' DEVICE, so tokens are compared on the same hardware)."""
        self.device = torch.device(device or os.environ.get("ORACLE_DEVICE") or "cpu")
        self.processor = AutoProcessor.from_pretrained(model_dir)
        architecture = AutoConfig.from_pretrained(model_dir).architectures[0]
        model = getattr(transformers, architecture).from_pretrained(model_dir, attn_implementation="sdpa")
        self.model = model.to(self.device).eval()

    def inputs(self, request: Request) -> Any:
        text = self.processor.apply_chat_template(
            request.messages(), add_generation_prompt=True, tokenize=False
        )
        kwargs: dict[str, Any] = {}
        images = [m.image for m in request.media if isinstance(m, LoadedImage)]
        videos = [m for m in request.media if isinstance(m, LoadedVideo)]
        clips = [m for m in request.media if isinstance(m, LoadedAudio)]
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = [v.frames for v in videos]
            kwargs["video_metadata"] = [
                VideoMetadata(
                    total_num_frames=len(v.frames), fps=v.fps, frames_indices=list(range(len(v.frames)))
                )
                for v in videos
            ]
            kwargs["do_sample_frames"] = False
        if clips:
            kwargs["audio"] = [c.samples for c in clips]
            kwargs["sampling_rate"] = clips[0].sampling_rate
        return self.processor(text=[text], return_tensors="pt", **kwargs).to(self.device)

    def generate(self, request: Request) -> list[int]:
        s = request.sampling
        inputs = self.inputs(request)
        options: dict[str, Any] = {"max_new_tokens": s.max_tokens, "repetition_penalty": s.repetition_penalty}
        if s.min_tokens:
            options["min_new_tokens"] = s.min_tokens
        if s.logit_bias:
            options["sequence_bias"] = {(token,): bias for token, bias in s.logit_bias.items()}
        if s.temperature == 0:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            options.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
            torch.manual_seed(s.seed)
        with torch.no_grad():
            out = self.model.generate(**inputs, **options)
        return list(out[0, inputs["input_ids"].shape[1] :].tolist())


async def run_engine(engine: Engine, request: Request, request_id: str) -> list[TokenOutput]:
    """encode → prefill → (KV cloned, state through msgpack, as between processes) → decode."""
    prompt = engine.info.render_prompt(request.messages())
    items = await engine.encode(request.media)
    result = await engine.prefill(prompt, items, request.sampling)
    kv = [t.clone() for t in result.kv]
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(result.state), type=DecodeState)
    return [out async for out in engine.generate(request_id, kv, state, request.sampling)]


def token_ids(outputs: list[TokenOutput]) -> list[int]:
    return [out.token_id for out in outputs]


# Float32 results of one computation run with different kernels (another batch shape, AVX2 vs AVX-512)
# differ in the order their sums are rounded, so the differences scale with the largest magnitude in
# the tensor, not with each element: measured up to 7e-7 of it (2.3e-5 on values up to 81, AVX-512).
# 1e-5 of it leaves a margin of 10x and is still five orders of magnitude below a wrong result.
ROUNDING = 1e-5


def rounding_tolerance(expected: torch.Tensor) -> float:
    """The largest difference from `expected` that float32 rounding explains."""
    return ROUNDING * float(expected.abs().max())


def equal_up_to_rounding(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """Same shape, and every element within `rounding_tolerance(expected)`."""
    if actual.shape != expected.shape:
        return False
    return float((actual - expected).abs().max()) <= rounding_tolerance(expected)
