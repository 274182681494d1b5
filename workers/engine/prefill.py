"""Prefill: expand media placeholders, merge embeddings, run the prompt, sample the first token."""

from __future__ import annotations

import torch

from queues.messages import DecodeState, EncodedMeta, SamplingParams
from queues.types import Modality
from workers.engine.base import EncodedItem, PrefillResult
from workers.engine.families import Family
from workers.engine.forward import ModelForward
from workers.engine.kv_cache import export_kv
from workers.engine.sampling import Sampler, generator_state, logprobs_of, new_generator, stop_ids_for


def expand_placeholders(
    prompt_ids: list[int], metas: list[EncodedMeta], placeholders: dict[Modality, int]
) -> tuple[list[int], list[int]]:
    """Each placeholder token → its item's `num_tokens` copies. Returns the expanded ids and where each
    item's tokens start. Items must match the placeholders one to one, in prompt order."""
    modality_of = {token: modality for modality, token in placeholders.items()}
    expanded: list[int] = []
    starts: list[int] = []
    for token in prompt_ids:
        if token not in modality_of:
            expanded.append(token)
            continue
        if len(starts) == len(metas):
            raise ValueError(f"the prompt has more media placeholders than the {len(metas)} items given")
        meta = metas[len(starts)]
        if meta.modality != modality_of[token]:
            raise ValueError(
                f"placeholder {len(starts)} is {modality_of[token]}, its item is {meta.modality}"
            )
        starts.append(len(expanded))
        expanded.extend([token] * meta.num_tokens)
    if len(starts) != len(metas):
        raise ValueError(f"{len(metas)} media items for {len(starts)} placeholders in the prompt")
    return expanded, starts


class Prefiller:
    """Runs prefill for one request at a time on the engine thread."""

    def __init__(self, family: Family, forward: ModelForward, eos_ids: frozenset[int]) -> None:
        self.family = family
        self.forward = forward
        self.eos_ids = eos_ids
        self.max_context = int(family.model.config.get_text_config().max_position_embeddings)

    def __call__(
        self, prompt_ids: list[int], items: list[EncodedItem], sampling: SamplingParams
    ) -> PrefillResult:
        family = self.family
        metas = [meta for _, meta in items]
        expanded, starts = expand_placeholders(prompt_ids, metas, family.placeholder_ids)
        if len(expanded) >= self.max_context:
            raise ValueError(
                f"the prompt is {len(expanded)} tokens; the model's context is {self.max_context}"
            )
        ids = torch.tensor(expanded, dtype=torch.long, device=family.device)
        positions, rope_delta = family.prefill_positions(ids, metas)
        logits, cache = self.forward(inputs_embeds=self._embed(ids, items, starts), position_ids=positions)

        generator = None if sampling.temperature == 0 else new_generator(sampling.seed, family.device)
        penalty_ids = sorted(set(expanded)) if sampling.repetition_penalty != 1.0 else []
        sampler = Sampler(sampling, stop_ids_for(sampling, self.eos_ids), penalty_ids, generator)
        token = sampler.choose(logits, [])
        logprob, top = (
            logprobs_of(logits[0], token, sampling.top_logprobs) if sampling.logprobs else (None, [])
        )

        kv = export_kv([(layer.keys, layer.values) for layer in cache.layers])
        state = DecodeState(
            prompt_len=len(expanded),
            next_position=len(expanded),
            rope_delta=rope_delta,
            first_token=token,
            first_logprob=logprob,
            first_top_logprobs=top,
            generator_state=generator_state(generator) if generator is not None else b"",
            generator_device=family.device.type,
            penalty_prompt_ids=penalty_ids,
            num_layers=len(kv),
            num_kv_heads=kv[0].shape[1],
            head_dim=kv[0].shape[3],
            kv_dtype=str(kv[0].dtype).removeprefix("torch."),
        )
        return PrefillResult(kv=kv, state=state)

    def _embed(self, ids: torch.Tensor, items: list[EncodedItem], starts: list[int]) -> torch.Tensor:
        """Token embeddings of the expanded prompt `(1, tokens, hidden)` with each item's rows written
        over its placeholder run (what the model's masked_scatter does)."""
        embeds: torch.Tensor = self.family.model.get_input_embeddings()(ids[None])
        for (embedding, meta), start in zip(items, starts, strict=True):
            if tuple(embedding.shape) != (meta.num_tokens, embeds.shape[-1]):
                raise ValueError(
                    f"{meta.modality} embedding of shape {tuple(embedding.shape)} does not fit the model"
                )
            embeds[0, start : start + meta.num_tokens] = embedding.to(embeds.device, embeds.dtype)
        return embeds
