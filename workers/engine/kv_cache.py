"""KV cache storage: the shippable per-layer tensors, and the padded batch a decode step runs on.

`BatchKVCache` stands in for a transformers `Cache` during decode steps: each attention layer calls
`update()` with the new token's keys and values, which are written into every sequence's row at its
own length; the layer then attends over the padded rows with the mask `begin_step()` returned.
Rows are kept dense (a leaving sequence's row is refilled with the last row), so a step only ever
touches rows `0..size-1`.
"""

from __future__ import annotations

from typing import Any

import torch

TOKEN_GROWTH = 256  # capacity grows in multiples of this many positions


def export_kv(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Batch-of-one HF cache layers `(1, heads, tokens, head_dim)` → one `(2, heads, tokens, head_dim)`
    contiguous tensor per layer."""
    return [torch.stack((keys[0], values[0])).contiguous() for keys, values in layers]


class BatchKVCache:
    def __init__(
        self, num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device
    ):
        self.num_layers = num_layers
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = device
        self.lengths: list[int] = []  # tokens cached per row
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self._rows = 0
        self._tokens = 0
        self._write_rows = torch.empty(0, dtype=torch.long)
        self._write_at = torch.empty(0, dtype=torch.long)
        self._span = 0

    @property
    def size(self) -> int:
        return len(self.lengths)

    def append(self, kv: list[torch.Tensor]) -> int:
        """Add a sequence from its shipped KV (see `export_kv`); returns its row."""
        if len(kv) != self.num_layers:
            raise ValueError(f"KV has {len(kv)} layers, the model {self.num_layers}")
        length = kv[0].shape[2]
        expected = (2, self.num_kv_heads, length, self.head_dim)
        for layer in kv:
            if tuple(layer.shape) != expected:
                raise ValueError(f"KV layer shape {tuple(layer.shape)}, expected {expected}")
        row = self.size
        self._reserve(row + 1, length + 1)
        for keys, values, layer in zip(self._keys, self._values, kv, strict=True):
            keys[row, :, :length].copy_(layer[0])
            values[row, :, :length].copy_(layer[1])
        self.lengths.append(length)
        return row

    def remove(self, row: int) -> int | None:
        """Free `row`; the last row moves into it. Returns the moved row's old index (None if none moved)."""
        last = self.size - 1
        moved = None
        if row != last:
            length = self.lengths[last]
            for keys, values in zip(self._keys, self._values, strict=True):
                keys[row, :, :length].copy_(keys[last, :, :length])
                values[row, :, :length].copy_(values[last, :, :length])
            self.lengths[row] = length
            moved = last
        self.lengths.pop()
        if not self.lengths:  # idle: give the memory back
            self._keys, self._values, self._rows, self._tokens = [], [], 0, 0
        return moved

    def begin_step(self) -> torch.Tensor:
        """Prepare one decode step over all rows; returns the boolean attention mask `(rows, 1, 1, span)`."""
        self._span = max(self.lengths) + 1
        self._reserve(self.size, self._span)
        self._write_rows = torch.arange(self.size, device=self.device)
        self._write_at = torch.tensor(self.lengths, dtype=torch.long, device=self.device)
        positions = torch.arange(self._span, device=self.device)
        return (positions[None, :] <= self._write_at[:, None]).view(self.size, 1, 1, self._span)

    def end_step(self) -> None:
        self.lengths = [length + 1 for length in self.lengths]

    # --- the part of the transformers Cache interface the attention layers use ---

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._keys[layer_idx], self._values[layer_idx]
        keys[self._write_rows, :, self._write_at] = key_states[:, :, 0]
        values[self._write_rows, :, self._write_at] = value_states[:, :, 0]
        return keys[: self.size, :, : self._span], values[: self.size, :, : self._span]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return max(self.lengths, default=0)

    # ---

    def _reserve(self, rows: int, tokens: int) -> None:
        if rows <= self._rows and tokens <= self._tokens:
            return
        new_rows = max(rows, self._rows * 2 if rows > self._rows else self._rows, 1)
        new_tokens = max(self._tokens, -(-tokens // TOKEN_GROWTH) * TOKEN_GROWTH)
        shape = (new_rows, self.num_kv_heads, new_tokens, self.head_dim)
        grown_keys, grown_values = [], []
        for layer in range(self.num_layers):
            # zeros, not empty: padded positions are masked, but 0 * NaN garbage would still poison sums
            keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
            values = torch.zeros(shape, dtype=self.dtype, device=self.device)
            if self._rows:
                keys[: self._rows, :, : self._tokens].copy_(self._keys[layer])
                values[: self._rows, :, : self._tokens].copy_(self._values[layer])
            grown_keys.append(keys)
            grown_values.append(values)
        self._keys, self._values = grown_keys, grown_values
        self._rows, self._tokens = new_rows, new_tokens
