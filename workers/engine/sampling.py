"""Per-sequence token selection that reproduces Hugging Face `generate` exactly.

Each sequence owns a `torch.Generator` seeded from its request, so its draws do not depend on what
else is in the batch. Logits are processed in the order `generate` builds its processors
(`GenerationMixin._get_logits_processor`): logit bias (HF's `sequence_bias` of single tokens), repetition
penalty, then minimum length (stop ids
suppressed), then, when sampling, temperature, top-k and top-p. OpenAI's presence and frequency
penalties have no HF counterpart; they are applied right after the repetition penalty, on generated
tokens only, as vLLM does. Each step works on one `(1, vocab)` row with the same operations HF
applies to a batch of one, so the arithmetic is bit-identical.
"""

from __future__ import annotations

import torch

from queues.messages import SamplingParams

NEG_INF = float("-inf")


def new_generator(seed: int, device: torch.device) -> torch.Generator:
    """The generator `torch.manual_seed(seed)` would leave as the default one on `device`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    return generator


def generator_state(generator: torch.Generator) -> bytes:
    return bytes(generator.get_state().numpy().tobytes())


def restore_generator(state: bytes, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    return generator


class Sampler:
    """Chooses the next token of one sequence from its raw logits."""

    def __init__(
        self,
        params: SamplingParams,
        stop_ids: frozenset[int],
        penalty_prompt_ids: list[int],
        generator: torch.Generator | None,
    ) -> None:
        self.params = params
        self.greedy = params.temperature == 0
        if not self.greedy and generator is None:
            raise ValueError("a sampled sequence needs its generator")
        self.generator = generator
        self._stop_ids = sorted(stop_ids)
        self._penalty_prompt_ids = penalty_prompt_ids
        self._penalized = params.presence_penalty != 0 or params.frequency_penalty != 0
        self._bias: torch.Tensor | None = None  # the logit bias as a vocab-long row, built on first use
        plain = (
            self.greedy and params.repetition_penalty == 1.0 and not self._penalized and not params.logit_bias
        )
        # from this many generated tokens on, the choice is the argmax of the raw logits (None: never)
        self._plain_from = (params.min_tokens if self._stop_ids else 0) if plain else None

    def is_plain_argmax(self, generated: int) -> bool:
        """True when the choice is argmax of the raw logits (so a whole batch can share one argmax)."""
        return self._plain_from is not None and generated >= self._plain_from

    def choose(self, logits: torch.Tensor, generated: list[int]) -> int:
        """`logits`: float32 `(1, vocab)` raw scores for the next token; `generated`: tokens so far."""
        scores = self._process(logits, generated)
        if self.greedy:
            return int(torch.argmax(scores, dim=-1).item())
        probs = torch.nn.functional.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, num_samples=1, generator=self.generator).item())

    def _process(self, scores: torch.Tensor, generated: list[int]) -> torch.Tensor:
        p = self.params
        if p.logit_bias:
            scores = scores + self._bias_row(scores)
        if p.repetition_penalty != 1.0:
            scores = self._repetition_penalty(scores, generated)
        if self._penalized and generated:
            scores = self._openai_penalties(scores, generated)
        if len(generated) < p.min_tokens and self._stop_ids:
            mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            mask[[i for i in self._stop_ids if i < scores.shape[-1]]] = True
            scores = torch.where(mask, NEG_INF, scores)
        if self.greedy:
            return scores
        if p.temperature != 1.0:
            scores = scores / p.temperature
        if p.top_k != 0:
            scores = _top_k(scores, p.top_k)
        if p.top_p < 1.0:
            scores = _top_p(scores, p.top_p)
        return scores

    def _bias_row(self, scores: torch.Tensor) -> torch.Tensor:
        if self._bias is None:
            vocab = scores.shape[-1]
            bias = torch.zeros((vocab,), dtype=torch.float, device=scores.device)
            ids = [i for i in self.params.logit_bias if i < vocab]
            bias[ids] = torch.tensor([self.params.logit_bias[i] for i in ids], device=scores.device)
            self._bias = bias
        return self._bias

    def _repetition_penalty(self, scores: torch.Tensor, generated: list[int]) -> torch.Tensor:
        vocab = scores.shape[-1]
        seen = sorted({*self._penalty_prompt_ids, *generated})
        ids = torch.tensor([[i for i in seen if i < vocab]], dtype=torch.long, device=scores.device)
        picked = torch.gather(scores, 1, ids)
        picked = torch.where(
            picked < 0, picked * self.params.repetition_penalty, picked / self.params.repetition_penalty
        )
        return scores.scatter(1, ids, picked)

    def _openai_penalties(self, scores: torch.Tensor, generated: list[int]) -> torch.Tensor:
        vocab = scores.shape[-1]
        ids = torch.tensor([i for i in generated if i < vocab], dtype=torch.long, device=scores.device)
        counts = torch.zeros(vocab, dtype=scores.dtype, device=scores.device)
        counts.index_add_(0, ids, torch.ones_like(ids, dtype=scores.dtype))
        penalty = (
            counts * self.params.frequency_penalty
            + (counts > 0).to(scores.dtype) * self.params.presence_penalty
        )
        return scores - penalty


def _top_k(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    k = min(max(top_k, 1), scores.shape[-1])
    threshold = torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(scores < threshold, NEG_INF)


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - top_p)
    drop_sorted[..., -1:] = False  # always keep the most likely token
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return scores.masked_fill(drop, NEG_INF)


def logprobs_of(logits: torch.Tensor, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """Log-probability of `token` and the `top` most likely tokens under the raw distribution `(vocab,)`."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    chosen = float(logprobs[token].item())
    if top <= 0:
        return chosen, []
    values, indices = torch.topk(logprobs, min(top, logprobs.shape[-1]))
    return chosen, list(zip(indices.tolist(), values.tolist(), strict=True))


def stop_ids_for(params: SamplingParams, eos_ids: frozenset[int]) -> frozenset[int]:
    """Ids that end the sequence: the request's stop ids, plus the checkpoint's EOS ids unless ignored."""
    return frozenset(params.stop_token_ids) | (frozenset() if params.ignore_eos else eos_ids)
