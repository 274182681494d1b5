"""TensorRef travels inside msgpack job messages; TransferError survives pickling."""

from __future__ import annotations

import pickle

import msgspec

from queues.transfer import Desc, TensorRef, TensorSpec, TransferError


def test_ref_round_trips_through_msgpack() -> None:
    ref = TensorRef(
        transport="nixl",
        tensors=[TensorSpec("bfloat16", [2, 3], 0), TensorSpec("int64", [], 256)],
        nbytes=264,
        tag=7,
        expires_at=1.5e9,
        owner="prefill-0",
        epoch=123,
        meta_key="{t}:agent:prefill-0",
        descs=[Desc(0x7F00_0000_1000, 264, 0)],
        slot=3,
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(ref), type=TensorRef) == ref


def test_defaults_are_left_out_of_the_message() -> None:
    ref = TensorRef(transport="inline", tensors=[], nbytes=0, tag=1, expires_at=0.0, owner="a", epoch=1)
    fields = msgspec.msgpack.decode(msgspec.msgpack.encode(ref))
    assert set(fields) == {"transport", "tensors", "nbytes", "tag", "expires_at", "owner", "epoch"}


def test_error_keeps_its_reason_across_processes() -> None:
    error = pickle.loads(pickle.dumps(TransferError("stale", "owner restarted")))
    assert isinstance(error, TransferError)
    assert (error.reason, error.message) == ("stale", "owner restarted")
