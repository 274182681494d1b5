"""Resolve a request's sampling fields into final `SamplingParams`.

Precedence for each field: the client's value, else the checkpoint's generation_config.json, else
OpenAI's default. The seed is always set (drawn here when the client gave none), so a re-run after
a crash repeats exactly the same tokens. Out-of-range values are refused with a 400 naming the field.
"""

from __future__ import annotations

import secrets

from app.settings import AppSettings
from app.types import ChatCompletionRequest
from queues.checkpoint import GenerationDefaults
from queues.errors import ClientError
from queues.messages import SamplingParams

MAX_STOP_SEQUENCES = 4
MAX_LOGIT_BIAS = 1024  # biased tokens per request
MAX_TOP_LOGPROBS = 20
INT64 = (-(2**63), 2**63 - 1)


def _check(ok: bool, param: str, message: str) -> None:
    if not ok:
        raise ClientError(400, message, param=param, code="invalid_value")


def resolve_sampling(
    body: ChatCompletionRequest,
    defaults: GenerationDefaults,
    settings: AppSettings,
    vocab_size: int | None = None,
) -> SamplingParams:
    """`vocab_size`: the model's logit rows, the bound of `logit_bias` token ids (None: unchecked)."""
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    if max_tokens is None:
        max_tokens = min(defaults.max_new_tokens or settings.default_max_tokens, settings.max_tokens_limit)
    _check(max_tokens >= 1, param, f"`{param}` must be at least 1")
    _check(
        max_tokens <= settings.max_tokens_limit,
        param,
        f"`{param}` is {max_tokens}; this server allows at most {settings.max_tokens_limit}",
    )

    # A checkpoint that says do_sample=false means greedy unless the client asks for a temperature.
    default_temperature = (
        0.0
        if defaults.do_sample is False
        else (defaults.temperature if defaults.temperature is not None else 1.0)
    )
    temperature = body.temperature if body.temperature is not None else default_temperature
    _check(0.0 <= temperature <= 2.0, "temperature", "`temperature` must be between 0 and 2")
    top_p = body.top_p if body.top_p is not None else (defaults.top_p if defaults.top_p is not None else 1.0)
    _check(0.0 < top_p <= 1.0, "top_p", "`top_p` must be in (0, 1]")
    top_k = body.top_k if body.top_k is not None else (defaults.top_k or 0)
    top_k = 0 if top_k == -1 else top_k
    _check(top_k >= 0, "top_k", "`top_k` must be 0 (off), -1 (off) or positive")

    presence = body.presence_penalty or 0.0
    frequency = body.frequency_penalty or 0.0
    _check(-2.0 <= presence <= 2.0, "presence_penalty", "`presence_penalty` must be between -2 and 2")
    _check(-2.0 <= frequency <= 2.0, "frequency_penalty", "`frequency_penalty` must be between -2 and 2")
    repetition = body.repetition_penalty
    if repetition is None:
        repetition = defaults.repetition_penalty if defaults.repetition_penalty is not None else 1.0
    _check(0.0 < repetition <= 10.0, "repetition_penalty", "`repetition_penalty` must be in (0, 10]")

    min_tokens = body.min_tokens or 0
    _check(0 <= min_tokens <= max_tokens, "min_tokens", "`min_tokens` must be between 0 and max_tokens")

    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    _check(len(stop) <= MAX_STOP_SEQUENCES, "stop", f"at most {MAX_STOP_SEQUENCES} stop sequences")
    _check(all(stop), "stop", "stop sequences must not be empty")

    logprobs = bool(body.logprobs)
    top_logprobs = body.top_logprobs or 0
    _check(0 <= top_logprobs <= MAX_TOP_LOGPROBS, "top_logprobs", "`top_logprobs` must be between 0 and 20")
    _check(logprobs or top_logprobs == 0, "top_logprobs", "`top_logprobs` needs `logprobs: true`")

    logit_bias = _logit_bias(body.logit_bias or {}, vocab_size)

    seed = body.seed if body.seed is not None else secrets.randbits(63)
    _check(INT64[0] <= seed <= INT64[1], "seed", "`seed` must fit in a signed 64-bit integer")

    return SamplingParams(
        max_tokens=max_tokens,
        seed=seed,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_tokens=min_tokens,
        stop=stop,
        ignore_eos=bool(body.ignore_eos),
        presence_penalty=presence,
        frequency_penalty=frequency,
        repetition_penalty=repetition,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        logit_bias=logit_bias,
    )


def _logit_bias(given: dict[str, float], vocab_size: int | None) -> dict[int, float]:
    """OpenAI's `logit_bias`: token ids (as JSON object keys) to a bias in [-100, 100]."""
    _check(
        len(given) <= MAX_LOGIT_BIAS, "logit_bias", f"`logit_bias` may bias at most {MAX_LOGIT_BIAS} tokens"
    )
    bias: dict[int, float] = {}
    for key, value in given.items():
        _check(key.isdigit(), "logit_bias", f"`logit_bias` keys are token ids, not {key!r}")
        token = int(key)
        if vocab_size is not None:
            _check(
                token < vocab_size, "logit_bias", f"token id {token} is past the vocabulary ({vocab_size})"
            )
        _check(
            -100.0 <= value <= 100.0, "logit_bias", f"the bias of token {token} must be between -100 and 100"
        )
        if value != 0.0:
            bias[token] = float(value)
    return bias
