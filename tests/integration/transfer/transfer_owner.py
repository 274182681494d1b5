"""A tensor-owning worker process for the transfer tests, driven by JSON lines on stdin.

    python tests/integration/transfer/transfer_owner.py

Requests (one JSON object per line) and answers (one per request, on stdout):
  {"op": "start", "url", "prefix", "name", "config": {TransferConfig fields}}  -> {"epoch", "shm_path"}
  {"op": "publish", "tensors": [{"dtype", "shape", "transposed"}], "seed", "ttl", "transport"}
                                                          -> {"ref": base64 msgpack, "digest"}
  {"op": "stats"}                                         -> {"held_bytes", "held_count", "registered"}
  {"op": "close", "drain"}                                -> {"registered", "shm_exists"}
Any failure answers {"error": "..."}. End of input closes the transfer and exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import msgspec
import redis.asyncio as aioredis
import torch

from queues.keys import Keys
from queues.transfer import TensorTransfer, TransferConfig, layout


def make_tensors(specs: list[dict[str, Any]], seed: int) -> list[torch.Tensor]:
    """Deterministic random tensors; `transposed` ones are non-contiguous views."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in specs:
        dtype = layout.dtype_of(spec["dtype"])
        shape = list(spec["shape"])
        stored = shape[::-1] if spec.get("transposed") else shape
        nbytes = math.prod(stored) * dtype.itemsize
        high = 2 if dtype == torch.bool else 256
        raw = torch.randint(0, high, (nbytes,), dtype=torch.uint8, generator=generator)
        tensor = raw.view(dtype).view(stored)
        tensors.append(tensor.t() if spec.get("transposed") else tensor)
    return tensors


class Owner:
    def __init__(self) -> None:
        self.transfer: TensorTransfer | None = None
        self.redis: aioredis.Redis | None = None

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "start":
            self.redis = aioredis.Redis.from_url(request["url"])
            config = TransferConfig(**request["config"])
            keys = Keys(request["prefix"])
            self.transfer = await TensorTransfer.start(self.redis, keys, request["name"], config)
            return {"epoch": self.transfer.epoch, "shm_path": self.transfer.shm_path}
        assert self.transfer is not None
        if op == "publish":
            tensors = make_tensors(request["tensors"], request["seed"])
            ref = await self.transfer.publish(
                tensors, ttl=request.get("ttl"), transport=request.get("transport")
            )
            encoded = base64.b64encode(msgspec.msgpack.encode(ref)).decode()
            return {"ref": encoded, "digest": layout.digest(tensors)}
        if op == "stats":
            return {
                "held_bytes": self.transfer.held_bytes,
                "held_count": self.transfer.held_count,
                "registered": self.transfer.registered_count,
            }
        if op == "close":
            await self.transfer.close(drain=request.get("drain", 0.0))
            path = self.transfer.shm_path
            exists = bool(path) and await asyncio.to_thread(os.path.exists, path)
            return {"registered": self.transfer.registered_count, "shm_exists": exists}
        raise ValueError(f"unknown op {op!r}")

    async def shutdown(self) -> None:
        if self.transfer is not None:
            await self.transfer.close()
        if self.redis is not None:
            await self.redis.aclose()


async def main() -> None:
    # Answers get the real stdout; anything else written to fd 1 (NIXL's logging) goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    owner = Owner()
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            try:
                answer = await owner.handle(json.loads(line))
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), file=answers, flush=True)
    finally:
        await owner.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
