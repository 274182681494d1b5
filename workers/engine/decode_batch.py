"""The running decode batch: one forward step advances every sequence in it by one token.

Lives on the engine thread. Sequences join (`admit`) and leave (`drop`, or by finishing) only
between steps; their KV rows stay in one padded `BatchKVCache`.
"""

from __future__ import annotations

import torch

from queues.messages import DecodeState
from workers.engine.families import Family
from workers.engine.forward import ModelForward
from workers.engine.kv_cache import BatchKVCache
from workers.engine.sequence import Sequence
from workers.engine.types import TokenOutput


def check_kv(kv: list[torch.Tensor], state: DecodeState, cache: BatchKVCache) -> None:
    """Reject KV that does not fit this model before it can reach (and fail) a shared batch step."""
    expected = (2, cache.num_kv_heads, state.prompt_len, cache.head_dim)
    if len(kv) != cache.num_layers or any(tuple(layer.shape) != expected for layer in kv):
        shapes = sorted({tuple(layer.shape) for layer in kv})
        raise ValueError(
            f"KV of {len(kv)} layers {shapes} does not fit {cache.num_layers} layers of {expected}"
        )


class DecodeBatch:
    def __init__(self, family: Family, forward: ModelForward, cache: BatchKVCache) -> None:
        self.family = family
        self.forward = forward
        self.cache = cache
        self.rows: list[Sequence] = []  # row i of the cache belongs to rows[i]

    def admit(self, sequence: Sequence, kv: list[torch.Tensor]) -> None:
        self.cache.append(kv)
        self.rows.append(sequence)

    def drop(self, request_id: str) -> None:
        for row, sequence in enumerate(self.rows):
            if sequence.request_id == request_id:
                self._free(row)
                return

    def clear(self) -> None:
        while self.rows:
            self._free(len(self.rows) - 1)

    def step(self) -> list[tuple[Sequence, TokenOutput]]:
        """One forward over all rows, one token chosen per row; finished rows leave the batch."""
        if not self.rows:
            return []
        mask = self.cache.begin_step()
        device = self.family.device
        tokens = torch.tensor([s.generated[-1:] for s in self.rows], dtype=torch.long, device=device)
        positions = torch.tensor([s.next_position for s in self.rows], dtype=torch.long, device=device)
        logits, _ = self.forward(
            cache=self.cache,
            input_ids=tokens,
            position_ids=self.family.decode_positions(positions),
            attention_mask=mask,
        )
        self.cache.end_step()
        chosen = self._choose(logits)
        outputs = [
            (
                sequence,
                sequence.accept_from_logits(token, logits[row] if sequence.sampling.logprobs else None),
            )
            for row, (sequence, token) in enumerate(zip(self.rows, chosen, strict=True))
        ]
        for row in reversed(range(len(self.rows))):
            if self.rows[row].finish_reason is not None:
                self._free(row)
        return outputs

    def _choose(self, logits: torch.Tensor) -> list[int]:
        """Rows whose choice is a plain argmax share one batched argmax; the rest use their sampler."""
        plain = [s.sampler.is_plain_argmax(len(s.generated)) for s in self.rows]
        argmax = torch.argmax(logits, dim=-1).tolist() if any(plain) else []
        return [
            argmax[row] if plain[row] else sequence.sampler.choose(logits[row : row + 1], sequence.generated)
            for row, sequence in enumerate(self.rows)
        ]

    def _free(self, row: int) -> None:
        moved = self.cache.remove(row)
        if moved is not None:
            self.rows[row] = self.rows[moved]
        self.rows.pop()
