"""Every field of our SamplingParams reaches sglang's request, and sglang accepts them."""

from __future__ import annotations

import importlib

import msgspec
from transformers import AutoTokenizer

from queues.messages import SamplingParams
from tests.models import tiny_model_dir
from workers.engine.sglang.sampling import request_arguments

EOS = frozenset({7, 9})
FULL = SamplingParams(
    max_tokens=12,
    seed=1234,
    temperature=0.7,
    top_p=0.8,
    top_k=40,
    min_tokens=3,
    stop=["\n\n", "END"],
    stop_token_ids=[5],
    ignore_eos=False,
    presence_penalty=0.5,
    frequency_penalty=0.25,
    repetition_penalty=1.1,
    logprobs=True,
    top_logprobs=4,
    logit_bias={3: 1.5, 11: -100.0},
)


def test_every_field_is_passed() -> None:
    arguments = request_arguments(FULL, EOS)
    assert arguments["sampling_params"] == {
        "max_new_tokens": 12,
        "min_new_tokens": 3,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 40,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "repetition_penalty": 1.1,
        "ignore_eos": False,
        "sampling_seed": 1234,
        "skip_special_tokens": True,
        "stop_token_ids": [5, 7, 9],
        "stop": ["\n\n", "END"],
        "logit_bias": {"3": 1.5, "11": -100.0},
    }
    assert arguments["return_logprob"] is True and arguments["top_logprobs_num"] == 4
    assert arguments["logprob_start_len"] == -1
    # every field of ours has a counterpart (a new field must be mapped here too)
    mapped = {"max_tokens", "min_tokens", "temperature", "top_p", "top_k", "presence_penalty", "seed"}
    mapped |= {"frequency_penalty", "repetition_penalty", "ignore_eos", "stop", "stop_token_ids"}
    mapped |= {"logprobs", "top_logprobs", "logit_bias"}
    assert set(msgspec.structs.asdict(FULL)) == mapped


def test_defaults_and_ignore_eos() -> None:
    plain = SamplingParams(max_tokens=4, seed=0, temperature=0.0, ignore_eos=True)
    arguments = request_arguments(plain, EOS)
    params = arguments["sampling_params"]
    assert params["top_k"] == -1 and params["temperature"] == 0.0 and params["ignore_eos"] is True
    assert "stop_token_ids" not in params and "stop" not in params and "return_logprob" not in arguments
    assert "logit_bias" not in params


def test_sglang_accepts_them() -> None:
    sglang_sampling = importlib.import_module("sglang.srt.sampling.sampling_params")  # untyped
    params = sglang_sampling.SamplingParams(**request_arguments(FULL, EOS)["sampling_params"])
    params.normalize(AutoTokenizer.from_pretrained(tiny_model_dir("qwen2-vl")))
    params.verify(vocab_size=512)
    assert params.stop_strs == ["\n\n", "END"] and params.sampling_seed == 1234
