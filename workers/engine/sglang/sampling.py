"""Our `SamplingParams` as sglang 0.5.23 request arguments: every field goes through.

sglang applies `sampling_seed` only when it was started with `enable_deterministic_inference`,
which needs an fa3/flashinfer/triton attention backend (a GPU); on CPU the seed reaches sglang and
is ignored, so seeded sampling does not repeat there (greedy is exact). Stop ids are our EOS ids
plus the request's, so sglang stops where our output assembly (`workers.engine.sequence`) does.
"""

from __future__ import annotations

from typing import Any

from queues.messages import SamplingParams
from workers.engine.sampling import stop_ids_for

TOP_K_ALL = -1  # sglang: the whole vocabulary


def request_arguments(sampling: SamplingParams, eos_ids: frozenset[int]) -> dict[str, Any]:
    """Keyword arguments of `sglang.Engine.async_generate` for one request (besides its inputs)."""
    params: dict[str, Any] = {
        "max_new_tokens": sampling.max_tokens,
        "min_new_tokens": sampling.min_tokens,
        "temperature": sampling.temperature,  # 0: sglang switches to greedy (top_k 1)
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else TOP_K_ALL,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "repetition_penalty": sampling.repetition_penalty,
        "ignore_eos": sampling.ignore_eos,
        "sampling_seed": sampling.seed,
        "skip_special_tokens": True,
    }
    stop_ids = stop_ids_for(sampling, eos_ids)
    if stop_ids:
        params["stop_token_ids"] = sorted(stop_ids)
    if sampling.stop:
        params["stop"] = list(sampling.stop)
    if sampling.logit_bias:
        params["logit_bias"] = {str(token): bias for token, bias in sampling.logit_bias.items()}
    arguments: dict[str, Any] = {"sampling_params": params}
    if sampling.logprobs:
        # logprob_start_len -1: the generated tokens only, not the prompt
        arguments.update(return_logprob=True, top_logprobs_num=sampling.top_logprobs, logprob_start_len=-1)
    return arguments
