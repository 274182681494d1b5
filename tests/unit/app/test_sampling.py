"""`resolve_sampling`: every field's precedence (the client's value, else the checkpoint's
generation_config.json, else OpenAI's default), `do_sample: false` as greedy, the seed always set,
`max_tokens` against the server's limits, and the 400s that name the out-of-range field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.sampling import resolve_sampling
from app.settings import AppSettings
from app.types import ChatCompletionRequest
from queues.checkpoint import Checkpoint, GenerationDefaults
from queues.errors import ClientError
from queues.messages import SamplingParams
from tests.models import tiny_model_dir

SETTINGS = AppSettings(model="/models/tiny")  # default_max_tokens 256, max_tokens_limit 4096
NOTHING = GenerationDefaults()  # a checkpoint whose generation_config.json sets no sampling value
# A checkpoint that sets every value resolve_sampling reads, none equal to OpenAI's default.
CHECKPOINT = GenerationDefaults(
    do_sample=True, temperature=0.6, top_p=0.9, top_k=20, repetition_penalty=1.1, max_new_tokens=512
)


def request(**fields: Any) -> ChatCompletionRequest:
    """A chat request with `fields`, decoded as the server decodes a JSON body."""
    body = {"messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.convert(body, ChatCompletionRequest)


def resolve(
    defaults: GenerationDefaults = NOTHING, settings: AppSettings = SETTINGS, **fields: Any
) -> SamplingParams:
    return resolve_sampling(request(**fields), defaults, settings)


def refusal(
    defaults: GenerationDefaults = NOTHING, settings: AppSettings = SETTINGS, **fields: Any
) -> ClientError:
    with pytest.raises(ClientError) as info:
        resolve(defaults, settings, **fields)
    return info.value


INVALID_VALUE = (400, "invalid_request_error", "invalid_value")  # every refusal's status, type and code


def shape(error: ClientError) -> tuple[int, str, str, str | None]:
    return error.status, error.type, error.code, error.param


# ---- precedence --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "client", "checkpoint", "default"),
    [
        ("temperature", 0.3, 0.6, 1.0),
        ("top_p", 0.5, 0.9, 1.0),
        ("top_k", 5, 20, 0),
        ("repetition_penalty", 1.3, 1.1, 1.0),
        ("max_tokens", 100, 512, 256),  # 256: AppSettings.default_max_tokens
    ],
)
def test_client_then_checkpoint_then_default(field: str, client: Any, checkpoint: Any, default: Any) -> None:
    assert getattr(resolve(CHECKPOINT, **{field: client}), field) == client
    assert getattr(resolve(CHECKPOINT), field) == checkpoint
    assert getattr(resolve(NOTHING), field) == default


@pytest.mark.parametrize(("field", "zero"), [("temperature", 0.0), ("top_k", 0)])
def test_a_client_zero_is_a_value_not_a_missing_one(field: str, zero: Any) -> None:
    assert getattr(resolve(CHECKPOINT, **{field: zero}), field) == zero


@pytest.mark.parametrize(
    ("field", "client", "default"),
    [
        ("presence_penalty", 0.5, 0.0),
        ("frequency_penalty", -0.5, 0.0),
        ("min_tokens", 3, 0),
        ("ignore_eos", True, False),
        ("logprobs", True, False),
    ],
)
def test_fields_without_a_checkpoint_value(field: str, client: Any, default: Any) -> None:
    """generation_config.json has nothing for these: the client's value, else OpenAI's default."""
    assert getattr(resolve(CHECKPOINT, **{field: client}), field) == client
    assert getattr(resolve(CHECKPOINT), field) == default


def test_top_logprobs_and_stop_pass_through() -> None:
    params = resolve(logprobs=True, top_logprobs=5, stop=["\n\n", "END"])
    assert (params.top_logprobs, params.stop) == (5, ["\n\n", "END"])
    assert (resolve().top_logprobs, resolve().stop) == (0, [])


def test_a_single_stop_string_becomes_a_list() -> None:
    assert resolve(stop="END").stop == ["END"]


@pytest.mark.parametrize(
    ("defaults", "fields", "temperature"),
    [
        (GenerationDefaults(do_sample=False, temperature=0.7), {}, 0.0),  # greedy, whatever its temperature
        (GenerationDefaults(do_sample=False), {}, 0.0),
        (GenerationDefaults(do_sample=False, temperature=0.7), {"temperature": 0.8}, 0.8),  # the client asks
        (GenerationDefaults(do_sample=True, temperature=0.7), {}, 0.7),
        (GenerationDefaults(temperature=0.7), {}, 0.7),  # no do_sample: not greedy
    ],
)
def test_do_sample_false_means_greedy_unless_the_client_sets_a_temperature(
    defaults: GenerationDefaults, fields: dict[str, Any], temperature: float
) -> None:
    assert resolve(defaults, **fields).temperature == temperature


def test_a_checkpoint_temperature_of_zero_is_kept() -> None:
    assert resolve(GenerationDefaults(temperature=0.0)).temperature == 0.0


def test_top_k_minus_one_means_off() -> None:
    assert resolve(CHECKPOINT, top_k=-1).top_k == 0  # the client's -1 is not "unset": off, not 20
    assert resolve(GenerationDefaults(top_k=-1)).top_k == 0


# ---- from a checkpoint directory ---------------------------------------------------------------


def test_values_from_a_real_generation_config() -> None:
    """The tiny Qwen2-VL's generation_config.json: do_sample true, temperature 0.01, top_p 0.001,
    top_k 1, repetition_penalty 1.05, no max_new_tokens."""
    card = Checkpoint.load(tiny_model_dir("qwen2-vl"))
    params = resolve(card.generation)
    assert (params.temperature, params.top_p, params.top_k) == (0.01, 0.001, 1)
    assert (params.repetition_penalty, params.max_tokens) == (1.05, SETTINGS.default_max_tokens)
    assert resolve(card.generation, temperature=0.9, top_p=0.95).temperature == 0.9


def test_a_checkpoint_without_sampling_values_gets_openai_defaults() -> None:
    card = Checkpoint.load(tiny_model_dir("llava"))  # its generation_config.json holds only token ids
    params = resolve(card.generation)
    assert (params.temperature, params.top_p, params.top_k, params.repetition_penalty) == (1.0, 1.0, 0, 1.0)


def test_do_sample_false_in_generation_config_json(tmp_path: Path) -> None:
    source = tiny_model_dir("qwen2-vl")
    for path in source.iterdir():
        if path.suffix != ".safetensors":  # the card reads no weights
            shutil.copy(path, tmp_path / path.name)
    generation = {"do_sample": False, "temperature": 0.7, "top_p": 0.8, "max_new_tokens": 64}
    (tmp_path / "generation_config.json").write_text(json.dumps(generation))
    card = Checkpoint.load(tmp_path)
    params = resolve(card.generation)
    assert (params.temperature, params.top_p, params.max_tokens) == (0.0, 0.8, 64)
    assert resolve(card.generation, temperature=0.5).temperature == 0.5


# ---- max_tokens --------------------------------------------------------------------------------


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert resolve(max_tokens=10, max_completion_tokens=20).max_tokens == 20
    assert resolve(max_tokens=0, max_completion_tokens=20).max_tokens == 20  # the ignored one is not checked
    assert resolve(max_completion_tokens=30).max_tokens == 30


def test_the_default_is_the_settings_when_the_checkpoint_has_none() -> None:
    settings = AppSettings(model="/models/tiny", default_max_tokens=77)
    assert resolve(settings=settings).max_tokens == 77
    assert resolve(GenerationDefaults(max_new_tokens=99), settings).max_tokens == 99


@pytest.mark.parametrize(
    ("defaults", "default_max_tokens"),
    [(GenerationDefaults(max_new_tokens=8000), 256), (NOTHING, 8000)],
)
def test_a_default_above_the_limit_is_clamped_not_refused(
    defaults: GenerationDefaults, default_max_tokens: int
) -> None:
    settings = AppSettings(model="/models/tiny", default_max_tokens=default_max_tokens, max_tokens_limit=1000)
    assert resolve(defaults, settings).max_tokens == 1000


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_client_value_above_the_limit_is_refused_naming_its_field(field: str) -> None:
    settings = AppSettings(model="/models/tiny", max_tokens_limit=1000)
    at_the_limit: dict[str, Any] = {field: 1000}
    above: dict[str, Any] = {field: 1001}
    assert resolve(settings=settings, **at_the_limit).max_tokens == 1000
    error = refusal(settings=settings, **above)
    assert shape(error) == (*INVALID_VALUE, field)
    assert "1001" in error.message and "1000" in error.message


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [0, -1])
def test_max_tokens_below_one_is_refused(field: str, value: Any) -> None:
    error = refusal(**{field: value})
    assert shape(error) == (*INVALID_VALUE, field)


# ---- ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"presence_penalty": -2.1}, "presence_penalty"),
        ({"presence_penalty": 2.1}, "presence_penalty"),
        ({"frequency_penalty": -2.1}, "frequency_penalty"),
        ({"frequency_penalty": 2.1}, "frequency_penalty"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": 10.5}, "repetition_penalty"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"min_tokens": 11, "max_tokens": 10}, "min_tokens"),
        ({"min_tokens": 257}, "min_tokens"),  # above the default max_tokens (256)
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ""}, "stop"),
        ({"stop": ["a", ""]}, "stop"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"logprobs": False, "top_logprobs": 2}, "top_logprobs"),
        ({"seed": 2**63}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(fields: dict[str, Any], param: str) -> None:
    error = refusal(**fields)
    assert shape(error) == (*INVALID_VALUE, param)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0),
        ("temperature", 2.0),
        ("top_p", 1.0),
        ("presence_penalty", -2.0),
        ("presence_penalty", 2.0),
        ("frequency_penalty", -2.0),
        ("frequency_penalty", 2.0),
        ("repetition_penalty", 10.0),
        ("min_tokens", 256),  # equal to the default max_tokens
        ("stop", ["a", "b", "c", "d"]),
        ("seed", 2**63 - 1),
        ("seed", -(2**63)),
    ],
)
def test_values_at_the_bounds_are_accepted(field: str, value: Any) -> None:
    assert getattr(resolve(**{field: value}), field) == value


def test_twenty_top_logprobs_are_accepted() -> None:
    assert resolve(logprobs=True, top_logprobs=20).top_logprobs == 20


def test_a_refused_checkpoint_value_is_reported_too() -> None:
    """A generation_config.json value out of range is caught, not passed to the workers."""
    assert refusal(GenerationDefaults(top_p=0.0)).param == "top_p"


# ---- seed --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, -7, 12345678901234])
def test_the_given_seed_is_kept(seed: int) -> None:
    assert resolve(seed=seed).seed == seed


def test_a_missing_seed_is_drawn_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def randbits(k: int) -> int:
        asked.append(k)
        return 4242

    monkeypatch.setattr("app.sampling.secrets.randbits", randbits)
    assert resolve().seed == 4242
    assert asked == [63]  # a non-negative int64
    assert resolve(seed=5).seed == 5 and asked == [63]  # a given seed draws nothing


def test_missing_seeds_differ_and_fit_in_int64() -> None:
    seeds = [resolve().seed for _ in range(8)]
    assert len(set(seeds)) == len(seeds)  # 63 random bits: a repeat is practically impossible
    assert all(0 <= seed < 2**63 for seed in seeds)


# ---- logit_bias ------------------------------------------------------------------------------------


def test_logit_bias_becomes_token_ids_and_zero_biases_are_dropped() -> None:
    params = resolve_sampling(request(logit_bias={"42": -100, "7": 2.5, "9": 0}), NOTHING, SETTINGS, 64)
    assert params.logit_bias == {42: -100.0, 7: 2.5}
    assert resolve().logit_bias == {}


@pytest.mark.parametrize(
    ("bias", "words"),
    [
        ({"1": 100.5}, "between -100 and 100"),
        ({"1": -101}, "between -100 and 100"),
        ({"a": 1}, "token ids"),
        ({"-3": 1}, "token ids"),
        ({"64": 1}, "past the vocabulary (64)"),
        ({str(i): 1 for i in range(1025)}, "at most 1024"),
    ],
)
def test_bad_logit_bias_is_refused_naming_it(bias: dict[str, float], words: str) -> None:
    with pytest.raises(ClientError) as info:
        resolve_sampling(request(logit_bias=bias), NOTHING, SETTINGS, 64)
    error = info.value
    assert (error.status, error.code, error.param) == (400, "invalid_value", "logit_bias")
    assert words in error.message
