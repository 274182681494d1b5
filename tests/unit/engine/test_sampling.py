"""The sampler against Hugging Face's own logits processors, and seeded generator continuity."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from queues.messages import SamplingParams
from workers.engine.sampling import Sampler, generator_state, new_generator, restore_generator

VOCAB = 50
EOS = frozenset({3, 7})


def hf_processors(p: SamplingParams, prompt_len: int) -> LogitsProcessorList:
    """What `generate` builds for these parameters, in its order (transformers 5.x)."""
    processors = LogitsProcessorList()
    if p.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(p.repetition_penalty))
    if p.min_tokens:
        processors.append(
            MinNewTokensLengthLogitsProcessor(prompt_len, p.min_tokens, torch.tensor(sorted(EOS)))
        )
    if p.temperature not in (0, 1.0):
        processors.append(TemperatureLogitsWarper(p.temperature))
    if p.temperature and p.top_k:
        processors.append(TopKLogitsWarper(p.top_k))
    if p.temperature and p.top_p < 1.0:
        processors.append(TopPLogitsWarper(p.top_p))
    return processors


params = st.builds(
    SamplingParams,
    max_tokens=st.just(8),
    seed=st.integers(0, 2**63),
    temperature=st.sampled_from([0.0, 0.3, 1.0, 1.7]),
    top_p=st.sampled_from([1.0, 0.95, 0.5, 0.05]),
    top_k=st.sampled_from([0, 1, 5, 60]),
    min_tokens=st.sampled_from([0, 2]),
    repetition_penalty=st.sampled_from([1.0, 1.3, 0.8]),
)


@settings(max_examples=150, deadline=None)
@given(
    p=params,
    logits_seed=st.integers(0, 10_000),
    prompt=st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=6),
    generated=st.lists(st.integers(0, VOCAB - 1), max_size=4),
)
def test_processed_scores_and_choice_equal_hf(
    p: SamplingParams, logits_seed: int, prompt: list[int], generated: list[int]
) -> None:
    logits = torch.randn((1, VOCAB), generator=torch.Generator().manual_seed(logits_seed)) * 3
    input_ids = torch.LongTensor([prompt + generated])
    expected = hf_processors(p, len(prompt))(input_ids, logits.clone())
    greedy = p.temperature == 0
    sampler = Sampler(
        p, EOS, sorted(set(prompt)), None if greedy else new_generator(p.seed, torch.device("cpu"))
    )
    assert torch.equal(sampler._process(logits.clone(), generated), expected)

    if greedy:
        assert sampler.choose(logits.clone(), generated) == int(expected.argmax())
    else:
        torch.manual_seed(p.seed)  # what `generate` draws from
        hf_token = int(torch.multinomial(torch.softmax(expected, dim=-1), num_samples=1))
        assert sampler.choose(logits.clone(), generated) == hf_token


def test_openai_penalties_subtract_counts_of_generated_tokens_only() -> None:
    p = SamplingParams(max_tokens=8, seed=0, temperature=0, presence_penalty=0.5, frequency_penalty=0.25)
    logits = torch.zeros((1, VOCAB))
    scores = Sampler(p, EOS, [1, 2], None)._process(logits, [5, 5, 9])
    expected = torch.zeros((1, VOCAB))
    expected[0, 5] = -(0.5 + 2 * 0.25)
    expected[0, 9] = -(0.5 + 0.25)
    assert torch.equal(scores, expected)  # prompt tokens 1 and 2 are untouched


def test_generator_state_survives_a_round_trip() -> None:
    device = torch.device("cpu")
    generator = new_generator(1234, device)
    torch.rand(10, generator=generator)
    copy = restore_generator(generator_state(generator), device)
    assert torch.equal(torch.rand(10, generator=generator), torch.rand(10, generator=copy))


def test_plain_argmax_only_when_nothing_changes_the_logits() -> None:
    plain = Sampler(SamplingParams(max_tokens=4, seed=0, temperature=0), EOS, [], None)
    assert plain.is_plain_argmax(0)
    min_tokens = Sampler(SamplingParams(max_tokens=4, seed=0, temperature=0, min_tokens=2), EOS, [], None)
    assert not min_tokens.is_plain_argmax(1) and min_tokens.is_plain_argmax(2)
    penalized = SamplingParams(max_tokens=4, seed=0, temperature=0, repetition_penalty=1.1)
    assert not Sampler(penalized, EOS, [], None).is_plain_argmax(5)
