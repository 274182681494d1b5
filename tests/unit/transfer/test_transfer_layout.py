"""Packing several tensors into one payload and viewing them back."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from queues.transfer import layout
from queues.transfer.errors import TransferError
from queues.transfer.ref import TensorSpec

DTYPES = [
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.bool,
    torch.complex64,
]


def _tensor(dtype: torch.dtype, shape: list[int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    count = 1
    for dim in shape:
        count *= dim
    raw = torch.randint(
        0,
        2 if dtype == torch.bool else 256,
        (count * dtype.itemsize,),
        dtype=torch.uint8,
        generator=generator,
    )
    return raw.view(dtype).view(shape)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 5), max_size=3), st.booleans()),
        max_size=6,
    ),
    st.integers(0, 2**31),
)
async def test_pack_then_view_gives_the_same_tensors(
    items: list[tuple[torch.dtype, list[int], bool]], seed: int
) -> None:
    tensors = []
    for index, (dtype, shape, transpose) in enumerate(items):
        tensor = _tensor(dtype, shape, seed + index)
        tensors.append(tensor.t() if transpose and tensor.dim() == 2 else tensor)
    specs, nbytes = layout.plan(tensors)
    assert all(spec.offset % layout.ALIGN == 0 for spec in specs)
    buffer = torch.empty(nbytes, dtype=torch.uint8)
    await layout.pack(buffer, tensors, specs)
    out = layout.views(buffer, specs)
    assert [t.dtype for t in out] == [t.dtype for t in tensors]
    assert [t.shape for t in out] == [t.shape for t in tensors]
    assert layout.digest(out) == layout.digest(tensors)


async def test_large_copies_run_in_a_thread_and_complete() -> None:
    source = torch.arange(layout.THREAD_COPY_BYTES * 2, dtype=torch.uint8)
    target = torch.empty_like(source)
    await layout.copy(target, source)
    assert torch.equal(target, source)


def test_digest_depends_on_the_bytes() -> None:
    a = torch.zeros(4)
    assert layout.digest([a]) != layout.digest([a + 1])
    assert layout.digest([a.view(2, 2).t()]) == layout.digest([a.view(2, 2).t().contiguous()])


@pytest.mark.parametrize(
    ("spec", "nbytes", "reason"),
    [
        (TensorSpec("float32", [4], 0), 15, "size_mismatch"),
        (TensorSpec("float32", [4], 256), 256, "size_mismatch"),
        (TensorSpec("float32", [1], 2), 64, "size_mismatch"),
        (TensorSpec("float32", [-1], 0), 64, "invalid"),
        (TensorSpec("not_a_dtype", [1], 0), 64, "invalid"),
        (TensorSpec("Tensor", [1], 0), 64, "invalid"),
    ],
)
def test_specs_outside_the_payload_are_rejected(spec: TensorSpec, nbytes: int, reason: str) -> None:
    with pytest.raises(TransferError) as caught:
        layout.check([spec], nbytes)
    assert caught.value.reason == reason
